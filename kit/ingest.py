"""Read a poster data set folder into one canonical table: id, genres, poster path.

Three layouts are recognised (``LAYOUTS``):
- ``letterboxd``: ``genres.csv`` with ``id,genre`` rows (many per film), ``posters/<id>.jpg``;
- ``wide``: a CSV with an id column and one 0/1 (or false/true) column per genre
  (``Images/<Id>.jpg``);
- ``list``: a CSV with ``id,genres``, genres separated by ``|``, ``;`` or ``,``, or a
  Python-style list string.
The label file itself is read by kit.label_file.
"""
from __future__ import annotations

import os
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

import pandas as pd

from kit.errors import KitError
from kit.files import regular_file
from kit.label_file import (DEFAULT_CHUNKSIZE, LAYOUTS, classify_csv, read_labels,
                            separator_hint)

POSTER_DIRS = ("posters", "Posters", "images", "Images", "poster")
IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png", ".webp", ".gif", ".bmp", ".tif", ".tiff")
NON_LABEL_CSVS = ("movies.csv",)


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


def find_source(root: str | os.PathLike, layout: str | None = None, labels: str | None = None,
                posters: str | None = None) -> Source:
    """Locate the label file and poster folder of a data set; detect the layout if not given."""
    root = Path(root)
    if root.is_file():
        raise KitError(f"{root} is a file: give the data folder that holds the labels and "
                       f"posters ({root.parent}; --labels names another label file in it)")
    if not root.is_dir():
        problem = "is not a folder" if root.exists() else "does not exist"
        raise KitError(f"data folder {root} {problem}")
    if posters and not Path(posters).is_dir():
        raise KitError(f"--posters {posters} is no folder (from the current folder)")
    if layout is not None and layout not in LAYOUTS:
        raise KitError(f"unknown layout {layout!r}; choose one of {', '.join(LAYOUTS)}")
    if labels:
        # (root / an absolute path is that path)
        candidates = [regular_file(root / labels, "label file")]
    else:       # regular files only: reading a named pipe would wait for a writer for ever
        candidates = sorted(p for p in root.glob("*.csv")
                            if p.is_file() and p.name not in NON_LABEL_CSVS)
        candidates.sort(key=lambda p: p.name != "genres.csv")
    found = None
    for candidate in candidates:
        kind = classify_csv(candidate)
        if kind is not None and (layout is None or kind == layout or labels):
            found = (layout or kind, candidate)
            break
    if found is None:
        wanted = {"letterboxd": "genres.csv with columns id,genre",
                  "wide": "a CSV with an id column and one 0/1 (or false/true) column per genre",
                  "list": "a CSV with columns id,genres"}
        expected = [wanted[layout]] if layout else list(wanted.values())
        seen = ", ".join(p.name for p in candidates) or "no CSV file"
        hints = "".join(f"; {hint}" for hint in map(separator_hint, candidates) if hint)
        raise KitError(f"no label file found in {root} (saw {seen}); expected "
                       + " or ".join(expected) + hints)
    poster_dir = Path(posters) if posters else next(
        (root / name for name in POSTER_DIRS if (root / name).is_dir()), None)
    if poster_dir is None:
        raise KitError(f"no poster folder in {root}; expected one of "
                       f"{', '.join(d + '/' for d in POSTER_DIRS)} (or give --posters)")
    return Source(root=root, layout=found[0], labels=found[1], posters=poster_dir)


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
    labels, notes, unsafe = read_labels(source.labels, source.layout, chunksize)
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
    if not rows:
        raise KitError(_nothing_joined(source, labels, posters))
    unlabelled = sorted(set(posters) - set(labels))
    films = pd.DataFrame(rows, columns=["id", "genres", "poster"])
    dropped = {"no-poster": sorted(no_poster), "no-genre": unlabelled,
               "unsafe-id": unsafe, "poster-outside-folder": outside}
    return Catalogue(source=source, films=films, dropped=dropped, notes=notes)


def _nothing_joined(source: Source, labels: dict, posters: dict) -> str:
    """Why no film has both a genre and a poster, with examples of each side's names."""
    if not labels:
        return f"{source.labels} gives no film a genre"
    if not posters:
        nested = any(entry.is_dir() for entry in source.posters.iterdir())
        return (f"{source.posters} holds no poster (no {', '.join(IMAGE_SUFFIXES)} file)"
                + ("; posters are read from the folder itself, not from its subfolders: give "
                   "the one that holds them with --posters" if nested else ""))
    ids = ", ".join(map(repr, sorted(labels)[:3]))
    names = ", ".join(map(repr, sorted(posters.values())[:3]))
    return (f"none of the {len(labels)} films of {source.labels} has a poster in "
            f"{source.posters} (ids such as {ids}; posters such as {names}): a poster is named "
            "after its film's id, as <id>.jpg")
