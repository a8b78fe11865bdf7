"""`kit join BUNDLE`: check a participant bundle, store its posters, register its competition.

After joining, `kit train`, `predict`, `search`, `audit` and `compare` work as in the organiser's
work folder, but there is no answer key: scores come from the grading server (`kit submit`)."""
from __future__ import annotations

import math
import os
import shutil
from pathlib import Path

import pandas as pd

from eval.rules import rules_from
from kit.arguments import POSTER_SIDES, check_server_url
from kit.bundle import MANIFEST, PUBLIC_FILES, check_manifest, extract_bundle
from kit.competition import Competition
from kit.errors import KitError
from kit.files import exclusive_lock, read_json, read_table, write_json, write_text
from kit.labels import genre_list
from kit.store import build_store
from kit.workdir import Workdir


def join_bundle(workdir: Workdir, bundle: str, workers: int | None = None,
                scheduler: str = "auto") -> dict:
    """Extract and check ``bundle``, build the poster store, register the competition."""
    bundles = workdir.root / "bundles"
    staging = bundles / f".joining-{os.getpid()}"
    shutil.rmtree(staging, ignore_errors=True)
    made = [path for path in (bundles, workdir.root / "datasets", workdir.root)
            if not path.exists()]
    try:
        name, hashes = extract_bundle(Path(bundle), staging)
        check_manifest(staging / name, hashes)
        info, film_ids = checked_public(staging / name, name)
        # one join at a time: two would store the same posters into one store
        with exclusive_lock(workdir.dataset(name) / ".lock", f"kit join of {name!r}"):
            return _join(workdir, Path(bundle), staging / name, info, film_ids, workers,
                         scheduler)
    finally:
        shutil.rmtree(staging, ignore_errors=True)
        for path in made:                   # a refused bundle leaves no empty folder behind
            if path.is_dir() and not any(path.iterdir()):
                path.rmdir()


def _join(workdir: Workdir, bundle: Path, checked: Path, info: dict, film_ids: set[str],
          workers: int | None, scheduler: str) -> dict:
    """Move the ``checked`` bundle folder into place, store its posters, register it."""
    name = checked.name
    folder = workdir.root / "bundles" / name
    competition = Competition(workdir.competitions / name)
    if competition.answers.exists():
        raise KitError(f"{workdir.root} holds competition {name} with its answer key (the "
                       "organiser's work folder); join into another --workdir")
    moved = False
    try:
        if folder.exists():
            if (folder / MANIFEST).read_bytes() != (checked / MANIFEST).read_bytes():
                raise KitError(f"another bundle of {name} was joined into {folder}; join into "
                               "another --workdir, or delete that folder first")
        else:
            os.replace(checked, folder)
            moved = True
        size = tuple(info["image_size"])
        store_dir = workdir.store(name, size)
        stored = store_posters(folder, film_ids, store_dir, size, workers, scheduler)
    except BaseException:
        if moved:                           # joining again with a mended bundle must work
            shutil.rmtree(folder, ignore_errors=True)
        raise
    write_json(workdir.dataset(name) / "prepare.json",
               {"dataset": name, "source": str(folder.resolve()), "store": store_dir.name,
                "joined_from": str(bundle.resolve()), "stored": stored})
    public = competition.public
    public.mkdir(parents=True, exist_ok=True)
    for file in PUBLIC_FILES[:-1]:
        shutil.copyfile(folder / "public" / file, public / file)
    write_json(public / "competition.json",
               {**info, "dataset": name, "joined": True,
                "store": os.path.relpath(store_dir.resolve(), public.resolve())})
    write_text(workdir.competitions / "CURRENT", name + "\n")
    return {"competition": name, "posters": stored, "folder": str(folder),
            "server": info.get("server"), "rules": info.get("rules")}


def store_posters(folder: Path, ids: set[str], store_dir: Path, size: tuple[int, int],
                  workers: int | None, scheduler: str) -> int:
    """Store the posters of the films ``ids`` of the joined bundle ``folder`` (all of them, or
    KitError); how many were stored."""
    posters = sorted((folder / "posters").iterdir()) if (folder / "posters").is_dir() else []
    films = pd.DataFrame({"id": [p.stem for p in posters],
                          "poster": [f"posters/{p.name}" for p in posters]})
    missing = sorted(ids - set(films["id"]))
    if missing:
        raise KitError(f"the bundle lacks the posters of {len(missing)} films, e.g. {missing[0]}")
    stored = build_store(films, folder, store_dir, size, workers=workers, scheduler=scheduler)
    if stored["failed"]:
        reason, items = next(iter(stored["failed"].items()))
        raise KitError(f"{sum(map(len, stored['failed'].values()))} posters of the bundle could "
                       f"not be stored, e.g. {items[0]['id']} ({reason})")
    return stored["stored"]


def checked_public(folder: Path, name: str) -> tuple[dict, set[str]]:
    """The bundle's competition.json and the ids of its films, once its public files are what
    `kit export` writes; KitError naming the first that is not (a bundle made by hand, or
    damaged on the way)."""
    public = folder / "public"
    missing = [file for file in PUBLIC_FILES if not (public / file).is_file()]
    if missing:
        raise KitError(f"the bundle lacks public/{missing[0]}")
    info = _json_object(public / "competition.json")
    if info.get("name") != name:
        raise KitError(f"public/competition.json names the competition {info.get('name')!r}, "
                       f"its folder {name!r}")
    size = info.get("image_size")
    if not (isinstance(size, list) and len(size) == 2
            and all(type(side) is int and POSTER_SIDES[0] <= side <= POSTER_SIDES[1]
                    for side in size)):
        raise KitError("public/competition.json: image_size must be [height, width], whole "
                       f"numbers from {POSTER_SIDES[0]} to {POSTER_SIDES[1]}, got {size!r}")
    if info.get("server") is not None:
        check_server_url(str(info["server"]), "the bundle's server URL")
    try:
        rules_from(info.get("rules") or {}, "its rules")
    except KitError as error:
        raise KitError(f"public/competition.json: {error}") from None
    try:
        genres = genre_list(public / "genres.txt")
    except UnicodeDecodeError:
        raise KitError("public/genres.txt is not UTF-8 text") from None
    if not genres or len(set(genres)) < len(genres):
        raise KitError("public/genres.txt must name each genre once, at least one")
    train = read_table(public / "train.csv", ["id", "genres", "part"], shown="public/train.csv")
    test = read_table(public / "test.csv", ["id"], shown="public/test.csv")
    if test.empty:
        raise KitError("public/test.csv names no film")
    parts = sorted(set(train["part"]) - {"train", "valid"})
    if parts:
        raise KitError(f"public/train.csv has parts other than train and valid: {parts[:5]}")
    if set(train["id"]) & set(test["id"]):
        raise KitError("public/train.csv and public/test.csv share films")
    stats = _json_object(public / "normalization.json")
    for key in ("mean", "std"):
        values = stats.get(key)
        if not (isinstance(values, list) and len(values) == 3 and all(
                type(v) in (int, float) and math.isfinite(v) and (key == "mean" or v > 0)
                for v in values)):
            raise KitError(f"public/normalization.json: {key} must be 3 finite numbers"
                           f"{' above 0' if key == 'std' else ''}, got {values!r}")
    return info, set(train["id"]) | set(test["id"])


def _json_object(path: Path) -> dict:
    try:
        data = read_json(path)
    except (UnicodeDecodeError, ValueError) as error:
        raise KitError(f"public/{path.name} is not JSON: {error}") from None
    if not isinstance(data, dict):
        raise KitError(f"public/{path.name} is not a JSON object")
    return data
