"""`kit split`: freeze a competition from a prepared dataset.

The films of the store are (optionally) sampled, genres below a minimum support are dropped,
then iterative stratification (Sechidis et al. 2011, via ``iterstrat``) makes train/valid/test,
and the test part is split again into a public and a private half. Participants get ``public/``;
only the harness reads ``private/answers.csv``.
"""
from __future__ import annotations

import hashlib
import json
import os
import shutil
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import pandas as pd
from iterstrat.ml_stratifiers import MultilabelStratifiedKFold, MultilabelStratifiedShuffleSplit

from kit.console import console, table
from kit.errors import KitError
from kit.files import exclusive_lock, read_json, read_table, write_csv, write_json, write_text
from kit.labels import encode
from kit.store import Store
from kit.workdir import Workdir

NORMALISATION_SAMPLE = 2000


@dataclass(frozen=True)
class SplitOptions:
    """The knobs of a competition; every one of them is part of its identity."""
    sample: int | None = None
    test: float = 0.3
    valid: float = 0.2
    public: float = 0.5
    min_support: int = 10
    seed: int = 0

    def validate(self) -> None:
        for name in ("test", "valid", "public"):
            value = getattr(self, name)
            if not 0 < value < 1:
                raise KitError(f"--{name} must be a fraction between 0 and 1, got {value}")
        if not isinstance(self.seed, int) or isinstance(self.seed, bool):
            raise KitError(f"--seed must be an integer, got {self.seed!r}")
        if self.sample is not None and self.sample < 1:
            raise KitError(f"--sample must be a positive number of films, got {self.sample}")
        if self.min_support < 1:
            raise KitError(f"--min-support must be at least 1, got {self.min_support}")


def ids_hash(ids) -> str:
    """SHA-256 of the sorted id list, one id per line."""
    return hashlib.sha256("\n".join(sorted(map(str, ids))).encode()).hexdigest()


def stratified_split(labels: np.ndarray, fraction: float, seed: int
                     ) -> tuple[np.ndarray, np.ndarray]:
    """Split row positions into (rest, held-out ``fraction``), stratified over all labels."""
    splitter = MultilabelStratifiedShuffleSplit(n_splits=1, test_size=fraction, random_state=seed)
    rest, held = next(splitter.split(np.zeros(len(labels)), labels))
    return np.sort(rest), np.sort(held)


def stratified_folds(labels: np.ndarray, folds: int, seed: int) -> np.ndarray:
    """The fold (0..folds-1) of each row: multilabel-stratified k-fold, seeded."""
    if folds < 2 or folds > len(labels):
        raise KitError(f"cannot cut {len(labels)} films into {folds} folds")
    assignment = np.empty(len(labels), dtype=int)
    splitter = MultilabelStratifiedKFold(n_splits=folds, shuffle=True, random_state=seed)
    for fold, (_, rows) in enumerate(splitter.split(np.zeros(len(labels)), labels)):
        assignment[rows] = fold
    return assignment


def normalisation(store: Store, ids, seed: int) -> dict:
    """Per-channel mean and std (0-1 scale) of up to NORMALISATION_SAMPLE training posters."""
    positions = store.positions(ids)
    if len(positions) > NORMALISATION_SAMPLE:
        positions = np.sort(np.random.default_rng(seed).choice(positions, NORMALISATION_SAMPLE,
                                                               replace=False))
    total = np.zeros(3)
    squares = np.zeros(3)
    pixels = 0
    for position in positions:
        image = store[int(position)].reshape(3, -1).astype(np.float64) / 255.0
        total += image.sum(1)
        squares += (image ** 2).sum(1)
        pixels += image.shape[1]
    mean = total / pixels
    std = np.sqrt(np.maximum(squares / pixels - mean ** 2, 1e-12))
    return {"mean": mean.round(6).tolist(), "std": std.round(6).tolist(),
            "posters": int(len(positions))}


def stored_films(workdir: Workdir, dataset: str) -> tuple[pd.DataFrame, Path]:
    """The dataset's films that made it into the store, and the store folder."""
    store_dir = workdir.prepared_store(dataset)
    films = read_table(workdir.dataset(dataset) / "films.csv")
    index = read_table(store_dir / "index.csv", ["id", "checksum"])
    films = films.merge(index, on="id", how="inner")
    return films, store_dir


def competition_key(films: pd.DataFrame, options: SplitOptions, dataset: str) -> str:
    """A short hash of the store's content, the labels and the options."""
    digest = hashlib.sha256()
    digest.update(dataset.encode())
    digest.update(json.dumps(asdict(options), sort_keys=True).encode())
    for column in ("id", "genres", "checksum"):
        digest.update("\n".join(films[column]).encode())
    return digest.hexdigest()[:10]


def make_competition(workdir: Workdir, dataset: str, options: SplitOptions) -> dict:
    """Create (or find, if identical) the competition folder for ``dataset`` and ``options``,
    holding the dataset meanwhile: not while `kit prepare` rewrites its store, and one build of
    a competition at a time."""
    options.validate()
    with exclusive_lock(workdir.dataset(dataset) / ".lock", f"kit split of {dataset!r}"):
        return _make_competition(workdir, dataset, options)


