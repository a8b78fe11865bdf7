"""Atomic file writes: every artefact is written to a temporary name, then renamed."""
from __future__ import annotations

import contextlib
import errno
import glob
import json
import os
import shutil
import socket
import tempfile
from pathlib import Path
from typing import Any, Iterator


def shared_mode() -> int:
    """The mode a new shared file gets under the current umask (0644 under umask 022)."""
    mask = os.umask(0)
    os.umask(mask)
    return 0o666 & ~mask


@contextlib.contextmanager
def atomic_path(path: str | os.PathLike, private: bool = False,
                durable: bool = True) -> Iterator[Path]:
    """Yield a temporary path beside ``path``; rename it onto ``path`` only if the block succeeds.

    The file is created with the umask's mode, as any shared artefact should be, or 0600 when
    ``private`` (the answer key). Temporary names carry the writer's host and PID, so that a
    successful write can remove the temporaries that killed writers (kill -9) left behind.
    ``durable``: on the disk (fsync) before the rename, so even a power loss cannot leave it cut
    short; a file its reader checks for that (a store shard) can skip the wait."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    try:
        fd, tmp = tempfile.mkstemp(prefix=f"{_temporary_prefix(path)}{os.getpid()}.",
                                   suffix=".tmp", dir=path.parent)
    except OSError as error:
        raise _named_as_asked(error, path) from None
    os.fchmod(fd, 0o600 if private else shared_mode())
    os.close(fd)
    tmp = Path(tmp)
    try:
        yield tmp
        if durable:
            with open(tmp, "rb+") as handle:
                os.fsync(handle.fileno())
        os.replace(tmp, path)
        _remove_abandoned(path)
    except OSError as error:
        if error.errno is None:
            # numpy reports a short write ("N requested and M written") without an errno: the
            # file system took less than it was given, which is a full disk.
            raise OSError(errno.ENOSPC, f"{os.strerror(errno.ENOSPC)} ({error})", str(path)) \
                from None
        if error.filename is None or str(error.filename) == str(tmp):
            raise _named_as_asked(error, path) from None
        raise
    finally:
        tmp.unlink(missing_ok=True)


def _named_as_asked(error: OSError, path: Path) -> OSError:
    """``error`` about the file ``path``, not about the temporary written in its place."""
    return OSError(error.errno, error.strerror, str(path))


def _temporary_prefix(path: Path) -> str:
    return f".{path.name}.{socket.gethostname().replace('.', '_')}-"


def _remove_abandoned(path: Path) -> None:
    """Delete temporaries of ``path`` whose writer ran on this host and is gone."""
    prefix = _temporary_prefix(path)
    for stray in path.parent.glob(f"{glob.escape(prefix)}*.tmp"):
        pid = stray.name[len(prefix):].split(".", 1)[0]
        if pid.isdigit() and not process_alive(int(pid)):
            stray.unlink(missing_ok=True)


def process_alive(pid: int) -> bool:
    """Whether a process with this pid runs on this machine (a killed writer's does not)."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:     # alive, owned by another user
        pass
    return True


def write_text(path: str | os.PathLike, text: str, private: bool = False) -> None:
    """Write ``text`` to ``path`` atomically (UTF-8)."""
    with atomic_path(path, private) as tmp:
        tmp.write_text(text, encoding="utf-8")


def write_json(path: str | os.PathLike, data: Any) -> None:
    """Write ``data`` as indented JSON to ``path`` atomically."""
    write_text(path, json.dumps(data, indent=2, sort_keys=False, default=str) + "\n")


def write_csv(path: str | os.PathLike, frame, private: bool = False) -> None:
    """Write a pandas DataFrame to ``path`` atomically, without its index."""
    with atomic_path(path, private) as tmp:
        frame.to_csv(tmp, index=False)


@contextlib.contextmanager
def exclusive_lock(path: str | os.PathLike, holder: str) -> Iterator[None]:
    """Hold an exclusive lock on ``path`` (created if needed) for the block; when another process
    holds it, a KitError names that process. The lock ends with the process, even on kill -9.
    A folder made for the lock that holds nothing else at the end is removed (a command refused
    before it wrote anything leaves no folder behind)."""
    import fcntl
    from kit.errors import KitError
    path = Path(path)
    made = not path.parent.exists()
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "a+", encoding="utf-8") as handle:
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            handle.seek(0)
            raise KitError(f"{path.parent} is busy: {handle.read().strip() or 'another process'} "
                           "holds it; wait for it to finish") from None
        handle.seek(0)
        handle.truncate()
        handle.write(f"{holder} (pid {os.getpid()} on {socket.gethostname()})\n")
        handle.flush()
        try:
            yield
        finally:
            handle.seek(0)
            handle.truncate()
            if made and [p.name for p in path.parent.iterdir()] == [path.name]:
                shutil.rmtree(path.parent, ignore_errors=True)   # still held: none starts in it


def read_table(path: str | os.PathLike, columns: list[str] | None = None,
               numbers: tuple[str, ...] = (), shown: str | None = None):
    """A CSV as written: every cell a string (ids such as ``NA``, ``null`` or ``0012`` stay as
    they are), except the integer columns named in ``numbers``. The one way the kit reads its
    id tables. A file that is not such a CSV (empty, not UTF-8, malformed, a column missing or
    not whole numbers) is one KitError naming the file (as ``shown``, default its path)."""
    import pandas as pd

    from kit.errors import KitError
    shown = shown or str(path)
    try:
        if columns:
            header = pd.read_csv(path, dtype=str, nrows=0).columns
            missing = [column for column in columns if column not in header]
            if missing:
                raise KitError(f"{shown} has no column {', '.join(missing)} (its columns: "
                               f"{', '.join(map(str, header[:10]))})")
        frame = pd.read_csv(path, dtype=str, keep_default_na=False, usecols=columns)
        for column in numbers:
            frame[column] = frame[column].astype("int64")
    except UnicodeDecodeError:
        raise KitError(f"cannot read {shown}: it is not UTF-8 text") from None
    except pd.errors.EmptyDataError:
        raise KitError(f"cannot read {shown}: the file is empty") from None
    except (pd.errors.ParserError, ValueError, KeyError) as error:
        raise KitError(f"cannot read {shown}: {error}") from None
    return frame


def regular_file(path: str | os.PathLike, what: str, hint: str = "") -> Path:
    """``path`` when it is a regular file (or a link to one); else one KitError saying that the
    ``what`` it names is a folder, a pipe or device (reading one would wait for a writer for
    ever), or nothing, followed by ``hint``."""
    from kit.errors import KitError
    path = Path(path)
    if path.is_file():
        return path
    kind = ("is a folder" if path.is_dir() else
            "is not a regular file (a pipe or a device)" if path.exists() else "does not exist")
    raise KitError(f"{what} {path} {kind}{hint}")


def file_digest(path: str | os.PathLike) -> str:
    """SHA-256 of a file's bytes (hex): the identity of a weights file, whatever its name."""
    import hashlib
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def read_json(path: str | os.PathLike) -> Any:
    """The JSON in ``path``."""
    return json.loads(Path(path).read_text(encoding="utf-8"))
