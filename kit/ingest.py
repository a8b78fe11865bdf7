"""Read a poster data set folder into one canonical table: id, genres, poster path.

Three layouts are recognised (``LAYOUTS``):
- ``letterboxd``: ``genres.csv`` with ``id,genre`` rows (many per film), ``posters/<id>.jpg``;
- ``wide``: a CSV with an id column and one 0/1 column per genre (``Images/<Id>.jpg``);
- ``list``: a CSV with ``id,genres``, genres ``|``-separated or a Python-style list string.
Label files are read in chunks, so a label file larger than memory still works.
"""
from __future__ import annotations

import ast
import os
from collections import Counter, defaultdict
from dataclasses import dataclass, field
from pathlib import Path

import pandas as pd

from kit.console import read_chunks
from kit.errors import KitError

LAYOUTS = ("letterboxd", "wide", "list")
ID_COLUMNS = ("id", "imdbid", "imdb_id", "movie_id", "film_id", "tconst")
GENRE_LIST_COLUMNS = ("genres", "genre", "genre_list", "labels")
POSTER_DIRS = ("posters", "Posters", "images", "Images", "poster")
IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png", ".webp", ".gif", ".bmp", ".tif", ".tiff")
NON_LABEL_CSVS = ("movies.csv",)
DEFAULT_CHUNKSIZE = 500_000
SCHEMA_ROWS = 10_000        # rows read to decide a wide file's genre columns, whatever --chunksize
BINARY_VALUES = {"0", "1", "0.0", "1.0", ""}     # a blank cell in a wide file means 0
MISSING = {"nan", "none", "null", "na", "n/a"}     # a missing value, never a genre name
# Characters that end a line somewhere (str.splitlines, CSV readers): a genre name holding one
# would split into phantom genres in genres.txt.
LINE_BREAKS = "\n\r\v\f\x1c\x1d\x1e\x85\u2028\u2029"


@dataclass
class Source:
    """Where a data set's labels and posters are, and in which layout."""
    root: Path
    layout: str
    labels: Path
    posters: Path


@dataclass
class Catalogue:
    """The canonical table (``films``) and every film dropped on the way, by reason."""
    source: Source
    films: pd.DataFrame
    dropped: dict[str, list[str]] = field(default_factory=dict)
    notes: Counter = field(default_factory=Counter)


def unsafe_id(film_id: str) -> bool:
    """True for ids that could name a path outside the poster folder."""
    return (not film_id or film_id in (".", "..") or "/" in film_id or "\\" in film_id
            or "\x00" in film_id or film_id.startswith("..") or os.path.isabs(film_id))


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
        raise KitError(f"{path} is not a readable CSV file: {error}") from None
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
    values = set(series.str.strip().unique())
    return bool(values - {""}) and values <= BINARY_VALUES


def check_genre_name(name: str) -> None:
    """Refuse a genre name that no list or submission could hold exactly."""
    if any(character in LINE_BREAKS for character in name):
        raise KitError(f"the genre name {name!r} holds a line break; rename it in the label file")
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
    if len(binary) >= 2:
        return "wide"
    if path.name == "genres.csv" and "genre" in lowered:
        return "letterboxd"
    if any(name in lowered for name in GENRE_LIST_COLUMNS):
        return "list"
    return None


