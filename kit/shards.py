"""One shard of the poster store, built by one worker: read, checksum and decode its posters,
write the pixels and then the sidecar that commits them.

This is all a worker process imports (no pandas): pool workers fork from a server that has
imported this module once, and a lighter module starts that server sooner.
"""
from __future__ import annotations

import hashlib
import os
from dataclasses import dataclass
from pathlib import Path
from stat import S_ISREG

import cv2
import numpy as np

from kit.files import atomic_path, write_json
from kit.imaging import PosterError, decode_poster


@dataclass(frozen=True)
class ShardJob:
    """Everything a worker needs to build one shard."""
    store_dir: str
    shard: int
    items: tuple[tuple[str, str, str], ...]   # (id, absolute path, source path as recorded)
    size: tuple[int, int]
    max_pixels: int


def shard_name(shard: int) -> str:
    """The file stem of shard number ``shard``."""
    return f"shard-{shard:06d}"


def build_shard(job: ShardJob) -> dict:
    """Decode every poster of ``job`` and write the shard; return its sidecar record."""
    cv2.setNumThreads(1)  # parallelism comes from running shards in separate processes
    height, width = job.size
    pixels = np.empty((len(job.items), 3, height, width), dtype=np.uint8)
    rows, failed = [], []
    for film_id, path, source in job.items:
        record = {"id": film_id, "source": source}
        try:
            data, stat = read_regular_file(path)
            record.update(source_size=stat.st_size, source_mtime_ns=stat.st_mtime_ns,
                          source_identity=file_identity(stat),
                          checksum=hashlib.blake2b(data, digest_size=16).hexdigest())
            decode_poster(data, job.size, job.max_pixels, out=pixels[len(rows)])
        except PosterError as error:
            failed.append({**record, "reason": error.reason, "detail": error.detail})
            continue
        except OSError as error:
            failed.append({**record, "reason": "unreadable",
                           "detail": error.strerror or str(error)})
            continue
        rows.append({**record, "row": len(rows)})
    base = Path(job.store_dir) / shard_name(job.shard)
    # Not fsynced (the store is rebuilt from the posters): a shard a power loss cut short is
    # found by shard_is_whole and built again.
    with atomic_path(base.with_suffix(".npy"), durable=False) as tmp:
        with open(tmp, "wb") as handle:
            np.save(handle, pixels[:len(rows)])
    sidecar = {"shard": job.shard, "rows": rows, "failed": failed}
    write_json(base.with_suffix(".json"), sidecar)
    return sidecar


def read_regular_file(path: str) -> tuple[bytes, os.stat_result]:
    """The bytes of a regular file and its stat; a FIFO, device or folder is a PosterError,
    found without blocking on it (opened non-blocking, checked before any read)."""
    descriptor = os.open(path, os.O_RDONLY | os.O_NONBLOCK)
    stat = os.fstat(descriptor)
    if not S_ISREG(stat.st_mode):
        os.close(descriptor)
        raise PosterError("not-a-file", "not a regular file (a FIFO, device or folder)")
    with os.fdopen(descriptor, "rb") as handle:
        return handle.read(), stat


def file_identity(stat: os.stat_result) -> list[int]:
    """What changes whenever a file's bytes may have: size, mtime, and the ctime and inode that
    no tool can set back (git's rule). A poster rewritten with its old size and mtime restored
    has a new ctime; only a stat, no read, is needed to know."""
    return [stat.st_size, stat.st_mtime_ns, stat.st_ctime_ns, stat.st_ino]


def shard_is_whole(path: Path) -> bool:
    """Whether a shard array holds every byte its header promises."""
    try:
        with open(path, "rb") as handle:
            version = np.lib.format.read_magic(handle)
            read_header = (np.lib.format.read_array_header_1_0 if version == (1, 0)
                           else np.lib.format.read_array_header_2_0)
            shape, _, dtype = read_header(handle)
            expected = handle.tell() + int(np.prod(shape)) * np.dtype(dtype).itemsize
        return os.path.getsize(path) == expected
    except (OSError, ValueError):
        return False
