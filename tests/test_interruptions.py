"""kill -9 at random moments, repeatedly; each re-run resumes and the final artefacts equal those
of an uninterrupted run."""
import hashlib
import os
import random
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd
import torch

KILLS = 3
ONE_THREAD = {**os.environ, "OMP_NUM_THREADS": "1"}   # killed and whole runs compute alike


def kit(*argv):
    return [sys.executable, "-m", "kit", *argv]


def killed_repeatedly(command, seed, kills=KILLS, earliest=0.3, latest=4.0):
    """Start ``command`` and SIGKILL it at random moments, ``kills`` times; then let it finish."""
    rng = random.Random(seed)
    for _ in range(kills):
        process = subprocess.Popen(command, stdout=subprocess.DEVNULL,
                                   stderr=subprocess.DEVNULL, env=ONE_THREAD)
        time.sleep(rng.uniform(earliest, latest))
        process.send_signal(signal.SIGKILL)
        process.wait()
    finished = subprocess.run(command, capture_output=True, text=True, env=ONE_THREAD,
                              timeout=600)
    assert finished.returncode == 0, finished.stderr[-2000:]


def digest(folder: Path, pattern: str) -> dict:
    return {p.name: hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(folder.glob(pattern))}


def test_preprocessing_survives_kill_9(synthetic_dir, tmp_path):
    common = ["--size", "115x77", "--shard-size", "16", "--scheduler", "inline", "--name", "s"]
    subprocess.run(kit("prepare", str(synthetic_dir), "--workdir", str(tmp_path / "a"), *common),
                   check=True, capture_output=True, env=ONE_THREAD)
    killed_repeatedly(kit("prepare", str(synthetic_dir), "--workdir", str(tmp_path / "b"),
                          *common), seed=1, earliest=1.0, latest=3.0)
    store = "datasets/s/store-115x77"
    a, b = tmp_path / "a" / store, tmp_path / "b" / store
    index_a, index_b = (pd.read_csv(f / "index.csv", dtype=str) for f in (a, b))
    assert list(index_a["id"]) == list(index_b["id"])
    assert list(index_a["checksum"]) == list(index_b["checksum"])
    assert not list(b.glob(".*.tmp"))
    for (_, row_a), (_, row_b) in zip(index_a.iterrows(), index_b.iterrows()):
        left = np.load(a / f"shard-{int(row_a.shard):06d}.npy", mmap_mode="r")[int(row_a.row)]
        right = np.load(b / f"shard-{int(row_b.shard):06d}.npy", mmap_mode="r")[int(row_b.row)]
        np.testing.assert_array_equal(left, right)


def test_training_survives_kill_9(workdir):
    common = ["--workdir", str(workdir), "--epochs", "4", "--batch-size", "16", "--resume"]
    subprocess.run(kit("train", "--name", "whole", *common), check=True, capture_output=True,
                   env=ONE_THREAD)
    killed_repeatedly(kit("train", "--name", "killed", *common), seed=2, earliest=2.0,
                      latest=8.0)
    runs = Path(workdir) / "runs"
    whole = torch.load(runs / "whole" / "best.pt", weights_only=False)
    killed = torch.load(runs / "killed" / "best.pt", weights_only=False)
    assert whole["epoch"] == killed["epoch"] and whole["thresholds"] == killed["thresholds"]
    for key, tensor in whole["model_state"].items():
        assert torch.equal(tensor, killed["model_state"][key]), key
    pd.testing.assert_frame_equal(
        pd.read_csv(runs / "whole" / "log.csv").drop(columns=["seconds", "images_per_second"]),
        pd.read_csv(runs / "killed" / "log.csv").drop(columns=["seconds", "images_per_second"]))


def test_leaderboard_writing_survives_kill_9(competition, tmp_path):
    folder = tmp_path / "subs"
    folder.mkdir()
    (folder / "prior.csv").write_bytes((competition.public / "sample_submission.csv").read_bytes())
    answers = str(competition.folder / "private" / "answers.csv")
    command = [sys.executable, "-m", "eval", "leaderboard", str(folder), "--answers", answers,
               "--bootstrap", "50"]
    subprocess.run([*command, "--out", str(tmp_path / "a")], check=True, capture_output=True,
                   env=ONE_THREAD)
    killed_repeatedly([*command, "--out", str(tmp_path / "b")], seed=3, earliest=1.0,
                      latest=3.5)
    assert digest(tmp_path / "a", "*.md") == digest(tmp_path / "b", "*.md")
    assert digest(tmp_path / "a", "*.json") == digest(tmp_path / "b", "*.json")
    assert not list((tmp_path / "b").glob(".*.tmp"))


def test_embedding_survives_kill_9(workdir, competition):
    from kit.embeddings import embed_store
    common = ["--workdir", str(workdir), "--model", "efficientnet_lite0", "--frozen",
              "--views", "bottom", "--precision", "fp32", "--epochs", "2", "--resume",
              "--scheduler", "inline"]
    store = competition.store()
    cache = store.dir / "embeddings" / "efficientnet_lite0-bottom-fp32"
    killed_repeatedly(kit("train", "--name", "embed-killed", *common), seed=4, earliest=4.0,
                      latest=9.0)
    killed = embed_store(store, "efficientnet_lite0", ("bottom",), "fp32", scheduler="inline")
    interrupted = killed.features(np.arange(len(store)))
    for path in cache.glob("emb-*"):
        path.unlink()
    subprocess.run(kit("train", "--name", "embed-whole", *common), check=True,
                   capture_output=True, env=ONE_THREAD)
    whole = embed_store(store, "efficientnet_lite0", ("bottom",), "fp32", scheduler="inline")
    np.testing.assert_array_equal(interrupted, whole.features(np.arange(len(store))))
    runs = Path(workdir) / "runs"
    a = torch.load(runs / "embed-killed" / "best.pt", weights_only=False)["model_state"]
    b = torch.load(runs / "embed-whole" / "best.pt", weights_only=False)["model_state"]
    assert all(torch.equal(a[k], b[k]) for k in a)
