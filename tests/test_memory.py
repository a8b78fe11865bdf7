import os
import subprocess
import sys

import numpy as np
import pytest

from kit.memory import keep_freed_memory
from kit.scheduler import run_jobs

pytestmark = pytest.mark.skipif(not sys.platform.startswith("linux"), reason="glibc and /proc")


def resident_mb() -> float:
    with open("/proc/self/statm") as statm:
        return int(statm.read().split()[1]) * os.sysconf("SC_PAGE_SIZE") / 2**20


def freed_block_still_resident_mb(keep: bool) -> float:
    """Resident memory a touched-then-freed 16 MB block (a batch of 16 float posters is 15 MB)
    leaves behind."""
    if keep:
        assert keep_freed_memory()
    before = resident_mb()
    block = np.ones(16 * 2**20, np.uint8)
    del block
    return resident_mb() - before


def in_a_fresh_process(keep: bool) -> float:
    probe = ("from tests.test_memory import freed_block_still_resident_mb as f; "
             f"print(f({keep}))")
    return float(subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True,
                                check=True).stdout)


def test_freed_batches_stay_with_the_process_for_the_next_step():
    assert in_a_fresh_process(keep=False) < 4       # glibc's default: unmapped when freed
    assert in_a_fresh_process(keep=True) > 12       # kept: the next step gets no fresh pages


def worker_job(_) -> tuple[bool, float]:
    return "MALLOC_TRIM_THRESHOLD_" in os.environ, freed_block_still_resident_mb(keep=False)


def test_every_shard_job_runs_with_freed_memory_kept_even_on_dask_workers():
    # run_jobs sets it in the worker, whatever started it: Dask's workers start with
    # MALLOC_TRIM_THRESHOLD_ set, which would unmap every freed block. (Dask's workers are fresh
    # processes; a forked pool worker inherits its parent's resident heap, which hides the effect.)
    for dask_setting, resident in run_jobs(worker_job, [0, 1], "local", workers=2):
        assert dask_setting and resident > 12
