"""A data set's label file: which layout it is in, and its rows read in chunks into each
film's genres, with what was odd about them counted.
"""
from __future__ import annotations

import ast
from collections import Counter, defaultdict
from pathlib import Path

import pandas as pd

from kit.console import read_chunks
from kit.errors import KitError

LAYOUTS = ("letterboxd", "wide", "list")
ID_COLUMNS = ("id", "imdbid", "imdb_id", "movie_id", "film_id", "tconst")
GENRE_LIST_COLUMNS = ("genres", "genre", "genre_list", "labels")
DEFAULT_CHUNKSIZE = 500_000
SCHEMA_ROWS = 10_000        # rows read to decide a wide file's genre columns, whatever --chunksize
# A wide file's cells, lower-cased: 0/1 as written by hand or NumPy, false/true as pandas,
# Excel and R write booleans; a blank cell means 0.
TRUE_VALUES = {"1", "1.0", "true"}
BINARY_VALUES = TRUE_VALUES | {"0", "0.0", "false", ""}
MISSING = {"nan", "none", "null", "na", "n/a"}     # a missing value, never a genre name
# Characters that end a line somewhere (str.splitlines, CSV readers): a genre name holding one
# would split into phantom genres in genres.txt.
LINE_BREAKS = "\n\r\v\f\x1c\x1d\x1e\x85\u2028\u2029"


def unsafe_ids(ids: pd.Series) -> pd.Series:
    """True for each id that could name a path outside the poster folder: empty, ``.``,
    starting with ``..``, or holding a slash, a backslash or a NUL (an absolute path holds a
    slash)."""
    return (ids.isin(["", "."]) | ids.str.startswith("..")
            | ids.str.contains("/", regex=False) | ids.str.contains("\\", regex=False)
            | ids.str.contains("\x00", regex=False))


def _id_column(columns) -> str | None:
    for column in columns:
        if str(column).strip().lower() in ID_COLUMNS:
            return column
    return None


def _read_head(path: Path, rows: int = 200, strict: bool = False) -> pd.DataFrame:
    """The header and first ``rows`` rows as text. A repeated column name is an error when
    ``strict`` (reading labels); for detecting a layout, where any CSV of the folder is looked
    at, repeated names are told apart by their position instead."""
    try:
        head = pd.read_csv(path, nrows=rows, dtype=str, keep_default_na=False,
                           encoding="utf-8-sig", header=None, skipinitialspace=True)
    except (pd.errors.ParserError, pd.errors.EmptyDataError, UnicodeDecodeError) as error:
        raise _unreadable(path, error) from None
    names = [str(name).strip() for name in head.iloc[0]]
    repeated = sorted(name for name, count in Counter(names).items() if count > 1)
    if repeated and strict:
        raise KitError(f"{path} repeats the column names {', '.join(map(repr, repeated))}; "
                       "each column needs its own name")
    if repeated:
        names = [f"{name} ({position})" if name in repeated else name
                 for position, name in enumerate(names)]
    return pd.DataFrame(head.iloc[1:].to_numpy(), columns=names)


def _is_binary(series: pd.Series) -> bool:
    values = set(series.str.strip().str.lower().unique())
    return bool(values - {""}) and values <= BINARY_VALUES


def check_genre_name(name: str) -> None:
    """Refuse a genre name that no list or submission could hold exactly."""
    if any(character in LINE_BREAKS for character in name):
        raise KitError(f"the genre name {name!r} holds a line break; rename it in the label file")
    if "\x00" in name:     # the harness refuses any submission holding one, so every one
        raise KitError(f"the genre name {name!r} holds a NUL character, which no submission "
                       "may hold; rename it in the label file")
    if name.lower() == "id":
        raise KitError(f"a genre may not be named {name!r}: submissions use that column for the "
                       "film id; rename it in the label file")


def classify_csv(path: Path) -> str | None:
    """The layout a label CSV is in, or None when it is not a label file of a known layout."""
    head = _read_head(path)
    id_column = _id_column(head.columns)
    if id_column is None:
        return None
    lowered = {str(c).strip().lower(): c for c in head.columns}
    binary = [c for c in head.columns if c != id_column and _is_binary(head[c])]
    listed = {genre.strip() for name in GENRE_LIST_COLUMNS if name in lowered
              for text in head[lowered[name]] for genre in parse_genre_list(text)}
    # Beside a genre list, 0/1 columns are genres only if the list names them: TMDB's
    # movies_metadata.csv holds the flags adult and video beside its genres.
    if len(binary) >= 2 and (not listed or listed & {str(c).strip() for c in binary}):
        return "wide"
    if path.name == "genres.csv" and "genre" in lowered:
        return "letterboxd"
    if any(name in lowered for name in GENRE_LIST_COLUMNS):
        return "list"
    return None


def parse_genre_list(text: str) -> list[str]:
    """Split ``Drama|Comedy``, ``Drama; Comedy``, ``Drama, Comedy``, ``['Drama', 'Comedy']`` or
    TMDB's ``[{'id': 18, 'name': 'Drama'}, ...]`` into genre names (the first of ``|``, ``;``
    and ``,`` a text holds separates it)."""
    text = text.strip()
    if text.startswith("[") and text.endswith("]"):
        try:
            value = ast.literal_eval(text)
        except (ValueError, SyntaxError):
            value = None
        if isinstance(value, (list, tuple)):
            return [str(v["name"]) if isinstance(v, dict) and "name" in v else str(v)
                    for v in value]
        text = text[1:-1]
    separator = next((mark for mark in "|;," if mark in text), "|")
    return text.split(separator)


