"""Genre labels: ``|``-joined strings <-> compact uint8 indicator matrices."""
from __future__ import annotations

from pathlib import Path
from typing import Iterable

import numpy as np

SEPARATOR = "|"


def encode(genre_strings: Iterable[str], genres: list[str]) -> np.ndarray:
    """An (n, len(genres)) uint8 indicator matrix; genres not in ``genres`` are ignored."""
    column = {g: j for j, g in enumerate(genres)}
    strings = list(genre_strings)
    matrix = np.zeros((len(strings), len(genres)), dtype=np.uint8)
    for i, text in enumerate(strings):
        for genre in text.split(SEPARATOR):
            j = column.get(genre)
            if j is not None:
                matrix[i, j] = 1
    return matrix


def decode(matrix: np.ndarray, genres: list[str]) -> list[str]:
    """The ``|``-joined genre string of each row of an indicator matrix."""
    return [SEPARATOR.join(genres[j] for j in np.flatnonzero(row)) for row in matrix]


def genre_list(path: str | Path) -> list[str]:
    """Read a genres.txt file (one genre per line)."""
    return [line for line in Path(path).read_text(encoding="utf-8").splitlines() if line]
