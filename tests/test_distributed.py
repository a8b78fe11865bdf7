"""torchrun: every training command runs data-parallel on two processes."""
import json
import os
import socket
import subprocess
import sys

import pandas as pd
import pytest
import torch

from kit.workdir import Workdir


TORCHRUN_COMMANDS = {
    "train": ["train", "--name", "ddp-train", "--epochs", "1", "--balance", "sampler"],
    "cross-fit": ["train", "--name", "ddp-cross-fit", "--epochs", "1", "--folds", "2"],
    "search": ["search", "--name", "ddp-search", "--trials", "2", "--trial-epochs", "1"],
    "compare": ["compare", "--prefix", "ddp-compare", "--strategies", "none", "sampler",
                "--epochs", "1", "--bootstrap", "20", "--submissions", "{tmp}"],
}


@pytest.mark.parametrize("command", TORCHRUN_COMMANDS)
def test_torchrun_trains_data_parallel_on_two_processes(workdir, tmp_path, command):
    with socket.socket() as probe:          # a free port, not a fixed one another run may hold
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    argv = [a.format(tmp=tmp_path) for a in TORCHRUN_COMMANDS[command]]
    launch = [sys.executable, "-m", "torch.distributed.run", "--nproc_per_node=2",
              f"--master_port={port}", "-m", "kit", *argv, "--workdir", str(workdir),
              "--batch-size", "8"]
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    finished = subprocess.run(launch, capture_output=True, text=True, timeout=300, env=env)
    assert finished.returncode == 0, finished.stderr[-2000:]
    runs = Workdir(workdir).runs
    logs = sorted(runs.glob(f"ddp-{command}*/**/log.csv"))
    assert len(logs) == {"train": 1, "cross-fit": 2, "search": 2, "compare": 2}[command]
    assert all(len(pd.read_csv(log)) == 1 for log in logs)
    if command == "cross-fit":
        ensemble = runs / "ddp-cross-fit"
        assert json.loads((ensemble / "summary.json").read_text())["folds"] == 2
        assert len(torch.load(ensemble / "best.pt", weights_only=False)["thresholds"]) > 0
    if command == "search":
        trials = Workdir(workdir).root / "searches" / "ddp-search" / "trials.csv"
        assert len(pd.read_csv(trials)) == 2
    if command == "compare":
        assert len(list((tmp_path / "ddp-compare").glob("*@*.csv"))) == 4   # 2 strategies x 2
        assert not (tmp_path / "ddp-compare" / "seed1").exists()      # one seed under torchrun
