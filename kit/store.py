"""The preprocessed poster store: sharded, memory-mapped uint8 arrays with an index.

Layout of a store folder::

    store.json              image size and shard size
    shard-000000.npy        uint8 array (n, 3, height, width), rows in index order
    shard-000000.json       the shard's rows (id, source, size, mtime, file identity, checksum)
                            and failures;
                            written last, so a shard without it is never read
    index.csv               id, shard, row, source, source_size, source_mtime_ns, checksum

A shard is the unit of work: it is decoded and written by one worker, to temporary names, then
renamed. An interrupted run loses at most the shards in flight; the next run skips every poster
stored from the very file now there (same size, mtime, ctime and inode) and tries every failed
one again.
"""
from __future__ import annotations

import os
import time
from pathlib import Path

import numpy as np
import pandas as pd

from kit.console import track
from kit.errors import KitError
from kit.files import read_json, read_table, write_csv, write_json
from kit.scheduler import check_scheduler, run_jobs
from kit.imaging import DEFAULT_MAX_PIXELS, DEFAULT_SIZE
from kit.shards import ShardJob, build_shard, file_identity, shard_is_whole, shard_name

DEFAULT_SHARD_SIZE = 256
INDEX_COLUMNS = ["id", "shard", "row", "source", "source_size", "source_mtime_ns", "checksum"]


def load_sidecars(store_dir: Path) -> list[dict]:
    """Every committed shard's sidecar, in shard order."""
    return [read_json(p) for p in sorted(store_dir.glob("shard-*.json"))]


def _known_files(sidecars: list[dict]) -> dict[str, dict]:
    """Latest record per id over stored and failed posters (later shards win)."""
    known = {}
    for sidecar in sidecars:
        for record in sidecar["rows"]:
            known[record["id"]] = {**record, "shard": sidecar["shard"], "stored": True}
        for record in sidecar["failed"]:
            known[record["id"]] = {**record, "shard": sidecar["shard"], "stored": False}
    return known


def _unchanged(record: dict | None, path: str) -> bool:
    """True when ``path`` is the very file stored before. A failed poster is always tried again
    (the options or the file may no longer cause the failure)."""
    if record is None or not record["stored"]:
        return False
    try:
        return file_identity(os.stat(path)) == record.get("source_identity")
    except OSError:
        return False


def _check_layout(store_dir: Path, size: tuple[int, int], shard_size: int) -> None:
    meta_path = store_dir / "store.json"
    meta = {"size": list(size), "shard_size": shard_size, "format": 1}
    if meta_path.exists():
        existing = read_json(meta_path)
        if existing["size"] != list(size):
            raise KitError(f"store {store_dir} holds {existing['size'][0]}x{existing['size'][1]} "
                           f"posters, not {size[0]}x{size[1]}; use another --workdir or dataset "
                           "name")
        return
    store_dir.mkdir(parents=True, exist_ok=True)
    write_json(meta_path, meta)


def _remove_orphans(store_dir: Path) -> None:
    """Delete temporary files, shard arrays whose sidecar was never written, and shards whose
    array is missing or cut short (a power loss before the disk had it): their posters are
    stored again."""
    for tmp in store_dir.glob(".shard-*.tmp"):
        tmp.unlink(missing_ok=True)
    for array in store_dir.glob("shard-*.npy"):
        if not array.with_suffix(".json").exists():
            array.unlink(missing_ok=True)
    for sidecar in store_dir.glob("shard-*.json"):
        if not shard_is_whole(sidecar.with_suffix(".npy")):
            sidecar.unlink(missing_ok=True)
            sidecar.with_suffix(".npy").unlink(missing_ok=True)


def plan_jobs(films: pd.DataFrame, root: Path, store_dir: Path, size: tuple[int, int],
              shard_size: int, max_pixels: int) -> tuple[list[ShardJob], int]:
    """Shard jobs for the films not stored from the file now there; and how many were skipped."""
    known = _known_files(load_sidecars(store_dir))
    next_shard = 1 + max((int(p.stem.split("-")[1]) for p in store_dir.glob("shard-*.json")),
                         default=-1)
    pending = []
    for film_id, source in zip(films["id"], films["poster"]):
        path = str(root / source)
        record = known.get(film_id)
        if record is not None and record["source"] == source and _unchanged(record, path):
            continue
        pending.append((film_id, path, source))
    jobs = [ShardJob(str(store_dir), next_shard + i, tuple(pending[start:start + shard_size]),
                     tuple(size), max_pixels)
            for i, start in enumerate(range(0, len(pending), shard_size))]
    return jobs, len(films) - len(pending)


