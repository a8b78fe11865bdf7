"""Read and validate a submission CSV against the answer key's ids and genres.

Two formats are accepted:
- wide: ``id`` plus one column per genre, each a probability in [0, 1] or a 0/1 decision;
- labels: ``id,genres`` with ``|``-separated genre names.
UTF-8 with or without BOM, LF or CRLF, quoted fields. A plain wide file (every test id once, every
cell a number in [0, 1]) is read by Arrow's parallel reader (``eval.columnar``); any other file
by pandas in chunks, collecting every problem (with row, column and counts) before anything is
scored. Only the rows of test ids are kept: memory is bounded by the test set, not by the file.
"""
from __future__ import annotations

import warnings
from collections import Counter
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from eval.columnar import plain_values
from eval.csv_text import SubmissionError, read_header, separator_hint
from eval.row_widths import wide_rows
from kit.console import read_chunks
from kit.errors import visible
from kit.labels import parse as parse_labels

CHUNK_ROWS = 250_000
SHOWN = 10                  # items quoted in a message
SHOWN_CHARACTERS = 60       # of each quoted item (an id can be megabytes long)
LABEL_COLUMNS = ("genres", "labels", "genre")


@dataclass
class Submission:
    """A validated submission aligned with the answer key's ids."""
    values: np.ndarray          # (n_test, n_genres) float64 as submitted: probabilities or 0/1
    kind: str                   # "probabilities", "decisions" or "labels"

    @property
    def has_scores(self) -> bool:
        return self.kind == "probabilities"

    @classmethod
    def of_numbers(cls, values: np.ndarray) -> Submission:
        """Decisions when every value is 0 or 1, else probabilities."""
        return cls(values, "decisions" if np.isin(values, (0.0, 1.0)).all() else "probabilities")


def _listing(items, total: int | None = None) -> str:
    """The first few items, each cut to a readable length, and how many there are."""
    items = list(items)
    total = len(items) if total is None else total
    shown = ", ".join(_cut(str(item)) for item in items[:SHOWN])
    return f"{shown}{' ...' if total > SHOWN else ''} ({total} in all)"


def _cut(text: str) -> str:
    text = visible(text)
    return text if len(text) <= SHOWN_CHARACTERS else text[:SHOWN_CHARACTERS - 1] + "…"


def _named_in_another_case(names: list[str], genres: list[str]) -> list[str]:
    """The problem naming each of ``names`` that is one of ``genres`` but for its case
    (``drama is not Drama``), or none."""
    folded = {genre.casefold(): genre for genre in genres}
    recased = [f"{name} is not {folded[name.casefold()]}" for name in names
               if name.casefold() in folded]
    return [f"genre names match exactly, case included: {_listing(recased)}"] if recased else []


def read_submission(path: str | Path, test_ids: list[str], genres: list[str],
                    chunk_rows: int = CHUNK_ROWS) -> Submission:
    """Parse and validate ``path``; SubmissionError lists every problem found."""
    path = Path(path)
    header = read_header(path)
    problems: list[str] = []
    lowered = [name.lower() for name in header]
    if "id" not in lowered:
        columns = f"{len(header)} column{'s' if len(header) != 1 else ''}"
        raise SubmissionError([f"no 'id' column among the header's {columns}: "
                               f"{_listing(header)}{separator_hint(header)}"])
    unnamed = [str(position) for position, name in enumerate(header, 1) if not name]
    if unnamed:
        raise SubmissionError(["columns without a name (a comma at the end of the header?): "
                               f"column {_listing(unnamed)}"])
    duplicated = sorted(name for name, count in Counter(header).items() if count > 1)
    if duplicated:
        raise SubmissionError([f"duplicated columns: {_listing(duplicated)}"])
    named_id = [name for name in header if name.lower() == "id"]
    if len(named_id) > 1:           # no genre may be named id (refused at ingest)
        raise SubmissionError([f"more than one id column: {_listing(named_id)}; keep one"])
    id_column = named_id[0]
    others = [name for name in header if name != id_column]
    label_format = len(others) == 1 and others[0].lower() in LABEL_COLUMNS
    if not label_format:
        unknown = [name for name in others if name not in genres]
        missing = [g for g in genres if g not in others]
        if unknown:
            problems.append(f"unknown genre columns: {_listing(unknown)}")
        if missing:
            problems.append(f"missing genre columns: {_listing(missing)}")
        problems += _named_in_another_case(unknown, missing)
        if problems:
            raise SubmissionError(problems)
        values = plain_values(path, header, id_column, genres, test_ids)
        if values is not None:
            return Submission.of_numbers(values)
    return read_in_chunks(path, header, test_ids, genres, id_column,
                          others[0] if label_format else None, chunk_rows)


