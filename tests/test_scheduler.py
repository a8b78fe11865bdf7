"""Shards on a real Dask LocalCluster of two worker processes, one of them killed mid-run."""
import os
import re
import signal
import subprocess
import sys
from functools import partial
from pathlib import Path

import cloudpickle
import numpy as np
import pytest

from kit.errors import KitError
from kit.ingest import build_catalogue, find_source
from kit.scheduler import check_scheduler, run_jobs
from kit.shards import build_shard
from kit.store import Store, build_store

cloudpickle.register_pickle_by_value(sys.modules[__name__])   # ship the test's job to workers


def same_store(first: Path, second: Path) -> None:
    a, b = Store(first), Store(second)
    assert list(a.index["id"]) == list(b.index["id"])
    assert list(a.index["checksum"]) == list(b.index["checksum"])
    for position in range(len(a)):
        np.testing.assert_array_equal(a[position], b[position])


def test_local_cluster_builds_the_same_store_as_one_process(synthetic_dir, tmp_path):
    films = build_catalogue(find_source(synthetic_dir)).films
    build_store(films, synthetic_dir, tmp_path / "inline", size=(30, 20), shard_size=30,
                scheduler="inline")
    result = build_store(films, synthetic_dir, tmp_path / "dask", size=(30, 20), shard_size=30,
                         scheduler="local", workers=2)
    assert result["stored"] == 240
    same_store(tmp_path / "inline", tmp_path / "dask")


def dies_once(job, marker_dir):
    """Build a shard, except that the first attempt at shard 2 kills its worker process."""
    marker = Path(marker_dir) / f"killed-{job.shard}"
    if job.shard == 2 and not marker.exists():
        marker.touch()
        os.kill(os.getpid(), signal.SIGKILL)
    return build_shard(job)


def test_a_killed_worker_loses_only_its_shard_which_is_retried(synthetic_dir, tmp_path):
    from functools import partial
    films = build_catalogue(find_source(synthetic_dir)).films
    build_store(films, synthetic_dir, tmp_path / "inline", size=(30, 20), shard_size=30,
                scheduler="inline")
    job = partial(dies_once, marker_dir=str(tmp_path))
    result = build_store(films, synthetic_dir, tmp_path / "dask", size=(30, 20), shard_size=30,
                         runner=lambda jobs: run_jobs(job, jobs, "local", 2))
    assert (tmp_path / "killed-2").exists() and result["stored"] == 240
    same_store(tmp_path / "inline", tmp_path / "dask")


def test_embeddings_on_the_cluster_equal_the_single_process_ones(competition):
    from kit.embeddings import Backbone, embed_store
    store = competition.store()
    lite0 = Backbone("efficientnet_lite0")
    inline = embed_store(store, lite0, ("middle",), "fp32", scheduler="inline")
    expected = inline.features(np.arange(len(store)))
    for path in inline.dirs[0].glob("emb-*"):
        path.unlink()
    cluster = embed_store(store, lite0, ("middle",), "fp32", scheduler="local", workers=2)
    np.testing.assert_allclose(cluster.features(np.arange(len(store))), expected, atol=1e-3)


def test_bad_scheduler_is_a_clear_error(tmp_path):
    check_scheduler("tcp://10.0.0.1:8786")
    with pytest.raises(KitError, match="unknown --scheduler 'yarn'"):
        check_scheduler("yarn")
    for command in ("prepare", "train", "compare"):
        argv = [command, str(tmp_path)] if command == "prepare" else [command]
        cli = subprocess.run([sys.executable, "-m", "kit", *argv, "--scheduler", "yarn",
                              "--workdir", str(tmp_path)], capture_output=True, text=True)
        assert cli.returncode == 2 and "unknown --scheduler 'yarn'" in cli.stderr, command
        assert "Traceback" not in cli.stderr


