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


def usable_name(text: str) -> str:
    """An argparse type: a name usable as a folder (``kit.workdir.safe_name``), so an empty or
    odd ``--name ''`` is refused where it is parsed instead of falling back to the default."""
    try:
        return safe_name(text)
    except KitError as error:
        raise argparse.ArgumentTypeError(str(error)) from None


def add_workdir_option(parser: argparse.ArgumentParser, *, command: bool) -> None:
    """``--workdir`` on the program and on each of its commands, so it may come before or after
    the command (``kit --workdir W train`` read ``W`` as the command's name); a command's copy has
    no default, so it never overwrites a folder given before the command."""
    parser.add_argument("--workdir", type=path_text,
                        default=argparse.SUPPRESS if command else DEFAULT_WORKDIR,
                        help=f"folder for generated data, stores, runs "
                             f"(default: {DEFAULT_WORKDIR})")


SEED = whole(0, 2**31 - 1)
WORKERS = whole(1, 1024)