def read_in_chunks(path: Path, header: list[str], test_ids: list[str], genres: list[str],
                   id_column: str, label_column: str | None,
                   chunk_rows: int = CHUNK_ROWS) -> Submission:
    """The careful reader, for a file whose header passed: pandas in chunks, naming every
    problem of every row."""
    wide = wide_rows(path, len(header))      # before pandas, which is slow on them
    if wide:
        raise SubmissionError([f"rows with more fields than the header's {len(header)}: lines "
                               f"{_listing(wide)} after the header"])
    reader = _Reader(test_ids, genres, id_column, label_column)
    try:
        # Genre columns parse as numbers where they are numbers; a column with anything else
        # comes back as text, and the careful path names each bad cell.
        # index_col=False: should a row with more fields than the header get past wide_rows,
        # pandas reports it instead of making the extra fields an index.
        text_columns = [id_column] + ([label_column] if label_column else [])
        chunks = read_chunks(path, "reading the submission", names=header, header=0,
                             dtype={c: str for c in text_columns}, keep_default_na=False,
                             encoding="utf-8-sig", chunksize=chunk_rows, skipinitialspace=True,
                             index_col=False)
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always", pd.errors.ParserWarning)
            for chunk in chunks:
                first = reader.rows + 1
                reader.add(chunk)
                if any(issubclass(w.category, pd.errors.ParserWarning) for w in caught):
                    reader.long_rows.append(f"{first}-{reader.rows}")
                    caught.clear()
    except pd.errors.ParserError as error:
        raise SubmissionError([f"the file is not valid CSV: {error}"]) from None
    except UnicodeDecodeError as error:
        raise SubmissionError([f"the file is not UTF-8 text: {error.reason}"]) from None
    return reader.submission()


