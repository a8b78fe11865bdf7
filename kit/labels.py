"""Genre labels: ``|``-joined strings <-> compact uint8 indicator matrices, and genres.txt."""
from __future__ import annotations

from collections import Counter
from pathlib import Path
from typing import Iterable

import numpy as np

SEPARATOR = "|"


def parse(genre_strings: Iterable[str], genres: list[str]) -> tuple[np.ndarray, Counter]:
    """An (n, len(genres)) uint8 indicator matrix of ``|``-joined genre strings (names stripped,
    empty names skipped) and how often each name not in ``genres`` occurred.

    Each distinct string is split once: a million films hold a few thousand combinations."""
    import pandas as pd
    if not isinstance(genre_strings, pd.Series):
        genre_strings = pd.Series(list(genre_strings), dtype=object)
    codes, distinct = pd.factorize(genre_strings, sort=False)
    column = {g: j for j, g in enumerate(genres)}
    rows = np.zeros((len(distinct), len(genres)), dtype=np.uint8)
    unknown_rows: dict[int, list[str]] = {}
    for i, text in enumerate(distinct):
        for name in text.split(SEPARATOR):
            name = name.strip()
            j = column.get(name)
            if j is not None:
                rows[i, j] = 1
            elif name:
                unknown_rows.setdefault(i, []).append(name)
    unknown: Counter = Counter()
    if unknown_rows:
        times = np.bincount(codes, minlength=len(distinct))
        for i, names in unknown_rows.items():
            for name in names:
                unknown[name] += int(times[i])
    return rows[codes], unknown


def encode(genre_strings: Iterable[str], genres: list[str]) -> np.ndarray:
    """An (n, len(genres)) uint8 indicator matrix; genres not in ``genres`` are ignored."""
    return parse(genre_strings, genres)[0]


def decode(matrix: np.ndarray, genres: list[str]) -> list[str]:
    """The ``|``-joined genre string of each row of an indicator matrix."""
    return [SEPARATOR.join(genres[j] for j in np.flatnonzero(row)) for row in matrix]


def genre_list(path: str | Path) -> list[str]:
    """Read a genres.txt file: one genre per line, split at ``\\n`` only (a name never holds a
    line break: ingest refuses such names)."""
    return [line for line in Path(path).read_text(encoding="utf-8").split("\n") if line]
