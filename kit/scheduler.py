"""Where shard jobs run: a local process pool, or Dask (a LocalCluster, or an existing cluster).

The default, ``auto``, runs local work in a plain process pool (one process: inline). On the
measured sizes (1,000 to 20,000 posters, ``make bench`` section ``preprocessing``) the pool is the
fastest local executor: a LocalCluster pays about 2 s more to start and never overtakes it. Dask
is used when asked for: ``local`` or an existing cluster's ``tcp://`` address.

Shards are the unit of work and of failure. A shard job writes its outputs under temporary names
and commits them by renaming, so it can be re-run safely: when a Dask worker dies, the scheduler
retries its shard elsewhere and the result is the same bytes as a single-process run.
"""
from __future__ import annotations

import logging
import multiprocessing
import os
import select
import signal
import threading
import time
from concurrent.futures import ProcessPoolExecutor, as_completed
from concurrent.futures.process import BrokenProcessPool
from contextlib import contextmanager
from functools import partial
from typing import Callable, Iterable, Iterator

from kit.errors import KitError
from kit.memory import keep_freed_memory

SCHEDULERS = ("auto", "local", "processes", "inline")   # or tcp://host:port
TASK_RETRIES = 3
# The worker's stack sampler (every 10 ms) slows shard jobs a little. (Dask also sets
# MALLOC_TRIM_THRESHOLD_ in its workers; every job overrides it, see run_jobs.)
LOCAL_CLUSTER_CONFIG = {"distributed.worker.profile.enabled": False}
WORKER_LOGGING = "DASK_LOGGING__DISTRIBUTED"    # read by each Dask worker as it starts


def check_scheduler(scheduler: str) -> str:
    """``scheduler`` if it names one; KitError naming the choices otherwise."""
    if scheduler in SCHEDULERS or scheduler.startswith("tcp://"):
        return scheduler
    raise KitError(f"unknown --scheduler {scheduler!r}; use auto (the fastest local "
                   "executor), local (a Dask LocalCluster), processes (a plain process pool), "
                   "inline, or tcp://host:port")


@contextmanager
def dask_client(scheduler: str, workers: int | None) -> Iterator:
    """A Dask client: on a new LocalCluster for 'local', else connected to ``scheduler``."""
    import dask
    from dask.distributed import Client, LocalCluster
    if scheduler == "local":
        # Its processes start with Ctrl-C ignored (they keep that), so only this process hears
        # it, and they log only critical events: a job's error reaches this process through
        # its future, and closing the cluster mid-job is no error (it printed tracebacks).
        previous = signal.signal(signal.SIGINT, signal.SIG_IGN)
        worker_logging = os.environ.get(WORKER_LOGGING)
        os.environ[WORKER_LOGGING] = "critical"
        try:
            with dask.config.set(LOCAL_CLUSTER_CONFIG):
                cluster = LocalCluster(n_workers=workers or os.cpu_count() or 1,
                                       threads_per_worker=1, processes=True,
                                       dashboard_address="127.0.0.1:0")   # a free port
        finally:
            signal.signal(signal.SIGINT, previous)
            if worker_logging is None:
                os.environ.pop(WORKER_LOGGING, None)
            else:
                os.environ[WORKER_LOGGING] = worker_logging
        with _critical_only("distributed"):     # until the cluster has closed
            try:
                with Client(cluster) as client:
                    yield client
            finally:
                cluster.close()
        return
    try:
        client = Client(scheduler, timeout="10s")
    except OSError as error:
        raise KitError(f"cannot reach the Dask scheduler at {scheduler}: {error}") from None
    with client:
        yield client