def find_source(root: str | os.PathLike, layout: str | None = None, labels: str | None = None,
                posters: str | None = None) -> Source:
    """Locate the label file and poster folder of a data set; detect the layout if not given."""
    root = Path(root)
    if root.is_file():
        raise KitError(f"{root} is a file: give the data folder that holds the labels and "
                       f"posters ({root.parent}; --labels names another label file in it)")
    if not root.is_dir():
        raise KitError(f"data folder {root} does not exist")
    if posters and not Path(posters).is_dir():
        raise KitError(f"--posters {posters} is no folder (from the current folder)")
    if layout is not None and layout not in LAYOUTS:
        raise KitError(f"unknown layout {layout!r}; choose one of {', '.join(LAYOUTS)}")
    if labels:
        candidates = [Path(labels) if Path(labels).is_absolute() else root / labels]
        if not candidates[0].is_file():
            raise KitError(f"label file {candidates[0]} "
                           f"{'is a folder' if candidates[0].is_dir() else 'does not exist'}")
    else:
        candidates = sorted(p for p in root.glob("*.csv") if p.name not in NON_LABEL_CSVS)
        candidates.sort(key=lambda p: p.name != "genres.csv")
    found = None
    for candidate in candidates:
        kind = classify_csv(candidate)
        if kind is not None and (layout is None or kind == layout or labels):
            found = (layout or kind, candidate)
            break
    if found is None:
        wanted = {"letterboxd": "genres.csv with columns id,genre",
                  "wide": "a CSV with an id column and one 0/1 column per genre",
                  "list": "a CSV with columns id,genres"}
        expected = [wanted[layout]] if layout else list(wanted.values())
        seen = ", ".join(p.name for p in candidates) or "no CSV file"
        raise KitError(f"no label file found in {root} (saw {seen}); expected "
                       + " or ".join(expected))
    poster_dir = Path(posters) if posters else next(
        (root / name for name in POSTER_DIRS if (root / name).is_dir()), None)
    if poster_dir is None:
        raise KitError(f"no poster folder in {root}; expected one of "
                       f"{', '.join(d + '/' for d in POSTER_DIRS)} (or give --posters)")
    return Source(root=root, layout=found[0], labels=found[1], posters=poster_dir)


def parse_genre_list(text: str) -> list[str]:
    """Split ``Drama|Comedy`` or ``['Drama', 'Comedy']`` into genre names."""
    text = text.strip()
    if text.startswith("[") and text.endswith("]"):
        try:
            value = ast.literal_eval(text)
        except (ValueError, SyntaxError):
            value = None
        if isinstance(value, (list, tuple)):
            return [str(v) for v in value]
        text = text[1:-1]
    return text.split("|") if "|" in text or "," not in text else text.split(",")


def read_labels(source: Source, chunksize: int = DEFAULT_CHUNKSIZE
                ) -> tuple[dict[str, set[str]], Counter, list[str]]:
    """Read the label file in chunks into ``{id: {genres}}``; also count anomalies.

    Returns the labels, a Counter of notes (duplicate rows, dropped genre names) and the ids
    rejected as unsafe.
    """
    labels: dict[str, set[str]] = defaultdict(set)
    notes: Counter = Counter()
    unsafe: set[str] = set()
    head = _read_head(source.labels, SCHEMA_ROWS, strict=True)    # the schema, decided once
    id_column = _id_column(head.columns)
    genre_columns = ([c for c in head.columns if c != id_column and _is_binary(head[c])]
                     if source.layout == "wide" else [])
    checked: set[str] = set()
    try:
        chunks = read_chunks(source.labels, "reading labels", chunksize=chunksize, dtype=str,
                             keep_default_na=False, encoding="utf-8-sig", header=0,
                             names=list(head.columns), skipinitialspace=True)
        for first_row, chunk in _numbered(chunks):
            ids = chunk[id_column].str.strip()
            genre_lists = (_wide_genres(chunk, genre_columns, first_row)
                           if source.layout == "wide" else _chunk_genres(chunk, source.layout))
            for film_id, genres in zip(ids, genre_lists):
                if unsafe_id(film_id):
                    unsafe.add(film_id)
                    continue
                for genre in genres:
                    genre = genre.strip()
                    if not genre or genre.lower() in MISSING:
                        continue
                    if "|" in genre:
                        notes["genre names with '|' dropped"] += 1
                        continue
                    if genre not in checked:
                        check_genre_name(genre)
                        checked.add(genre)
                    if genre in labels[film_id]:
                        notes["duplicate label rows"] += 1
                    labels[film_id].add(genre)
    except (pd.errors.ParserError, UnicodeDecodeError) as error:
        raise KitError(f"cannot read {source.labels}: {error}") from None
    return dict(labels), notes, sorted(unsafe)


