"""kill -9 at observed progress points, repeatedly: each kill lands while work is in flight (the
test checks it), and each re-run resumes until the final artefacts equal an uninterrupted run's."""
import hashlib
import os
import random
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch

KILLS = 3
ONE_THREAD = {**os.environ, "OMP_NUM_THREADS": "1"}   # killed and whole runs compute alike


def kit(*argv):
    return [sys.executable, "-m", "kit", *argv]


def killed_at(command, progress, unfinished, seed, kills=KILLS):
    """Run ``command`` ``kills`` times and SIGKILL it as soon as ``progress(process)`` has grown
    since that run started (plus a seeded pause of up to 50 ms, to land inside the next piece of
    work); assert that the process was still running and ``unfinished()`` still true. Then let a
    last run finish."""
    rng = random.Random(seed)
    for _ in range(kills):
        process = subprocess.Popen(command, stdout=subprocess.DEVNULL,
                                   stderr=subprocess.DEVNULL, env=ONE_THREAD)
        start, deadline = progress(process), time.monotonic() + 300
        while progress(process) <= start:
            assert process.poll() is None, "the run ended before making progress"
            assert time.monotonic() < deadline, "the run made no progress"
            time.sleep(0.005)
        time.sleep(rng.uniform(0, 0.05))
        process.send_signal(signal.SIGKILL)
        process.wait()
        assert unfinished(), "the kill landed after the work was done"
    finished = subprocess.run(command, capture_output=True, text=True, env=ONE_THREAD,
                              timeout=600)
    assert finished.returncode == 0, finished.stderr[-2000:]


def count(folder: Path, pattern: str) -> int:
    return len(list(folder.glob(pattern)))


def digest(folder: Path, pattern: str) -> dict:
    return {p.name: hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(folder.glob(pattern))}


def test_preprocessing_survives_kill_9(synthetic_dir, tmp_path):
    common = ["--size", "115x77", "--shard-size", "16", "--scheduler", "inline", "--name", "s"]
    subprocess.run(kit("prepare", str(synthetic_dir), "--workdir", str(tmp_path / "a"), *common),
                   check=True, capture_output=True, env=ONE_THREAD)
    store = "datasets/s/store-115x77"
    a, b = tmp_path / "a" / store, tmp_path / "b" / store
    # Each run is killed after it commits a shard (a sidecar; 15 in all); the index comes last.
    killed_at(kit("prepare", str(synthetic_dir), "--workdir", str(tmp_path / "b"), *common),
              lambda _: count(b, "shard-*.json"),
              unfinished=lambda: not (b / "index.csv").exists(), seed=1)
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
    runs = Path(workdir) / "runs"
    log = runs / "killed" / "log.csv"
    epochs_done = lambda: len(log.read_text().splitlines()) - 1 if log.exists() else 0
    # Each run is killed after it finishes an epoch (last.pt, then log.csv; 4 epochs in all);
    # the summary comes last.
    killed_at(kit("train", "--name", "killed", *common), lambda _: epochs_done(),
              unfinished=lambda: not (runs / "killed" / "summary.json").exists(), seed=2)
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
    out = tmp_path / "b"
    # Each run is killed once its first temporary file appears (names carry the writer's pid);
    # leaderboard.html comes last.
    killed_at([*command, "--out", str(out)],
              lambda process: count(out, f".*-{process.pid}.*.tmp"),
              unfinished=lambda: not (out / "leaderboard.html").exists(), seed=3)
    assert digest(tmp_path / "a", "*.md") == digest(tmp_path / "b", "*.md")
    assert digest(tmp_path / "a", "*.json") == digest(tmp_path / "b", "*.json")
    assert not list((tmp_path / "b").glob(".*.tmp"))


