"""Argument types that check a value's range where the command line is parsed."""
from __future__ import annotations

import argparse

from kit.errors import KitError
from kit.workdir import DEFAULT_WORKDIR, safe_name


def _integer(text: str) -> int:
    try:
        return int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected an integer, got {text!r}")


def whole(low: int, high: int):
    """An argparse type: a whole number from ``low`` to ``high``, checked where it is parsed."""
    def parse(text: str) -> int:
        value = _integer(text)
        if not low <= value <= high:
            raise argparse.ArgumentTypeError(f"must be from {low:,} to {high:,}, got {value:,}")
        return value
    return parse


def number(low: float, high: float):
    """An argparse type: a finite number from ``low`` to ``high``."""
    def parse(text: str) -> float:
        try:
            value = float(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"expected a number, got {text!r}")
        if not low <= value <= high:
            raise argparse.ArgumentTypeError(f"must be from {low:g} to {high:g}, got {text}")
        return value
    return parse


def path_text(text: str) -> str:
    """An argparse type: a file or folder path. An empty one (often an unset shell variable,
    ``--out "$OUT"``) is refused where it is parsed instead of meaning the current folder."""
    if not text.strip():
        raise argparse.ArgumentTypeError("an empty path; name a file or folder ('.' for the "
                                         "current folder)")
    return text


def folder_text(text: str) -> str:
    """An argparse type: a folder path (``path_text``) that is not an existing file."""
    import os
    if os.path.exists(path_text(text)) and not os.path.isdir(text):
        raise argparse.ArgumentTypeError(f"{text} is a file, not a folder")
    return text


def usable_name(text: str) -> str:
    """An argparse type: a name usable as a folder (``kit.workdir.safe_name``), so an empty or
    odd ``--name ''`` is refused where it is parsed instead of falling back to the default."""
    try:
        return safe_name(text)
    except KitError as error:
        raise argparse.ArgumentTypeError(str(error)) from None


def check_server_url(text: str, what: str = "--server") -> str:
    """A grading server's address (``http[s]://host[:port]``, no trailing ``/``); KitError
    naming ``what`` gave it (the option, or the bundle) when it is none."""
    from urllib.parse import urlsplit
    if not text.startswith(("http://", "https://")):
        raise KitError(f"{what} must start with http:// or https://, got {text!r}")
    try:
        parts = urlsplit(text)
        host, _ = parts.hostname, parts.port        # .port raises on one that is no number
    except ValueError as error:
        raise KitError(f"{what} {text!r} is not a URL: {error}") from None
    if not host:
        raise KitError(f"{what} {text!r} names no host")
    return text.rstrip("/")


def server_url(text: str) -> str:
    """An argparse type: a grading server's address (``check_server_url``)."""
    try:
        return check_server_url(text, "the address")
    except KitError as error:
        raise argparse.ArgumentTypeError(str(error)) from None


def message_text(text: str) -> str:
    """An argparse type: the note sent beside a submission, no longer than the server takes."""
    from eval.rules import MAX_MESSAGE
    if len(text) > MAX_MESSAGE:
        raise argparse.ArgumentTypeError(f"at most {MAX_MESSAGE:,} characters, got "
                                         f"{len(text):,}")
    return text


def add_workdir_option(parser: argparse.ArgumentParser, *, command: bool) -> None:
    """``--workdir`` on the program and on each of its commands, so it may come before or after
    the command (``kit --workdir W train`` read ``W`` as the command's name); a command's copy has
    no default, so it never overwrites a folder given before the command."""
    parser.add_argument("--workdir", type=folder_text,
                        default=argparse.SUPPRESS if command else DEFAULT_WORKDIR,
                        help=f"folder for generated data, stores, runs "
                             f"(default: {DEFAULT_WORKDIR})")


SEED = whole(0, 2**31 - 1)
WORKERS = whole(1, 1024)
POSTER_SIDES = (8, 4096)        # the stored posters' height and width, in pixels


def poster_size(text: str) -> tuple[int, int]:
    """An argparse type: HEIGHTxWIDTH of the stored posters, each from 8 to 4096."""
    try:
        height, width = (int(v) for v in text.lower().split("x"))
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected HEIGHTxWIDTH such as 345x230, got {text!r}")
    low, high = POSTER_SIDES
    if not (low <= height <= high and low <= width <= high):
        raise argparse.ArgumentTypeError(f"image height and width must be between {low} and "
                                         f"{high}, got {height}x{width}")
    return height, width


def _scheduler(text: str) -> str:
    """An argparse type: a scheduler name or a Dask address (``kit.scheduler``)."""
    from kit.scheduler import check_scheduler
    try:
        return check_scheduler(text)
    except KitError as error:
        raise argparse.ArgumentTypeError(str(error))


def add_scheduler_argument(sub: argparse.ArgumentParser, default: str = "auto") -> None:
    """``--scheduler``: where shard work and side-by-side heads run."""
    sub.add_argument("--scheduler", default=default, type=_scheduler,
                     help="auto (the fastest local executor: a process pool), local (a Dask "
                          "LocalCluster), processes (a plain process pool), inline, or "
                          "tcp://host:port (an existing Dask cluster); default %(default)s")