@pytest.mark.parametrize("scheduler", ["auto", "local"])
def test_ctrl_c_is_one_clean_message_and_the_next_run_resumes(synthetic_dir, tmp_path,
                                                               scheduler):
    import time
    store = tmp_path / "datasets" / "s" / "store-115x77"
    command = [sys.executable, "-m", "kit", "prepare", str(synthetic_dir), "--workdir",
               str(tmp_path), "--name", "s", "--size", "115x77", "--shard-size", "2",
               "--scheduler", scheduler]
    # Its own process group, as a terminal's foreground job: Ctrl-C reaches every process, and
    # starts out heard, as a shell starts a job (in long test sessions pytest's process was
    # found ignoring it, which children inherit).
    process = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
                               text=True, start_new_session=True,
                               preexec_fn=partial(signal.signal, signal.SIGINT, signal.SIG_DFL))
    deadline = time.monotonic() + 120
    while len(list(store.glob("shard-*.json"))) < 2:
        assert process.poll() is None and time.monotonic() < deadline
        time.sleep(0.01)
    # Stopped while the signal is sent: the run cannot finish between the check and Ctrl-C.
    os.killpg(process.pid, signal.SIGSTOP)
    ignored = int(re.search(r"SigIgn:\s*(\w+)", Path(f"/proc/{process.pid}/status").read_text())
                  .group(1), 16) >> (signal.SIGINT - 1) & 1
    assert not ignored, "the command ignores Ctrl-C"
    assert not (store / "index.csv").exists(), "the run finished before it could be interrupted"
    os.killpg(process.pid, signal.SIGINT)
    os.killpg(process.pid, signal.SIGCONT)
    _, err = process.communicate(timeout=120)
    assert process.returncode == 130, err[-3000:]
    assert err.strip().splitlines() == ["interrupted; finished work is kept, re-run to resume"]
    assert not (store / "index.csv").exists()
    again = subprocess.run(command, capture_output=True, text=True, timeout=300)
    assert again.returncode == 0, again.stderr[-2000:]
    assert len(Store(store)) == 240


def test_the_local_cluster_logs_only_critical_events_while_it_runs():
    """Ctrl-C mid-job on a busy machine printed distributed.client's "Couldn't gather 1 keys,
    rescheduling" above the one line (that logger has a level and a handler of its own, so
    quieting `distributed` alone missed it); once the cluster is closed, levels are restored."""
    script = (
        "import logging\n"
        "from kit.scheduler import dask_client\n"
        "with dask_client('local', 1):\n"
        "    for name in ('distributed', 'distributed.client', 'distributed.client.x'):\n"
        "        logging.getLogger(name).error('%s said something', name)\n"
        "logging.getLogger('distributed.client').warning('heard after')\n")
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True,
                          timeout=120)
    assert done.returncode == 0, done.stderr
    assert "said something" not in done.stderr and "heard after" in done.stderr, done.stderr


def killed_by_the_system(job):
    """A shard job whose process the system kills (as the OOM killer would)."""
    os.kill(os.getpid(), signal.SIGKILL)


def test_a_worker_killed_by_the_system_is_one_clear_message():
    with pytest.raises(KitError, match="a worker process died"):
        list(run_jobs(killed_by_the_system, [0, 1], "auto", workers=2))


def torch_job(job):
    """A shard job that runs torch's parallel CPU kernels (as embedding does)."""
    import torch
    a = torch.ones(300, 300)
    return int((a @ a)[0, 0].item()) + job


def test_pool_workers_never_inherit_a_used_torch_thread_pool():
    # Forked from a process whose OpenMP threads had run, workers hung in torch (they did,
    # in a test run); the pool forks them from a fresh server instead.
    code = ("import torch; from kit.scheduler import run_jobs; "
            "from tests.test_scheduler import torch_job; torch.set_num_threads(2); "
            "a = torch.randn(600, 600); [a @ a for _ in range(5)]; "
            "print(sorted(run_jobs(torch_job, [0, 1, 2, 3], 'auto', workers=2)))")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          timeout=180, cwd=Path(__file__).resolve().parent.parent)
    assert done.returncode == 0, done.stderr[-2000:]
    assert done.stdout.split() == ["[300,", "301,", "302,", "303]"]


def torch_threads(job):
    import torch
    return torch.get_num_threads()


def test_pool_workers_share_the_cores_instead_of_each_taking_them_all():
    """Each of a pool's workers computes on the cores over the workers the jobs keep busy."""
    cores = os.cpu_count() or 1
    assert set(run_jobs(torch_threads, list(range(4)), "auto", workers=2)) == {max(1, cores // 2)}
    assert set(run_jobs(torch_threads, [0, 1], "auto", workers=cores + 1)) == {max(1, cores // 2)}


@pytest.mark.parametrize("pidfd", [True, False])
def test_a_pool_worker_ends_once_its_parent_has_ended(pidfd):
    """The watch each pool worker keeps on the command that started it, on the pidfd and on
    the once-a-second look of a system without one (macOS, an old kernel)."""
    parent = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(600)"])
    watcher = subprocess.Popen([sys.executable, "-c", (
        "import os, time\n"
        + ("" if pidfd else "del os.pidfd_open\n")
        + "from kit.scheduler import _start_worker\n"
        f"_start_worker(1, {parent.pid})\n"
        "print('watching', flush=True)\n"
        "time.sleep(600)\n")], stdout=subprocess.PIPE, text=True)
    try:
        assert watcher.stdout.readline() == "watching\n"
        assert watcher.poll() is None               # the parent lives: the worker too
        parent.kill()
        parent.wait()
        assert watcher.wait(timeout=60) == 1        # ended by its watch, not by the sleep
    finally:
        parent.kill()
        watcher.kill()
