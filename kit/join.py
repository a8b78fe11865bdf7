"""`kit join BUNDLE`: check a participant bundle, store its posters, register its competition.

After joining, `kit train`, `predict`, `search`, `audit` and `compare` work as in the organiser's
work folder, but there is no answer key: scores come from the grading server (`kit submit`)."""
from __future__ import annotations

import os
import shutil
from pathlib import Path

import pandas as pd

from kit.bundle import MANIFEST, PUBLIC_FILES, check_manifest, extract_bundle
from kit.competition import Competition
from kit.errors import KitError
from kit.files import read_json, read_table, write_json, write_text
from kit.store import build_store
from kit.workdir import Workdir


def join_bundle(workdir: Workdir, bundle: str, workers: int | None = None,
                scheduler: str = "auto") -> dict:
    """Extract and check ``bundle``, build the poster store, register the competition."""
    bundles = workdir.root / "bundles"
    staging = bundles / f".joining-{os.getpid()}"
    shutil.rmtree(staging, ignore_errors=True)
    made = [path for path in (bundles, workdir.root) if not path.exists()]
    try:
        name, hashes = extract_bundle(Path(bundle), staging)
        check_manifest(staging / name, hashes)
        folder = bundles / name
        competition = Competition(workdir.competitions / name)
        if competition.answers.exists():
            raise KitError(f"{workdir.root} holds competition {name} with its answer key (the "
                           "organiser's work folder); join into another --workdir")
        if folder.exists():
            if (folder / MANIFEST).read_bytes() != (staging / name / MANIFEST).read_bytes():
                raise KitError(f"another bundle of {name} was joined into {folder}; join into "
                               "another --workdir, or delete that folder first")
        else:
            os.replace(staging / name, folder)
    finally:
        shutil.rmtree(staging, ignore_errors=True)
        for path in made:                   # a refused bundle leaves no empty folder behind
            if path.is_dir() and not any(path.iterdir()):
                path.rmdir()

    info = read_json(folder / "public" / "competition.json")
    ids = set(read_table(folder / "public" / "test.csv", ["id"])["id"])
    ids |= set(read_table(folder / "public" / "train.csv", ["id"])["id"])
    size = tuple(info["image_size"])
    posters = sorted((folder / "posters").iterdir()) if (folder / "posters").is_dir() else []
    films = pd.DataFrame({"id": [p.stem for p in posters],
                          "poster": [f"posters/{p.name}" for p in posters]})
    missing = sorted(ids - set(films["id"]))
    if missing:
        raise KitError(f"the bundle lacks the posters of {len(missing)} films, e.g. {missing[0]}")
    store_dir = workdir.store(name, size)
    stored = build_store(films, folder, store_dir, size, workers=workers, scheduler=scheduler)
    if stored["failed"]:
        reason, items = next(iter(stored["failed"].items()))
        raise KitError(f"{sum(map(len, stored['failed'].values()))} posters of the bundle could "
                       f"not be stored, e.g. {items[0]['id']} ({reason})")
    write_json(workdir.dataset(name) / "prepare.json",
               {"dataset": name, "source": str(folder.resolve()), "store": store_dir.name,
                "joined_from": str(Path(bundle).resolve()), "stored": stored["stored"]})
    public = competition.public
    public.mkdir(parents=True, exist_ok=True)
    for file in PUBLIC_FILES[:-1]:
        shutil.copyfile(folder / "public" / file, public / file)
    write_json(public / "competition.json",
               {**info, "dataset": name, "joined": True,
                "store": os.path.relpath(store_dir.resolve(), public.resolve())})
    write_text(workdir.competitions / "CURRENT", name + "\n")
    return {"competition": name, "posters": stored["stored"], "folder": str(folder),
            "server": info.get("server"), "rules": info.get("rules")}
