"""The answer key: the only code that reads a competition's ``private/`` folder."""
from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from kit.errors import KitError
from kit.labels import encode, genre_list
from kit.workdir import Workdir
from kit.files import read_table, regular_file

USAGES = ("Public", "Private")


@dataclass
class AnswerKey:
    """Test labels, their usage (Public/Private) and the training prevalence of each genre."""
    competition: Path
    ids: list[str]
    labels: np.ndarray            # (n, G) uint8
    usage: np.ndarray             # (n,) str
    genres: list[str]
    prevalence: np.ndarray        # (G,) share of training films with each genre
    _references: dict = field(default_factory=dict, repr=False)

    @property
    def closed(self) -> bool:
        """A closed competition shows its private scores to everyone."""
        return (self.competition / "CLOSED").exists()

    def part(self, usage: str) -> np.ndarray:
        return np.flatnonzero(self.usage == usage)

    def references(self, usage: str) -> dict[str, dict]:
        """Scores of the trivial predictors on one part (computed once per key and part)."""
        if usage not in self._references:
            from eval.metrics import reference_predictions, score
            rows = self.part(usage)
            truth = self.labels[rows]
            self._references[usage] = {
                name: score(truth, decided, self.genres)
                for name, decided in reference_predictions(self.prevalence, len(rows)).items()}
        return self._references[usage]


def find_answers(workdir: Workdir, competition: str | None = None,
                 answers: str | None = None) -> Path:
    """Path of the answer key: given, or that of the named (default: latest) competition."""
    if answers:
        return regular_file(answers, "answer key")
    from kit.competition import Competition
    return Competition.find(workdir, competition).answers


def valid_key(competition) -> AnswerKey:
    """A key for the valid part, from the public training table: what a participant (who holds
    no answer key) can score on. Every film is in its "Public" part."""
    table = competition.train_table()
    genres = competition.genres()
    valid = table[table["part"] == "valid"]
    return AnswerKey(competition.folder, valid["id"].tolist(), encode(valid["genres"], genres),
                     np.full(len(valid), "Public"), genres,
                     encode(table.loc[table["part"] == "train", "genres"], genres).mean(0))


def load_answers(path: str | Path) -> AnswerKey:
    """Read ``answers.csv`` and, beside it, the competition's genre list and training prior."""
    path = Path(path)
    folder = path.parent.parent
    try:
        frame = read_table(path)
    except OSError as error:
        raise KitError(f"cannot read the answer key {path}: {error}") from None
    if list(frame.columns) != ["id", "genres", "usage"]:
        raise KitError(f"answer key {path} must have columns id,genres,usage")
    genres_path = folder / "public" / "genres.txt"
    genres = genre_list(genres_path) if genres_path.exists() else sorted(
        {g for text in frame["genres"] for g in text.split("|") if g})
    train_path = folder / "public" / "train.csv"
    if not train_path.exists():
        # The "training prior" reference must come from training labels: computed from the
        # test labels it would be an oracle posing as a reference.
        raise KitError(f"{train_path} is missing: the reference predictors need the training "
                       "labels beside the answer key")
    train = read_table(train_path)
    prevalence = encode(train["genres"], genres).mean(0)
    return AnswerKey(folder, frame["id"].tolist(), encode(frame["genres"], genres),
                     frame["usage"].to_numpy(), genres, prevalence)
