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


def _read_head(path: Path) -> pd.DataFrame:
    try:
        return pd.read_csv(path, nrows=200, dtype=str, keep_default_na=False,
                           encoding="utf-8-sig")
    except (pd.errors.ParserError, pd.errors.EmptyDataError, UnicodeDecodeError) as error:
        raise KitError(f"{path} is not a readable CSV file: {error}") from None


def _is_binary(series: pd.Series) -> bool:
    values = set(series.str.strip().unique())
    return bool(values) and values <= {"0", "1", "0.0", "1.0"}


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
    if not root.is_dir():
        raise KitError(f"data folder {root} does not exist")
    if layout is not None and layout not in LAYOUTS:
        raise KitError(f"unknown layout {layout!r}; choose one of {', '.join(LAYOUTS)}")
    if labels:
        candidates = [Path(labels) if Path(labels).is_absolute() else root / labels]
        if not candidates[0].is_file():
            raise KitError(f"label file {candidates[0]} does not exist")
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
    if poster_dir is None or not poster_dir.is_dir():
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
    try:
        chunks = read_chunks(source.labels, "reading labels", chunksize=chunksize, dtype=str,
                             keep_default_na=False, encoding="utf-8-sig")
        for chunk in chunks:
            id_column = _id_column(chunk.columns)
            ids = chunk[id_column].str.strip()
            for film_id, genres in zip(ids, _chunk_genres(chunk, id_column, source.layout)):
                if unsafe_id(film_id):
                    unsafe.add(film_id)
                    continue
                for genre in genres:
                    genre = genre.strip()
                    if not genre:
                        continue
                    if "|" in genre:
                        notes["genre names with '|' dropped"] += 1
                        continue
                    if genre in labels[film_id]:
                        notes["duplicate label rows"] += 1
                    labels[film_id].add(genre)
    except (pd.errors.ParserError, UnicodeDecodeError) as error:
        raise KitError(f"cannot read {source.labels}: {error}") from None
    return dict(labels), notes, sorted(unsafe)


def _chunk_genres(chunk: pd.DataFrame, id_column: str, layout: str):
    if layout == "letterboxd":
        column = next(c for c in chunk.columns if str(c).strip().lower() == "genre")
        return ([g] for g in chunk[column])
    if layout == "list":
        column = next(c for c in chunk.columns if str(c).strip().lower() in GENRE_LIST_COLUMNS)
        return (parse_genre_list(text) for text in chunk[column])
    genre_columns = [c for c in chunk.columns if c != id_column and _is_binary(chunk[c])]
    flags = chunk[genre_columns].apply(pd.to_numeric, errors="coerce").fillna(0).to_numpy() > 0
    names = [str(c).strip() for c in genre_columns]
    return ([names[j] for j in row.nonzero()[0]] for row in flags)


def scan_posters(poster_dir: Path) -> tuple[dict[str, str], list[str]]:
    """Map id (file stem) to poster file name, scanning the folder once.

    Symlinks that resolve outside the folder are left out and returned separately.
    """
    root = poster_dir.resolve()
    posters: dict[str, str] = {}
    outside: list[str] = []
    with os.scandir(poster_dir) as entries:
        for entry in entries:
            stem, suffix = os.path.splitext(entry.name)
            if suffix.lower() not in IMAGE_SUFFIXES:
                continue
            if entry.is_symlink() and not Path(entry.path).resolve().is_relative_to(root):
                outside.append(stem)
                continue
            if stem not in posters or suffix.lower() in (".jpg", ".jpeg"):
                posters[stem] = entry.name
    return posters, sorted(outside)


def build_catalogue(source: Source, chunksize: int = DEFAULT_CHUNKSIZE) -> Catalogue:
    """Join labels and posters into the canonical table; record every film dropped and why."""
    labels, notes, unsafe = read_labels(source, chunksize)
    posters, outside = scan_posters(source.posters)
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
