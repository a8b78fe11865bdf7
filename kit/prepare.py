"""`kit prepare`: raw data folder -> canonical table -> poster store -> data report."""
from __future__ import annotations

from pathlib import Path

import pandas as pd

from kit.files import read_json, write_csv, write_json
from kit.imaging import DEFAULT_MAX_PIXELS, DEFAULT_SIZE
from kit.ingest import DEFAULT_CHUNKSIZE, build_catalogue, find_source
from kit.report import write_data_report
from kit.store import DEFAULT_SHARD_SIZE, build_store
from kit.workdir import Workdir


def prepare_dataset(source_dir: str, workdir: Workdir, name: str | None = None,
                    layout: str | None = None, labels: str | None = None,
                    posters: str | None = None, size: tuple[int, int] = DEFAULT_SIZE,
                    shard_size: int = DEFAULT_SHARD_SIZE, max_pixels: int = DEFAULT_MAX_PIXELS,
                    chunksize: int = DEFAULT_CHUNKSIZE, workers: int | None = None,
                    scheduler: str = "local") -> dict:
    """Ingest ``source_dir`` into the work folder's dataset ``name``; return the JSON report."""
    source = find_source(source_dir, layout, labels, posters)
    name = name or Path(source_dir).resolve().name
    out = workdir.dataset(name)
    catalogue = build_catalogue(source, chunksize)
    write_csv(out / "films.csv", catalogue.films)
    store = build_store(catalogue.films, source.root, workdir.store(name, size), size, shard_size,
                        max_pixels, workers, scheduler)
    stored = catalogue.films[catalogue.films["id"].isin(
        pd.read_csv(workdir.store(name, size) / "index.csv", dtype={"id": str},
                    usecols=["id"])["id"])]
    report = write_data_report(stored, out / "report", name) if len(stored) else {}
    dropped = {reason: ids for reason, ids in catalogue.dropped.items() if ids}
    dropped.update({reason: [f["id"] for f in items] for reason, items in store["failed"].items()})
    summary = {
        "dataset": name, "source": str(source.root), "layout": source.layout,
        "labels": str(source.labels), "posters": str(source.posters),
        "films_with_labels_and_poster": len(catalogue.films), "stored": store["stored"],
        "newly_stored": store["newly_stored"], "skipped_unchanged": store["skipped_unchanged"],
        "dropped": {reason: len(ids) for reason, ids in dropped.items()},
        "notes": dict(catalogue.notes), "posters_per_second": store["posters_per_second"],
        "store": str(workdir.store(name, size)), "genres": len(report.get("genre_counts", {})),
    }
    write_json(out / "prepare.json", {**summary, "dropped_ids": dropped,
                                      "store_failures": store["failed"], "report": report})
    return summary


def redraw_report(workdir: Workdir, name: str) -> dict:
    """`kit report`: redraw the data report of a prepared dataset."""
    out = workdir.dataset(name)
    meta = read_json(out / "prepare.json")
    films = pd.read_csv(out / "films.csv", dtype=str, keep_default_na=False)
    index = pd.read_csv(Path(meta["store"]) / "index.csv", dtype={"id": str}, usecols=["id"])
    report = write_data_report(films[films["id"].isin(index["id"])], out / "report", name)
    return {"dataset": name, "films": report["films"], "figures": report["figures"]}