@contextmanager
def _critical_only(prefix: str) -> Iterator[None]:
    """Loggers named ``prefix`` or below it log only critical events while inside. The local
    scheduler and client run in this process: Ctrl-C mid-job made them log a gather error and
    "Couldn't gather 1 keys, rescheduling" (``distributed.client`` has its own level and
    handler, so quieting ``distributed`` alone missed it)."""
    loggers = [logging.getLogger(name) for name in list(logging.root.manager.loggerDict)
               if name == prefix or name.startswith(prefix + ".")]
    levels = [logger.level for logger in loggers]
    for logger in loggers:
        logger.setLevel(logging.CRITICAL)
    try:
        yield
    finally:
        for logger, level in zip(loggers, levels):
            logger.setLevel(level)


def run_jobs(function: Callable, jobs: list, scheduler: str = "auto",
             workers: int | None = None) -> Iterable:
    """Yield ``function(job)`` for every job as it completes, on the chosen scheduler."""
    check_scheduler(scheduler)
    if not jobs:
        return
    task = partial(_in_kept_memory, function)
    processes = workers or os.cpu_count() or 1
    if scheduler == "inline" or (scheduler in ("auto", "processes") and processes <= 1):
        yield from map(task, jobs)
    elif scheduler in ("auto", "processes"):
        yield from _in_process_pool(task, jobs, min(processes, len(jobs)))
    else:
        from dask.distributed import as_completed as dask_completed
        with dask_client(scheduler, workers) as client:
            futures = client.map(task, jobs, pure=False, retries=TASK_RETRIES)
            for future in dask_completed(futures):
                yield future.result()


def _in_process_pool(task: Callable, jobs: list, processes: int) -> Iterator:
    """Yield results from a process pool whose workers leave Ctrl-C to the parent, which stops
    handing out jobs; a dead worker (killed, out of memory) is one clear message."""
    threads = max(1, (os.cpu_count() or 1) // processes)
    pool = ProcessPoolExecutor(processes, mp_context=_fork_server(), initializer=_start_worker,
                               initargs=(threads, os.getpid()))
    try:
        futures = [pool.submit(task, job) for job in jobs]
        for future in as_completed(futures):
            yield future.result()
    except BrokenProcessPool:
        raise KitError("a worker process died (killed, or out of memory?); finished shards are "
                       "kept, run the command again to resume (fewer --workers use less "
                       "memory)") from None
    finally:
        pool.shutdown(wait=True, cancel_futures=True)


def _start_worker(threads: int, parent: int) -> None:
    """A pool worker leaves Ctrl-C to the parent, ends with it, and computes on its share of the
    cores: with torch's default of a thread per core in every worker, a pool embedding Lite0
    took 67 to 76 s for the real posters' full view, against 55 s on one thread each (2 cores;
    Dask's workers get the same setting from Dask)."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    threading.Thread(target=_exit_after, args=(parent,), daemon=True).start()
    for variable in ("OMP_NUM_THREADS", "MKL_NUM_THREADS"):    # read when torch is imported
        os.environ[variable] = str(threads)


def _exit_after(parent: int) -> None:
    """End this worker once ``parent`` has ended, however it ended: a parent killed outright
    (kill -9, the out-of-memory killer) cannot shut its pool down, and its workers, each holding
    a backbone's memory, waited for jobs for ever."""
    try:
        handle = os.pidfd_open(parent)          # readable once the process has ended
        select.select([handle], [], [])
    except ProcessLookupError:                  # ended already
        pass
    except (AttributeError, OSError):           # no pidfd (not Linux, an old kernel):
        while _running(parent):                 # look once a second
            time.sleep(1)
    os._exit(1)


def _running(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return True


def _fork_server():
    """Workers forked from a fresh server process, never from this one: a process that has run
    OpenMP (torch) or holds other threads' locks can hang its forked children (it did, in a
    test run). The server imports the shard builder once (no pandas), so forking stays cheap."""
    context = multiprocessing.get_context("forkserver")
    context.set_forkserver_preload(["kit.shards"])
    return context


def _in_kept_memory(function: Callable, job):
    """Run one job in a process whose allocator keeps freed memory, whatever started it
    (Dask's workers set MALLOC_TRIM_THRESHOLD_, which made decoding slower)."""
    keep_freed_memory()
    return function(job)
