"""`kit prepare`: raw data folder -> canonical table -> poster store -> data report."""
from __future__ import annotations

import os
from pathlib import Path


from kit.files import exclusive_lock, read_table, write_csv, write_json
from kit.imaging import DEFAULT_MAX_PIXELS, DEFAULT_SIZE
from kit.ingest import DEFAULT_CHUNKSIZE, build_catalogue, find_source
from kit.report import write_data_report
from kit.store import DEFAULT_SHARD_SIZE, build_store
from kit.workdir import Workdir, derived_name


def prepare_dataset(source_dir: str, workdir: Workdir, name: str | None = None,
                    layout: str | None = None, labels: str | None = None,
                    posters: str | None = None, size: tuple[int, int] = DEFAULT_SIZE,
                    shard_size: int = DEFAULT_SHARD_SIZE, max_pixels: int = DEFAULT_MAX_PIXELS,
                    chunksize: int = DEFAULT_CHUNKSIZE, workers: int | None = None,
                    scheduler: str = "auto") -> dict:
    """Ingest ``source_dir`` into the work folder's dataset ``name``; return the JSON report."""
    source = find_source(source_dir, layout, labels, posters)
    name = name or derived_name(Path(source_dir).resolve().name)
    with exclusive_lock(workdir.dataset(name) / ".lock", f"kit prepare of {name!r}"):
        return _prepare(source, workdir, name, size, shard_size, max_pixels, chunksize, workers,
                        scheduler)


def _prepare(source, workdir: Workdir, name: str, size: tuple[int, int], shard_size: int,
             max_pixels: int, chunksize: int, workers: int | None, scheduler: str) -> dict:
    out = workdir.dataset(name)
    catalogue = build_catalogue(source, chunksize)
    write_csv(out / "films.csv", catalogue.films)
    store = build_store(catalogue.films, source.root, workdir.store(name, size), size, shard_size,
                        max_pixels, workers, scheduler)
    stored = catalogue.films[catalogue.films["id"].isin(
        read_table(workdir.store(name, size) / "index.csv", ["id"])["id"])]
    report = write_data_report(stored, out / "report", name) if len(stored) else {}
    dropped = {reason: ids for reason, ids in catalogue.dropped.items() if ids}
    dropped.update({reason: [f["id"] for f in items] for reason, items in store["failed"].items()})
    summary = {
        # absolute, so that kit export finds the posters from any folder it runs in
        "dataset": name, "source": os.path.abspath(source.root), "layout": source.layout,
        "labels": os.path.abspath(source.labels), "posters": os.path.abspath(source.posters),
        "films_with_labels_and_poster": len(catalogue.films), "stored": store["stored"],
        "newly_stored": store["newly_stored"], "skipped_unchanged": store["skipped_unchanged"],
        "dropped": {reason: len(ids) for reason, ids in dropped.items()},
        "notes": dict(catalogue.notes), "posters_per_second": store["posters_per_second"],
        "store": str(workdir.store(name, size)), "genres": len(report.get("genre_counts", {})),
    }
    # Paths inside the work folder are recorded relative to it: a moved or copied work folder
    # uses its own store.
    write_json(out / "prepare.json", {**summary, "store": workdir.store(name, size).name,
                                      "dropped_ids": dropped,
                                      "store_failures": store["failed"], "report": report})
    return summary


def redraw_report(workdir: Workdir, name: str) -> dict:
    """`kit report`: redraw the data report of a prepared dataset."""
    out = workdir.dataset(name)
    films = read_table(out / "films.csv")
    index = read_table(workdir.prepared_store(name) / "index.csv", ["id"])
    report = write_data_report(films[films["id"].isin(index["id"])], out / "report", name)
    return {"dataset": name, "films": report["films"], "figures": report["figures"]}