def read_labels(path: Path, layout: str, chunksize: int = DEFAULT_CHUNKSIZE
                ) -> tuple[dict[str, set[str]], Counter, list[str]]:
    """Read the label file ``path`` (of ``layout``) in chunks into ``{id: {genres}}``; also
    count anomalies.

    Returns the labels, a Counter of notes (duplicate rows, dropped genre names) and the ids
    rejected as unsafe.
    """
    labels: dict[str, set[str]] = defaultdict(set)
    notes: Counter = Counter()
    unsafe: set[str] = set()
    head = _read_head(path, SCHEMA_ROWS, strict=True)    # the schema, decided once
    id_column = _id_column(head.columns)
    genre_columns = ([c for c in head.columns if c != id_column and _is_binary(head[c])]
                     if layout == "wide" else [])
    names: dict[str, str] = {}      # each distinct genre cell -> its genre name ("": skipped)
    try:
        chunks = read_chunks(path, "reading labels", chunksize=chunksize, dtype=str,
                             keep_default_na=False, encoding="utf-8-sig", header=0,
                             names=list(head.columns), skipinitialspace=True)
        for first_row, chunk in _numbered(chunks):
            ids = chunk[id_column].str.strip()
            refused = unsafe_ids(ids)
            unsafe.update(ids[refused].tolist())
            genre_lists = (_wide_genres(chunk, genre_columns, first_row)
                           if layout == "wide" else _chunk_genres(chunk, layout))
            # Plain lists: a row at a time, pandas' Arrow-backed strings cost twice the time.
            for film_id, cells, is_refused in zip(ids.tolist(), genre_lists, refused.tolist()):
                if is_refused:
                    continue
                for cell in cells:
                    name = names.get(cell)
                    if name is None:
                        name = names[cell] = _genre_name(cell)
                    if not name:
                        continue
                    if "|" in name:
                        notes["genre names with '|' dropped"] += 1
                        continue
                    genres = labels[film_id]
                    if name in genres:
                        notes["duplicate label rows"] += 1
                    genres.add(name)
    except (pd.errors.ParserError, UnicodeDecodeError) as error:
        raise _unreadable(path, error) from None
    alike = _alike_but_for_case({name for name in names.values() if name and "|" not in name})
    if alike:
        notes[f"genre names differing only in case, kept apart ({'; '.join(alike)})"] = \
            len(alike)
    return dict(labels), notes, sorted(unsafe)


def _unreadable(path: Path, error: Exception) -> KitError:
    """The one message for a label file pandas cannot read; text in another encoding is told
    what to do (the byte's position is left out: pandas counts it within its read buffer)."""
    if isinstance(error, UnicodeDecodeError):
        byte = error.object[error.start:error.start + 1].hex()
        return KitError(f"{path} is not UTF-8 text (it holds the byte 0x{byte}, as Latin-1, "
                        "Windows-1252 or UTF-16 text does); save it as UTF-8 CSV")
    return KitError(f"{path} is not a readable CSV file: {error}")


def _alike_but_for_case(genres: set[str]) -> list[str]:
    """Groups of genre names that only case tells apart (``Drama / drama``), each sorted."""
    spellings: dict[str, list[str]] = defaultdict(list)
    for genre in sorted(genres):
        spellings[genre.casefold()].append(genre)
    return [" / ".join(names) for names in spellings.values() if len(names) > 1]


def separator_hint(path: Path) -> str:
    """A hint when the first line of ``path`` separates its columns with semicolons or tabs
    instead of commas, as spreadsheets set to some languages save CSV; else ""."""
    try:
        with open(path, encoding="utf-8-sig", errors="replace") as handle:
            first = handle.readline(10_000)
    except OSError:
        return ""
    for name, separator in (("semicolons", ";"), ("tabs", "\t")):
        if separator in first and "," not in first:
            return f"{path.name} separates its columns with {name}: save it comma-separated"
    return ""


def _genre_name(cell: str) -> str:
    """The genre name a label cell holds, stripped; "" for a blank or missing value. A name
    holding '|' is returned as it is (the caller drops and counts it); a name no list could
    hold is refused."""
    name = cell.strip()
    if name.lower() in MISSING:
        return ""
    if name and "|" not in name:
        check_genre_name(name)
    return name


def _numbered(chunks):
    """(number of the chunk's first data row, chunk) pairs."""
    first = 1
    for chunk in chunks:
        yield first, chunk
        first += len(chunk)


def _chunk_genres(chunk: pd.DataFrame, layout: str):
    if layout == "letterboxd":
        column = next(c for c in chunk.columns if str(c).strip().lower() == "genre")
        return ([g] for g in chunk[column].tolist())
    column = next(c for c in chunk.columns if str(c).strip().lower() in GENRE_LIST_COLUMNS)
    return (parse_genre_list(text) for text in chunk[column].tolist())


def _wide_genres(chunk: pd.DataFrame, genre_columns: list[str], first_row: int):
    """Genre names of each row of a wide file: 1 (or true) marks a genre, 0 (or false) or a
    blank cell does not; any other value is an error naming its row and column."""
    cells = chunk[genre_columns].apply(lambda column: column.str.strip())
    lowered = cells.apply(lambda column: column.str.lower())
    bad = ~lowered.isin(BINARY_VALUES)
    if bad.to_numpy().any():
        row, column = next(zip(*bad.to_numpy().nonzero()))
        raise KitError(f"row {first_row + row} column {genre_columns[column]!r} holds "
                       f"{cells.iat[row, column]!r}; a genre column holds 0, 1 (or false, "
                       "true) or nothing")
    flags = lowered.isin(TRUE_VALUES).to_numpy()
    return ([genre_columns[j] for j in row.nonzero()[0]] for row in flags)
