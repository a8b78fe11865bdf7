"""A frozen competition's folder and the paths of its parts (no torch, no training stack).

``public/`` is what participants get; ``private/answers.csv`` is the answer key, read only by the
grader; ``rules.json`` and ``server/`` are the organiser's.
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from kit.errors import KitError
from kit.files import read_json, read_table, write_text
from kit.labels import encode, genre_list
from kit.workdir import Workdir, safe_name


_ANNOUNCED: set[str] = set()


def _announced(competition: "Competition") -> "Competition":
    """Say once per process which competition a command uses."""
    if competition.name not in _ANNOUNCED:
        _ANNOUNCED.add(competition.name)
        from kit.console import console
        console.print(f"competition: {competition.name}", markup=False, highlight=False)
    return competition


def _complete(folder: Path) -> bool:
    """A competition folder, complete: competition.json is written last (by split and join)."""
    return (folder / "public" / "competition.json").exists()


def current_name(workdir: Workdir) -> str | None:
    """The work folder's current competition (`kit use`), or None."""
    path = workdir.competitions / "CURRENT"
    return path.read_text(encoding="utf-8").strip() or None if path.exists() else None


def use_competition(workdir: Workdir, name: str) -> dict:
    """`kit use NAME`: make ``name`` the work folder's current competition."""
    competition = Competition.find(workdir, safe_name(name))
    write_text(workdir.competitions / "CURRENT", competition.name + "\n")
    return {"competition": competition.name, "current": True}


@dataclass
class LabelledPart:
    """The ids and 0/1 genre labels of one part of a competition."""
    ids: np.ndarray             # (n,) str
    labels: np.ndarray          # (n, genres) uint8


@dataclass
class Competition:
    """The participant's view of a competition: only files under ``public/`` are read."""
    folder: Path

    @classmethod
    def find(cls, workdir: Workdir, name: str | None = None) -> "Competition":
        """The named competition, else the work folder's current one (set by `kit split`,
        `kit join` and `kit use`), else the only one; never a silent guess among several."""
        root = workdir.competitions
        if name:
            # A name in the work folder first; a path to a competition folder otherwise.
            for folder in (root / name, Path(name)):
                if _complete(folder):
                    return _announced(cls(folder))
            raise KitError(f"no competition {name!r} in {root}")
        current = current_name(workdir)
        if current and _complete(root / current):
            return _announced(cls(root / current))
        found = sorted(p.name for p in root.glob("[!.]*") if _complete(p)) \
            if root.is_dir() else []
        if not found:
            raise KitError(f"no competition in {root}; run `kit split` or `kit join` first")
        if len(found) > 1:
            raise KitError(f"{len(found)} competitions in {root} ({', '.join(found[:5])}) and "
                           "none is current: choose one with `kit use NAME` or --competition")
        return _announced(cls(root / found[0]))

    @property
    def public(self) -> Path:
        return self.folder / "public"

    @property
    def answers(self) -> Path:
        """The answer key (organiser only)."""
        return self.folder / "private" / "answers.csv"

    @property
    def rules_path(self) -> Path:
        return self.folder / "rules.json"

    @property
    def server(self) -> Path:
        """The grading server's folder: database, admin token, uploaded files (organiser only)."""
        return self.folder / "server"

    @property
    def closed_marker(self) -> Path:
        return self.folder / "CLOSED"

    @property
    def name(self) -> str:
        return self.folder.name

    def info(self) -> dict:
        """``public/competition.json``."""
        return read_json(self.public / "competition.json")

    def genres(self) -> list[str]:
        return genre_list(self.public / "genres.txt")

    def train_table(self) -> pd.DataFrame:
        return read_table(self.public / "train.csv")

    def labelled_parts(self) -> dict[str, "LabelledPart"]:
        """The ``train`` and ``valid`` parts: their ids and label matrices."""
        table = self.train_table()
        genres = self.genres()
        return {part: LabelledPart(table.loc[table["part"] == part, "id"].to_numpy(),
                                   encode(table.loc[table["part"] == part, "genres"], genres))
                for part in ("train", "valid")}

    def test_ids(self) -> list[str]:
        test = read_table(self.public / "test.csv")
        return test["id"].tolist()

    def normalisation(self) -> dict:
        return read_json(self.public / "normalization.json")

    def store_dir(self) -> Path:
        return (self.public / self.info()["store"]).resolve()

    def store(self):
        """The poster store the competition was split from (or joined into)."""
        from kit.store import Store
        return Store(self.store_dir())