def build_store(films: pd.DataFrame, root: str | os.PathLike, store_dir: str | os.PathLike,
                size: tuple[int, int] = DEFAULT_SIZE, shard_size: int = DEFAULT_SHARD_SIZE,
                max_pixels: int = DEFAULT_MAX_PIXELS, workers: int | None = None,
                scheduler: str = "auto", runner=None) -> dict:
    """Store every poster of ``films`` (columns id, poster) found under ``root``.

    Resumable and incremental; returns counts and the failures of this catalogue by reason.
    Shards run on ``scheduler`` (see kit.scheduler); ``runner(jobs)`` may replace it.
    """
    root, store_dir = Path(root), Path(store_dir)
    if shard_size < 1:
        raise KitError(f"--shard-size must be at least 1, got {shard_size}")
    _check_layout(store_dir, size, shard_size)
    _remove_orphans(store_dir)
    jobs, skipped = plan_jobs(films, root, store_dir, size, shard_size, max_pixels)
    check_scheduler(scheduler)
    if workers is None and scheduler in ("auto", "processes"):
        # One more than the cores: a worker waiting for its shard to reach the disk (fsync)
        # leaves its core to another.
        workers = (os.cpu_count() or 1) + 1
    runner = runner or (lambda pending: run_jobs(build_shard, pending, scheduler, workers))
    total = sum(len(job.items) for job in jobs)
    start = time.perf_counter()
    stored_now = 0
    for sidecar in track(runner(jobs), total, "preprocessing posters", "posters",
                         size=lambda done: len(done["rows"]) + len(done["failed"])):
        stored_now += len(sidecar["rows"])
    elapsed = time.perf_counter() - start
    index, failures = write_index(films, store_dir)
    rate = round(total / elapsed, 1) if total and elapsed > 0 else None
    return {"stored": len(index), "newly_stored": stored_now, "skipped_unchanged": skipped,
            "failed": failures, "seconds": round(elapsed, 2), "posters_per_second": rate}


def write_index(films: pd.DataFrame, store_dir: Path) -> tuple[pd.DataFrame, dict[str, list]]:
    """Write ``index.csv`` for the films of the catalogue; return it and failures by reason."""
    known = _known_files(load_sidecars(store_dir))
    rows, failures = [], {}
    for film_id in films["id"]:
        record = known.get(film_id)
        if record is None:
            continue
        if record["stored"]:
            rows.append([record[c] for c in INDEX_COLUMNS])
        else:
            failures.setdefault(record["reason"], []).append(
                {"id": film_id, "source": record["source"], "detail": record["detail"]})
    index = pd.DataFrame(rows, columns=INDEX_COLUMNS)
    write_csv(store_dir / "index.csv", index)
    return index, failures


class Store:
    """Read access to a built store: ``store[i]`` is the uint8 (3, H, W) poster of index row i."""

    def __init__(self, store_dir: str | os.PathLike):
        self.dir = Path(store_dir)
        index_path = self.dir / "index.csv"
        if not index_path.exists():
            raise KitError(f"no poster store at {self.dir}; run `kit prepare` first")
        self.index = read_table(index_path, numbers=("shard", "row", "source_size",
                                                       "source_mtime_ns"))
        self.size = tuple(read_json(self.dir / "store.json")["size"])
        self._position = {film_id: i for i, film_id in enumerate(self.index["id"])}
        self._shards: dict[int, np.ndarray] = {}
        self._shard = self.index["shard"].to_numpy()
        self._row = self.index["row"].to_numpy()

    def __len__(self) -> int:
        return len(self.index)

    def shard(self, shard: int) -> np.ndarray:
        """The memory-mapped array of one shard (opened once per process)."""
        if shard not in self._shards:
            path = self.dir / f"{shard_name(shard)}.npy"
            try:
                self._shards[shard] = np.load(path, mmap_mode="r")
            except (OSError, ValueError, EOFError) as error:
                raise KitError(f"store shard {path} is missing or cut short ({error}); run "
                               "`kit prepare` again to store its posters again") from None
        return self._shards[shard]

    def positions(self, ids) -> np.ndarray:
        """Index rows of ``ids``; KitError naming the first ids that are not stored."""
        missing = [i for i in ids if i not in self._position]
        if missing:
            raise KitError(f"{len(missing)} ids are not in the store {self.dir}, e.g. "
                           f"{', '.join(missing[:5])}")
        return np.array([self._position[i] for i in ids], dtype=np.int64)

    def __getitem__(self, position: int) -> np.ndarray:
        return self.shard(int(self._shard[position]))[int(self._row[position])]

    def __getstate__(self):
        # Memory maps are reopened in each worker process rather than pickled.
        return {**self.__dict__, "_shards": {}}