class _Reader:
    """Accumulates validated rows chunk by chunk, collecting every problem."""

    def __init__(self, test_ids: list[str], genres: list[str], id_column: str,
                 label_column: str | None):
        self.position = pd.Series(np.arange(len(test_ids)), index=pd.Index(test_ids))
        self.genres = genres
        self.id_column = id_column
        self.label_column = label_column
        self.values = np.zeros((len(test_ids), len(genres)), dtype=np.float64)
        self.seen = np.zeros(len(test_ids), dtype=bool)
        self.rows = 0
        self.empty_ids: list[int] = []
        self.duplicates: list[str] = []
        self.duplicate_count = 0
        self.unknown_ids: list[str] = []
        self.unknown_count = 0
        self.bad_cells: dict[str, list[str]] = {}
        self.bad_counts: dict[str, int] = {}
        self.unknown_genres: dict[str, int] = {}
        self.long_rows: list[str] = []      # row ranges holding rows longer than the header

    def _cell_problem(self, kind: str, where: list[str], count: int) -> None:
        self.bad_cells.setdefault(kind, []).extend(where[:SHOWN])
        self.bad_counts[kind] = self.bad_counts.get(kind, 0) + count

    def add(self, chunk: pd.DataFrame) -> None:
        first_row = self.rows + 1
        self.rows += len(chunk)
        ids = chunk[self.id_column].str.strip()
        row_numbers = np.arange(first_row, first_row + len(chunk))
        empty = (ids == "").to_numpy()
        self.empty_ids.extend(row_numbers[empty][:SHOWN].tolist())
        positions = ids.map(self.position)
        known = positions.notna().to_numpy() & ~empty
        unknown = ~known & ~empty
        self.unknown_count += int(unknown.sum())
        self.unknown_ids.extend(ids[unknown].head(SHOWN).tolist())
        positions = positions[known].astype(np.int64).to_numpy()
        repeated = self.seen[positions] | pd.Series(positions).duplicated().to_numpy()
        self.duplicate_count += int(repeated.sum())
        self.duplicates.extend(ids[known][repeated].head(SHOWN).tolist())
        self.seen[positions] = True
        rows = chunk[known]
        numbers = row_numbers[known]
        if self.label_column is not None:
            self.values[positions] = self._parse_labels(rows[self.label_column])
        else:
            self.values[positions] = self._parse_numbers(rows, numbers)

    def _parse_numbers(self, rows: pd.DataFrame, numbers: np.ndarray) -> np.ndarray:
        fast = self._fast_numbers(rows)
        if fast is not None:
            return fast
        out = np.zeros((len(rows), len(self.genres)), dtype=np.float64)
        for j, genre in enumerate(self.genres):
            text = rows[genre].astype(str).str.strip()
            value = pd.to_numeric(text, errors="coerce").to_numpy(dtype=np.float64)
            blank = (text == "").to_numpy()
            literal_nan = text.str.lower().isin(["nan", "-nan", "+nan"]).to_numpy()
            not_number = np.isnan(value) & ~blank & ~literal_nan
            checks = {"empty values": blank, "NaN values": literal_nan,
                      "non-numeric values": not_number,
                      "infinite values": np.isinf(value),
                      "values outside [0, 1]": np.isfinite(value) & ((value < 0) | (value > 1))}
            for kind, mask in checks.items():
                if mask.any():
                    where = [f"row {r} column {genre!r}" for r in numbers[mask][:SHOWN]]
                    self._cell_problem(kind, where, int(mask.sum()))
            out[:, j] = np.where(np.isfinite(value), value, 0)
        return out

    def _fast_numbers(self, rows: pd.DataFrame) -> np.ndarray | None:
        """The values when every cell is a plain number in [0, 1]; else None (the careful path
        then names each problem)."""
        if not all(pd.api.types.is_numeric_dtype(rows[g])
                   and not pd.api.types.is_bool_dtype(rows[g]) for g in self.genres):
            return None     # pandas reads a column of True/False as numbers
        values = rows[self.genres].to_numpy(dtype=np.float64)
        if not np.all((values >= 0) & (values <= 1)):     # also false for NaN
            return None
        return values

    def _parse_labels(self, labels: pd.Series) -> np.ndarray:
        matrix, unknown = parse_labels(labels, self.genres)
        for name, count in unknown.items():
            self.unknown_genres[name] = self.unknown_genres.get(name, 0) + count
        return matrix.astype(np.float64)

    def submission(self) -> Submission:
        """The validated submission, or a SubmissionError listing every problem found."""
        problems = []
        if self.rows == 0:
            problems.append("the file has a header but no rows")
        if self.long_rows:
            problems.append("rows with more fields than the header, among rows "
                            f"{_listing(self.long_rows)}")
        if self.empty_ids:
            problems.append(f"empty id in rows {_listing(self.empty_ids)}")
        if self.duplicate_count:
            problems.append(f"duplicate ids: {_listing(self.duplicates, self.duplicate_count)}")
        if self.unknown_count:
            problems.append("ids not in the test set: "
                            f"{_listing(self.unknown_ids, self.unknown_count)}")
        missing = np.flatnonzero(~self.seen)
        if len(missing) and self.rows:
            ids = self.position.index[missing[:SHOWN]].tolist()
            problems.append(f"missing test ids: {_listing(ids, len(missing))}")
        for kind, where in self.bad_cells.items():
            problems.append(f"{kind}: {_listing(where, self.bad_counts[kind])}")
        if self.unknown_genres:
            names = [f"{n!r} x{c}" for n, c in sorted(self.unknown_genres.items())]
            problems.append(f"unknown genre names: {_listing(names)}")
            problems += _named_in_another_case(sorted(self.unknown_genres), self.genres)
        if problems:
            raise SubmissionError(problems)
        if self.label_column is not None:
            return Submission(self.values, "labels")
        return Submission.of_numbers(self.values)