def _make_competition(workdir: Workdir, dataset: str, options: SplitOptions) -> dict:
    films, store_dir = stored_films(workdir, dataset)
    key = competition_key(films, options, dataset)
    folder = workdir.competitions / f"{dataset}-{key}"
    if (folder / "split.json").exists():
        existing = read_json(folder / "split.json")
        write_text(workdir.competitions / "CURRENT", folder.name + "\n")
        return {**existing["summary"], "competition": folder.name, "already_existed": True}

    if options.sample is not None:
        if options.sample > len(films):
            raise KitError(f"--sample {options.sample} is larger than the {len(films)} stored "
                           f"films of {dataset!r}")
        chosen = np.random.default_rng(options.seed).choice(len(films), options.sample,
                                                            replace=False)
        films = films.iloc[np.sort(chosen)].reset_index(drop=True)
    support = pd.Series([g for text in films["genres"] for g in text.split("|")]).value_counts()
    genres = sorted(support[support >= options.min_support].index)
    dropped_genres = {g: int(n) for g, n in support.items() if n < options.min_support}
    if not genres:
        raise KitError(f"no genre has at least --min-support {options.min_support} films "
                       f"among {len(films)}; lower --min-support or add data")
    kept = set(genres)
    films["genres"] = ["|".join(g for g in text.split("|") if g in kept)
                       for text in films["genres"]]
    no_genre = int((films["genres"] == "").sum())
    films = films[films["genres"] != ""].reset_index(drop=True)
    sizes = _part_sizes(len(films), options)
    labels = encode(films["genres"], genres)
    rest, test = stratified_split(labels, options.test, options.seed)
    train, valid = (rest[p] for p in stratified_split(labels[rest], options.valid, options.seed))
    private, public = (test[p] for p in stratified_split(labels[test], options.public,
                                                          options.seed))
    parts = {"train": train, "valid": valid, "public": public, "private": private}
    store = Store(store_dir)
    stats = normalisation(store, films["id"].iloc[train], options.seed)
    counts = {name: dict(zip(genres, labels[rows].sum(0).tolist())) for name, rows in parts.items()}
    summary = {"competition": folder.name, "dataset": dataset, "films": len(films),
               **{f"{name}_films": len(rows) for name, rows in parts.items()},
               "genres": len(genres), "dropped_genres": dropped_genres,
               "films_without_genre_dropped": no_genre, "expected_sizes": sizes}
    # Built under a hidden name and renamed when complete: a competition folder appears whole
    # or not at all, whatever fails or is killed on the way.
    for stale in workdir.competitions.glob(f".{folder.name}.*"):      # killed builders'
        shutil.rmtree(stale, ignore_errors=True)
    building = workdir.competitions / f".{folder.name}.{os.getpid()}"
    try:
        _write_bundle(building, folder.name, films, genres, parts, stats, store_dir, store.size,
                      dataset)
        write_json(building / "split.json", {
            "options": asdict(options), "genres": genres, "per_genre_counts": counts,
            "hashes": {name: ids_hash(films["id"].iloc[rows]) for name, rows in parts.items()},
            "normalisation": stats, "summary": summary})
        shutil.rmtree(folder, ignore_errors=True)       # an incomplete one from an older kit
        os.rename(building, folder)
    finally:
        shutil.rmtree(building, ignore_errors=True)
    if dropped_genres:
        console.print(f"dropped genres with fewer than {options.min_support} films: "
                      + ", ".join(f"{g} ({n})" for g, n in dropped_genres.items()))
    console.print(table(f"competition {folder.name}", ["genre", *parts],
                        ([g, *(counts[p][g] for p in parts)] for g in genres)))
    write_text(workdir.competitions / "CURRENT", folder.name + "\n")   # the current one now
    return {**summary, "already_existed": False}


def _part_sizes(n: int, options: SplitOptions) -> dict[str, int]:
    test = round(n * options.test)
    private = round(test * (1 - options.public))
    valid = round((n - test) * options.valid)
    sizes = {"train": n - test - valid, "valid": valid, "public": test - private,
             "private": private}
    empty = [name for name, size in sizes.items() if size < 1]
    if empty:
        raise KitError(f"{n} films are too few for the requested fractions (test {options.test}, "
                       f"valid {options.valid}, public {options.public}): the "
                       f"{', '.join(empty)} part would be empty")
    return sizes


def _write_bundle(folder: Path, name: str, films: pd.DataFrame, genres: list[str], parts: dict,
                  stats: dict, store_dir: Path, size: tuple, dataset: str) -> None:
    public, private = folder / "public", folder / "private"
    train = pd.concat([films.iloc[parts["train"]].assign(part="train"),
                       films.iloc[parts["valid"]].assign(part="valid")])[["id", "genres", "part"]]
    test_rows = np.sort(np.concatenate([parts["public"], parts["private"]]))
    test_ids = films["id"].iloc[test_rows]
    write_csv(public / "train.csv", train)
    write_csv(public / "test.csv", pd.DataFrame({"id": test_ids}))
    write_text(public / "genres.txt", "\n".join(genres) + "\n")
    prior = encode(train["genres"], genres).mean(0)
    sample = pd.DataFrame(np.tile(prior.round(6), (len(test_ids), 1)), columns=genres)
    sample.insert(0, "id", test_ids.to_numpy())
    write_csv(public / "sample_submission.csv", sample)
    write_json(public / "normalization.json", stats)
    write_json(public / "competition.json", {
        "name": name, "dataset": dataset, "image_size": list(size),
        "store": os.path.relpath(store_dir.resolve(), public.resolve())})
    usage = pd.Series("Private", index=films.index)
    usage.iloc[parts["public"]] = "Public"
    answers = films.iloc[test_rows][["id", "genres"]].assign(usage=usage.iloc[test_rows])
    private.mkdir(parents=True, exist_ok=True)
    os.chmod(private, 0o700)                     # the answer key is the organiser's alone
    write_csv(private / "answers.csv", answers, private=True)