def _numbered(chunks):
    """(number of the chunk's first data row, chunk) pairs."""
    first = 1
    for chunk in chunks:
        yield first, chunk
        first += len(chunk)


def _chunk_genres(chunk: pd.DataFrame, layout: str):
    if layout == "letterboxd":
        column = next(c for c in chunk.columns if str(c).strip().lower() == "genre")
        return ([g] for g in chunk[column])
    column = next(c for c in chunk.columns if str(c).strip().lower() in GENRE_LIST_COLUMNS)
    return (parse_genre_list(text) for text in chunk[column])


def _wide_genres(chunk: pd.DataFrame, genre_columns: list[str], first_row: int):
    """Genre names of each row of a wide file: 1 marks a genre, 0 or a blank cell does not;
    any other value is an error naming its row and column."""
    cells = chunk[genre_columns].apply(lambda column: column.str.strip())
    bad = ~cells.isin(BINARY_VALUES)
    if bad.to_numpy().any():
        row, column = next(zip(*bad.to_numpy().nonzero()))
        raise KitError(f"row {first_row + row} column {genre_columns[column]!r} holds "
                       f"{cells.iat[row, column]!r}; a genre column holds 0, 1 or nothing")
    flags = cells.isin({"1", "1.0"}).to_numpy()
    return ([genre_columns[j] for j in row.nonzero()[0]] for row in flags)


def scan_posters(poster_dir: Path) -> tuple[dict[str, str], list[str], int]:
    """Map id (file stem) to poster file name, scanning the folder once.

    Symlinks that resolve outside the folder are left out and returned separately. An id with
    several files (``x.jpg`` and ``x.png``) gets the one whose suffix comes first in
    ``IMAGE_SUFFIXES``, then the first by name, whatever order the folder lists them in; the
    third value counts such ids.
    """
    root = poster_dir.resolve()
    posters: dict[str, str] = {}
    outside: list[str] = []
    several = set()
    with os.scandir(poster_dir) as entries:
        for entry in entries:
            stem, suffix = os.path.splitext(entry.name)
            if suffix.lower() not in IMAGE_SUFFIXES:
                continue
            if entry.is_symlink() and not Path(entry.path).resolve().is_relative_to(root):
                outside.append(stem)
                continue
            if stem in posters:
                several.add(stem)
            posters[stem] = min(posters.get(stem, entry.name), entry.name,
                                key=_poster_preference)
    return posters, sorted(outside), len(several)


def _poster_preference(name: str) -> tuple[int, str]:
    return IMAGE_SUFFIXES.index(os.path.splitext(name)[1].lower()), name


def build_catalogue(source: Source, chunksize: int = DEFAULT_CHUNKSIZE) -> Catalogue:
    """Join labels and posters into the canonical table; record every film dropped and why."""
    labels, notes, unsafe = read_labels(source, chunksize)
    posters, outside, several = scan_posters(source.posters)
    if several:
        notes["ids with several poster files (the first of .jpg, .jpeg, .png, ... used)"] = \
            several
    outside_set = set(outside)
    rows = []
    no_poster = []
    for film_id, genres in labels.items():
        if film_id not in posters:
            if film_id not in outside_set:
                no_poster.append(film_id)
            continue
        rows.append((film_id, "|".join(sorted(genres)),
                     os.path.relpath(source.posters / posters[film_id], source.root)))
    unlabelled = sorted(set(posters) - set(labels))
    films = pd.DataFrame(rows, columns=["id", "genres", "poster"])
    dropped = {"no-poster": sorted(no_poster), "no-genre": unlabelled,
               "unsafe-id": unsafe, "poster-outside-folder": outside}
    return Catalogue(source=source, films=films, dropped=dropped, notes=notes)
