"""`make stress`: resource limits, at real size (minutes; not part of `make test`).

- a 2 GB submission scored against a 100,000-film answer key;
- a genres.csv with 10,000,000 rows ingested;
- a poster folder of 100,000 files preprocessed;
- nine pathological 30 MB submissions (tests/shapes.py), each answered in seconds.
Each runs in its own process; the peak memory (max RSS) of each is printed and written to
bench/stress.json. All must finish without a crash, with memory bounded by the chunk and shard
sizes rather than by the input.
"""
from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd

from measurements import make_answer_key          # beside this file
from run import ROOT, run_measured

sys.path.insert(0, str(ROOT))       # tests.shapes: the shapes the test suite uses, at full size
from kit.files import read_table
from kit.labels import genre_list
from kit.synth import GENRES
from tests.shapes import pathological_submissions


def run(command: list[str]) -> dict:
    """Run a command in its own process; wall time, exit code and peak RSS."""
    started = time.perf_counter()
    _, exit_code, peak_rss_mb = run_measured(command, capture=False)
    return {"exit_code": exit_code, "seconds": round(time.perf_counter() - started, 1),
            "peak_rss_mb": peak_rss_mb}


def big_submission(folder: Path, films: int, target_bytes: int) -> Path:
    """A ``films``-film answer key and a submission padded to ``target_bytes`` with rows whose
    ids are not in the test set (each an error the harness must count, not keep)."""
    path = folder / "submission.csv"
    if path.exists() and path.stat().st_size >= target_bytes:
        return path
    make_answer_key(str(folder), films)
    block = pd.read_csv(path, dtype={"id": str})
    with open(path, "a") as handle:
        extra = 0
        while handle.tell() < target_bytes:
            block["id"] = [f"xx{extra}-{i}" for i in range(films)]
            block.to_csv(handle, index=False, header=False)
            extra += 1
    return path


def big_label_file(folder: Path, rows: int) -> Path:
    """A Letterboxd folder whose genres.csv has ``rows`` rows and only a few posters."""
    from PIL import Image
    (folder / "posters").mkdir(parents=True, exist_ok=True)
    path = folder / "genres.csv"
    if not path.exists():
        rng = np.random.default_rng(1)
        with open(path, "w") as handle:
            handle.write("id,genre\n")
            for start in range(0, rows, 1_000_000):
                ids = rng.integers(1, rows // 3, 1_000_000)
                genres = np.array(GENRES)[rng.integers(0, len(GENRES), 1_000_000)]
                handle.write("".join(f"{i},{g}\n" for i, g in zip(ids, genres)))
    for i in range(1, 21):
        Image.new("RGB", (23, 34), (i * 10, 0, 0)).save(folder / "posters" / f"{i}.jpg")
    return folder


def many_posters(folder: Path, count: int) -> Path:
    """A Letterboxd folder with ``count`` small posters (hard links of a few real JPEGs)."""
    from PIL import Image
    posters = folder / "posters"
    posters.mkdir(parents=True, exist_ok=True)
    seeds = []
    for i in range(8):
        path = folder / f"seed-{i}.jpg"
        Image.effect_noise((115, 172), 40 + 10 * i).convert("RGB").save(path, quality=85)
        seeds.append(path)
    for i in range(count):
        target = posters / f"{i}.jpg"
        if not target.exists():
            os.link(seeds[i % len(seeds)], target)
    pd.DataFrame({"id": range(count), "genre": [GENRES[i % len(GENRES)] for i in range(count)]}
                 ).to_csv(folder / "genres.csv", index=False)
    return folder


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--workdir", default="work/stress",
                        help="folder for the generated files (default: %(default)s)")
    parser.add_argument("--submission-gb", type=float, default=2.0,
                        help="size of the scored submission (default: %(default)s)")
    parser.add_argument("--label-rows", type=int, default=10_000_000,
                        help="rows of the ingested genres.csv (default: %(default)s)")
    parser.add_argument("--posters", type=int, default=100_000,
                        help="files in the poster folder prepared (default: %(default)s)")
    args = parser.parse_args()
    work = Path(args.workdir).resolve()
    results = {}

    print(f"a {args.submission_gb} GB submission")
    path = big_submission(work / "submission", 100_000, int(args.submission_gb * 1e9))
    results["submission"] = {"bytes": path.stat().st_size, **run(
        [sys.executable, "-m", "eval", "score", str(path), "--answers",
         str(work / "submission" / "private" / "answers.csv"), "--json"])}
    print(f"  {results['submission']}  (exit code 2: the extra ids are reported, as they must be)")

    print(f"a genres.csv with {args.label_rows:,} rows")
    folder = big_label_file(work / "labels", args.label_rows)
    results["labels"] = {"rows": args.label_rows, **run(
        [sys.executable, "-m", "kit", "prepare", str(folder), "--workdir", str(work / "kit"),
         "--scheduler", "inline", "--size", "34x23"])}
    print(f"  {results['labels']}")

    print(f"a poster folder of {args.posters:,} files")
    folder = many_posters(work / "posters", args.posters)
    results["posters"] = {"files": args.posters, **run(
        [sys.executable, "-m", "kit", "prepare", str(folder), "--workdir", str(work / "kit"),
         "--size", "115x77"])}
    print(f"  {results['posters']}")
    print("pathological 30 MB submissions")
    key = work / "shapes"
    make_answer_key(str(key), 1000)
    answers = key / "private" / "answers.csv"
    paths = pathological_submissions(key / "files", genre_list(key / "public" / "genres.txt"),
                                     read_table(answers)["id"][0], 30_000_000)
    for path in paths:
        results[f"shape {path.stem}"] = {"bytes": path.stat().st_size, **run(
            [sys.executable, "-m", "eval", "score", str(path), "--answers", str(answers)])}
        print(f"  {path.stem}: {results[f'shape {path.stem}']}")
    (ROOT / "bench" / "stress.json").write_text(json.dumps(results, indent=2) + "\n")
    failed = [name for name, r in results.items()
              if r["exit_code"] not in ((0, 2) if name == "submission" or name.startswith("shape")
                                        else (0,))]
    if failed:
        raise SystemExit(f"stress cases failed: {', '.join(failed)}")


if __name__ == "__main__":
    main()
