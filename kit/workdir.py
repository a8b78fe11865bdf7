"""Where generated things live inside the work folder (default ``./work``, git-ignored)."""
from __future__ import annotations

import re
from pathlib import Path

from kit.errors import KitError

DEFAULT_WORKDIR = "work"


def safe_name(name: str) -> str:
    """A name usable as a folder: letters, digits, ``._-``; KitError otherwise."""
    if not re.fullmatch(r"[A-Za-z0-9][A-Za-z0-9._-]{0,99}", name or ""):
        raise KitError(f"{name!r} is not a usable name: up to 100 letters, digits, '.', '_' or "
                       "'-', starting with a letter or digit")
    return name


def derived_name(text: str) -> str:
    """A usable name made from ``text`` (a data folder's name such as ``.holdout`` or
    ``my posters``): other characters become ``-``, leading ``.``, ``_`` and ``-`` go."""
    return re.sub(r"[^A-Za-z0-9._-]+", "-", text).lstrip("._-")[:100].rstrip("-") or "dataset"


class Workdir:
    """Paths of datasets, stores, competitions and runs under one root."""

    def __init__(self, root: str | Path = DEFAULT_WORKDIR):
        self.root = Path(root)

    def dataset(self, name: str) -> Path:
        return self.root / "datasets" / safe_name(name)

    def store(self, name: str, size: tuple[int, int]) -> Path:
        return self.dataset(name) / f"store-{size[0]}x{size[1]}"

    def prepared_store(self, dataset: str) -> Path:
        """The store ``kit prepare`` built for ``dataset``, inside this work folder (prepare.json
        names its folder; older files held a path from where prepare ran)."""
        from kit.files import read_json
        meta_path = self.dataset(dataset) / "prepare.json"
        if not meta_path.exists():
            raise KitError(f"dataset {dataset!r} is not prepared in {self.root}; "
                           "run `kit prepare DATA_DIR` first")
        return self.dataset(dataset) / Path(read_json(meta_path)["store"]).name

    def datasets(self) -> list[str]:
        folder = self.root / "datasets"
        return sorted(p.name for p in folder.iterdir() if (p / "films.csv").exists()) \
            if folder.is_dir() else []

    @property
    def competitions(self) -> Path:
        return self.root / "competitions"

    @property
    def runs(self) -> Path:
        return self.root / "runs"

    def run(self, name: str) -> Path:
        return self.runs / safe_name(name)

    def latest_dataset(self) -> str:
        """The only (or most recently prepared) dataset; KitError when there is none."""
        names = self.datasets()
        if not names:
            raise KitError(f"no prepared dataset in {self.root}; run `kit prepare DATA_DIR` first")
        return max(names, key=lambda n: (self.dataset(n) / "films.csv").stat().st_mtime)
