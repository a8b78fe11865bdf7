"""Files torch.save writes: a failed write is the OSError it is, a read is weights only, and
whatever a file holds, one clear error.

Unpickling a global that is not on the allowed list could run code from a file someone else
made, so such a file is refused and its foreign names are reported instead.
"""
from __future__ import annotations

import pickle
from pathlib import Path

import torch

from kit.errors import KitError


def save(payload: object, path: Path) -> None:
    """torch.save ``payload`` to ``path``. Written through a Python file, so a failed write
    (a full disk) is the OSError it is: torch wraps it in a RuntimeError ("unexpected pos")."""
    try:
        with open(path, "wb") as handle:
            torch.save(payload, handle)
    except RuntimeError as error:
        if isinstance(error.__context__, OSError):
            raise error.__context__ from None
        raise


def load_weights_only(path: Path, what: str, allowed: list | tuple = ()) -> object:
    """The object saved in ``path`` (``what`` names the file in messages), with tensors, plain
    data and the ``allowed`` globals only; KitError for a foreign, truncated or unsafe file."""
    try:
        with torch.serialization.safe_globals(list(allowed)):
            return torch.load(path, map_location="cpu", weights_only=True)
    except Exception as error:          # torch raises many types for a truncated or foreign file
        foreign = _foreign_globals(path, allowed) \
            if isinstance(error, pickle.UnpicklingError) else []
        if foreign:
            raise KitError(f"{what} {path} holds objects other than weights, numbers and "
                           f"arrays ({', '.join(foreign[:3])}); it was not loaded, as loading "
                           "them could run code") from None
        raise KitError(f"{what} {path} is not a file torch.save wrote "
                       f"({type(error).__name__})") from None


def _foreign_globals(path: Path, allowed: list | tuple = ()) -> list[str]:
    """The names ``path`` would unpickle beyond ``allowed`` ([] for a file that is not a zip
    file torch.save wrote)."""
    known = {f"{kind.__module__}.{kind.__qualname__}" for kind in allowed}
    try:
        found = torch.serialization.get_unsafe_globals_in_checkpoint(path)
    except Exception:                   # not a zip checkpoint: truncated or foreign
        return []
    return [name for name in found if name not in known]