def test_embedding_survives_kill_9(workdir, competition):
    from kit.embeddings import Backbone, embed_store
    lite0 = Backbone("efficientnet_lite0")
    common = ["--workdir", str(workdir), "--model", "efficientnet_lite0", "--frozen",
              "--views", "bottom", "--precision", "fp32", "--epochs", "2", "--resume",
              "--scheduler", "inline"]
    store = competition.store()
    cache = store.dir / "embeddings" / "efficientnet_lite0-bottom-fp32"
    shutil.rmtree(cache, ignore_errors=True)
    shards = len(store.index["shard"].unique())
    # Each run is killed after it embeds a shard (4 in all); the head trains after the last.
    killed_at(kit("train", "--name", "embed-killed", *common),
              lambda _: count(cache, "emb-*.json"),
              unfinished=lambda: count(cache, "emb-*.json") < shards, seed=4, kills=2)
    killed = embed_store(store, lite0, ("bottom",), "fp32", scheduler="inline")
    interrupted = killed.features(np.arange(len(store)))
    for path in cache.glob("emb-*"):
        path.unlink()
    subprocess.run(kit("train", "--name", "embed-whole", *common), check=True,
                   capture_output=True, env=ONE_THREAD)
    whole = embed_store(store, lite0, ("bottom",), "fp32", scheduler="inline")
    np.testing.assert_array_equal(interrupted, whole.features(np.arange(len(store))))
    runs = Path(workdir) / "runs"
    a = torch.load(runs / "embed-killed" / "best.pt", weights_only=False)["model_state"]
    b = torch.load(runs / "embed-whole" / "best.pt", weights_only=False)["model_state"]
    assert all(torch.equal(a[k], b[k]) for k in a)


@pytest.mark.parametrize("folds", ["1", "2"])
def test_a_run_is_trained_by_one_process_at_a_time(workdir, folds):
    # Two `kit train --resume` of one run at once would both write its log and checkpoints; the
    # second is refused while the first trains (a cross-fitted run: while any of its folds
    # trains), and the run resumes once the first has gone, even by kill -9.
    name = f"busy-{folds}"
    command = kit("train", "--name", name, "--workdir", str(workdir), "--folds", folds,
                  "--batch-size", "16", "--resume")
    started = Path(workdir) / "runs" / name / ("fold-1" if folds == "2" else "") / "config.json"
    first = subprocess.Popen([*command, "--epochs", "1000", "--patience", "1000"],
                             stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env=ONE_THREAD)
    try:
        deadline = time.monotonic() + 300
        while not started.exists():
            assert first.poll() is None, "the first run ended before it started training"
            assert time.monotonic() < deadline, "the first run never started training"
            time.sleep(0.05)
        second = subprocess.run([*command, "--epochs", "1000", "--patience", "1000"],
                                capture_output=True, text=True, env=ONE_THREAD, timeout=120)
        assert first.poll() is None, "the first run ended before the second one was checked"
    finally:
        first.send_signal(signal.SIGKILL)
        first.wait()
    message = " ".join(second.stderr.split())
    assert second.returncode == 2, message[-2000:]
    assert f"is busy: kit train of run '{name}' (pid {first.pid}" in message
    assert "wait for it to finish" in message
    resumed = subprocess.run([*command, "--epochs", "1"], capture_output=True, text=True,
                             env=ONE_THREAD, timeout=600)
    assert resumed.returncode == 0, resumed.stderr[-2000:]


def test_pool_workers_end_with_a_parent_killed_outright(tmp_path):
    """kill -9 of `kit synth` (or of kit prepare or an embedding, on the same pool) left its
    workers waiting for jobs for ever: orphans holding memory, a backbone each when embedding."""
    import psutil
    process = subprocess.Popen(kit("synth", "--out", str(tmp_path / "s"), "--n", "100000",
                                   "--workers", "2"), stdout=subprocess.DEVNULL,
                               stderr=subprocess.DEVNULL, env=ONE_THREAD)
    deadline = time.monotonic() + 120
    while count(tmp_path / "s" / "posters", "*.jpg") < 10:     # the workers are at work
        assert process.poll() is None and time.monotonic() < deadline
        time.sleep(0.05)
    descendants = psutil.Process(process.pid).children(recursive=True)
    assert len(descendants) >= 2
    process.send_signal(signal.SIGKILL)
    process.wait()
    _, alive = psutil.wait_procs(descendants, timeout=60)
    assert not alive, [p.cmdline()[-4:] for p in alive]
