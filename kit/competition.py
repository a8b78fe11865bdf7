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
from kit.files import read_json
from kit.labels import encode, genre_list
from kit.workdir import Workdir


@dataclass
class LabelledPart:
    ids: np.ndarray             # (n,) str
    labels: np.ndarray          # (n, genres) uint8


@dataclass
class Competition:
    """The participant's view of a competition: only files under ``public/`` are read."""
    folder: Path

    @classmethod
    def find(cls, workdir: Workdir, name: str | None = None) -> "Competition":
        """The named competition, or the only/latest one in the work folder."""
        root = workdir.competitions
        if name:
            # A name in the work folder first; a path to a competition folder otherwise.
            for folder in (root / name, Path(name)):
                if (folder / "public" / "train.csv").exists():
                    return cls(folder)
            raise KitError(f"no competition {name!r} in {root}")
        found = sorted((p for p in root.glob("*") if (p / "public" / "train.csv").exists()),
                       key=lambda p: (p / "public" / "train.csv").stat().st_mtime) \
            if root.is_dir() else []
        if not found:
            raise KitError(f"no competition in {root}; run `kit split` or `kit join` first")
        return cls(found[-1])

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
        return pd.read_csv(self.public / "train.csv", dtype=str, keep_default_na=False)

    def labelled_parts(self) -> dict[str, "LabelledPart"]:
        """The ``train`` and ``valid`` parts: their ids and label matrices."""
        table = self.train_table()
        genres = self.genres()
        return {part: LabelledPart(table.loc[table["part"] == part, "id"].to_numpy(),
                                   encode(table.loc[table["part"] == part, "genres"], genres))
                for part in ("train", "valid")}

    def test_ids(self) -> list[str]:
        test = pd.read_csv(self.public / "test.csv", dtype=str, keep_default_na=False)
        return test["id"].tolist()

    def normalisation(self) -> dict:
        return read_json(self.public / "normalization.json")

    def store_dir(self) -> Path:
        return (self.public / self.info()["store"]).resolve()

    def store(self):
        """The poster store the competition was split from (or joined into)."""
        from kit.store import Store
        return Store(self.store_dir())
