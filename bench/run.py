"""`make bench`: the kit's cost curve, measured side by side in one run.

Each measurement runs in its own process, so its peak memory (max RSS) is its own. Prints a table
and writes bench/results.json. Uses ../shared/data/posters-real when present for the real-poster
measurements (else synthetic posters). Not a test: nothing here asserts a time.
"""
from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
REAL = ROOT.parent / "shared" / "data" / "posters-real"
RESULTS = ROOT / "bench" / "results.json"
REAL_ROUNDS = 3          # rounds of the real-poster preprocessing measurements
FULL_LETTERBOXD = 900_000


def run_measured(command: list[str], capture: bool = True) -> tuple[str, int, float]:
    """Run ``command`` from the repository root; its stdout (if captured), exit code and peak
    memory in MB (max RSS of its largest process). A small launcher starts it: a child forked
    from a large parent would count the parent's memory as its own peak."""
    with tempfile.NamedTemporaryFile("w+") as peak:
        process = subprocess.Popen([sys.executable, "-c", PEAK_MEMORY, peak.name, *command],
                                   cwd=ROOT, text=True,
                                   stdout=subprocess.PIPE if capture else subprocess.DEVNULL,
                                   stderr=None if capture else subprocess.DEVNULL)
        output = process.stdout.read() if capture else ""
        process.wait()
        exit_code, peak_kb = map(int, peak.read().split())
    return output, exit_code, round(peak_kb / 1024, 1)


# Runs argv[2:], writes its exit code and peak memory (KB, with its children) to argv[1].
PEAK_MEMORY = ("import os, subprocess, sys; p = subprocess.Popen(sys.argv[2:]); "
               "_, status, usage = os.wait4(p.pid, 0); "
               "open(sys.argv[1], 'w').write(f'{os.waitstatus_to_exitcode(status)} "
               "{usage.ru_maxrss}')")


def measure(*argv: str) -> dict:
    """Run one measurement (`python bench/run.py measure ...`) in a fresh process."""
    output, exit_code, peak_rss_mb = run_measured([sys.executable, __file__, "measure", *argv])
    if exit_code != 0:
        raise SystemExit(f"measurement {argv} failed")
    return {**json.loads(output.strip().splitlines()[-1]), "peak_rss_mb": peak_rss_mb}


# --- measurements, each run in its own process -------------------------------------------------

def preprocess(source: str, out: str, scheduler: str) -> dict:
    from kit.ingest import build_catalogue, find_source
    from kit.store import build_store
    films = build_catalogue(find_source(source)).films
    started = time.perf_counter()
    result = build_store(films, source, out, scheduler=scheduler)
    seconds = time.perf_counter() - started
    return {"posters": result["stored"], "seconds": round(seconds, 2),
            "posters_per_second": round(result["stored"] / seconds, 1)}


def naive_preprocess(source: str) -> dict:
    """The report's way: open, convert and resize each poster with PIL, one at a time."""
    import numpy as np
    from PIL import Image
    from kit.ingest import build_catalogue, find_source
    films = build_catalogue(find_source(source)).films
    started = time.perf_counter()
    for poster in films["poster"]:
        image = Image.open(Path(source) / poster).convert("RGB").resize((230, 345))
        np.asarray(image)
    seconds = time.perf_counter() - started
    return {"posters": len(films), "seconds": round(seconds, 2),
            "posters_per_second": round(len(films) / seconds, 1)}


def lenet_throughput(workdir: str, mode: str, batches: int = 100) -> dict:
    """Images/s of the kit's LeNet training epoch (``kit.train.loop.train_one_epoch``, default
    precision) reading the uint8 store, or decoding and resizing each JPEG every time."""
    import numpy as np
    import torch
    from PIL import Image
    from torch.utils.data import DataLoader, Dataset
    from kit.competition import Competition
    from kit.train.checkpoint import build_model
    from kit.train.config import TrainConfig
    from kit.train.data import PosterDataset
    from kit.train.loop import train_one_epoch
    from kit.workdir import Workdir
    competition = Competition.find(Workdir(workdir))
    store = competition.store()
    config = TrainConfig(model="lenet")
    positions = np.arange(min(len(store), config.batch_size * batches))
    labels = np.zeros((len(positions), len(competition.genres())), np.uint8)
    source = Path(json.loads((Path(workdir) / "datasets").joinpath(
        store.dir.parent.name, "prepare.json").read_text())["source"])

    class DecodingDataset(Dataset):
        def __len__(self):
            return len(positions)

        def __getitem__(self, item):
            path = source / store.index["source"].iloc[int(positions[item])]
            image = Image.open(path).convert("RGB").resize(store.size[::-1])
            pixels = np.asarray(image).transpose(2, 0, 1).copy()
            return torch.from_numpy(pixels), torch.from_numpy(labels[item])
    dataset = PosterDataset(store, positions, labels) if mode == "store" else DecodingDataset()
    model = build_model(config, labels.shape[1], {"input_size": list(store.size)})
    optimizer = torch.optim.Adam(model.parameters())
    criterion = torch.nn.BCEWithLogitsLoss()

    def epoch(loader) -> float:
        started = time.perf_counter()
        train_one_epoch(model, criterion, optimizer, loader, mode,
                        bf16=config.bf16_training)
        return time.perf_counter() - started
    epoch(DataLoader(torch.utils.data.Subset(dataset, range(3 * config.batch_size)),
                     batch_size=config.batch_size))                      # warm-up
    seconds = epoch(DataLoader(dataset, batch_size=config.batch_size, shuffle=True))
    return {"images_per_second": round(len(dataset) / seconds, 1),
            "precision": config.resolved().precision}


def embedding_throughput(backbone: str, precision: str, images: int = 128) -> dict:
    import numpy as np
    from kit.embeddings import Backbone, Embedder
    from kit.memory import keep_freed_memory
    keep_freed_memory()             # as run_jobs does before every embedding job
    embedder = Embedder(Backbone(backbone), "full", precision)
    batch = np.random.default_rng(0).integers(0, 255, (32, 3, 345, 230), dtype=np.uint8)
    embedder(batch[:8])
    started = time.perf_counter()
    for _ in range(images // 32):
        embedder(batch)
    return {"images_per_second": round(images / (time.perf_counter() - started), 1)}


def pretrained_vs_random(workdir: str) -> dict:
    """Frozen-feature heads on real posters: ImageNet weights against random ones."""
    from eval.answers import load_answers
    from eval.scoring import score_submission
    from kit.predict import predict
    from kit.competition import Competition
    from kit.train.config import TrainConfig
    from kit.train.run import train
    from kit.workdir import Workdir
    wd = Workdir(workdir)
    key = load_answers(Competition.find(wd).folder / "private" / "answers.csv")
    out = {}
    for label, model in (("imagenet", "efficientnet_lite0"),
                         ("random", "timm:tf_efficientnet_lite0")):
        config = TrainConfig(model=model, frozen=True, optimizer="adamw", lr=1e-3, batch_size=64,
                             epochs=40, patience=8, dropout=0.2, weight_decay=1e-4)
        train(config, wd, f"bench-{label}", resume=True, scheduler="inline")
        path = predict(wd, f"bench-{label}", Path(workdir) / "bench-subs")["submission"]
        public = score_submission(path, key, resamples=200)["public"]
        out[label] = {"f1_micro": round(public["f1_micro"], 4),
                      "f1_macro": round(public["f1_macro"], 4),
                      "f1_macro_interval": [round(v, 4) for v in public["f1_macro_interval"]]}
    return out


def make_answer_key(folder: str, films: int) -> None:
    """A competition folder with ``films`` test films and no posters (for scoring only)."""
    import numpy as np
    import pandas as pd
    from kit.synth import GENRES
    rng = np.random.default_rng(0)
    folder = Path(folder)
    (folder / "public").mkdir(parents=True, exist_ok=True)
    (folder / "private").mkdir(parents=True, exist_ok=True)
    labels = rng.random((films, len(GENRES))) < 0.12
    genres = ["|".join(g for g, on in zip(GENRES, row) if on) or "Drama" for row in labels]
    ids = [str(1_000_000 + i) for i in range(films)]
    usage = np.where(rng.random(films) < 0.5, "Public", "Private")
    pd.DataFrame({"id": ids, "genres": genres, "usage": usage}).to_csv(
        folder / "private" / "answers.csv", index=False)
    (folder / "public" / "genres.txt").write_text("\n".join(GENRES) + "\n")
    pd.DataFrame({"id": ids[:100], "genres": genres[:100], "part": "train"}).to_csv(
        folder / "public" / "train.csv", index=False)
    frame = pd.DataFrame(rng.random((films, len(GENRES))).round(4), columns=GENRES)
    frame.insert(0, "id", ids)
    frame.to_csv(folder / "submission.csv", index=False)
    (folder / "public" / "competition.json").write_text(json.dumps(   # written last: complete
        {"name": folder.name, "dataset": None, "image_size": [345, 230]}))


def score_time(folder: str) -> dict:
    from eval.answers import load_answers
    from eval.scoring import score_submission
    started = time.perf_counter()
    key = load_answers(Path(folder) / "private" / "answers.csv")
    score_submission(Path(folder) / "submission.csv", key)
    return {"seconds": round(time.perf_counter() - started, 2)}


def naive_score_time(folder: str) -> dict:
    """A per-row Python loop parser: the csv module, a dict per row, float() per cell."""
    import csv
    from sklearn.metrics import f1_score
    started = time.perf_counter()
    with open(Path(folder) / "private" / "answers.csv") as handle:
        answers = {row["id"]: set(row["genres"].split("|")) for row in csv.DictReader(handle)}
    genres = (Path(folder) / "public" / "genres.txt").read_text().split("\n")[:-1]
    truth, predicted = [], []
    with open(Path(folder) / "submission.csv") as handle:
        for row in csv.DictReader(handle):
            values = [float(row[g]) for g in genres]
            if any(not 0 <= v <= 1 for v in values):
                raise ValueError(row["id"])
            truth.append([g in answers[row["id"]] for g in genres])
            predicted.append([v >= 0.5 for v in values])
    f1_score(truth, predicted, average="macro", zero_division=0)
    return {"seconds": round(time.perf_counter() - started, 2)}


def server(work: str) -> dict:
    from server import server_benchmark
    return server_benchmark(work)


MEASUREMENTS = {"server": server, "preprocess": preprocess, "naive_preprocess": naive_preprocess,
                "lenet": lenet_throughput, "embedding": embedding_throughput,
                "pretrained": pretrained_vs_random, "make_key": make_answer_key,
                "score": score_time, "naive_score": naive_score_time}


def folder_mb(path: Path) -> float:
    return sum(p.stat().st_size for p in path.rglob("*") if p.is_file()) / 1e6


# --- the suite ----------------------------------------------------------------------------------

def main() -> None:
    if len(sys.argv) > 1 and sys.argv[1] == "measure":
        name, args = sys.argv[2], sys.argv[3:]
        result = MEASUREMENTS[name](*[int(a) if a.isdigit() else a for a in args])
        print(json.dumps(result if result is not None else {}))
        return
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--workdir", default="work/bench")
    parser.add_argument("--sizes", type=int, nargs="+", default=[1000, 5000, 20000])
    parser.add_argument("--score-rows", type=int, nargs="+", default=[10_000, 100_000, 1_000_000])
    parser.add_argument("--sections", nargs="+", choices=SECTIONS, default=list(SECTIONS),
                        help="run only these parts; results merge into bench/results.json")
    args = parser.parse_args()
    work = Path(args.workdir).resolve()
    work.mkdir(parents=True, exist_ok=True)
    results: dict = json.loads(RESULTS.read_text()) if RESULTS.exists() else {}
    results["machine"] = {"cores": os.cpu_count()}
    for section in args.sections:
        SECTIONS[section](args, work, results)
        results.setdefault("provenance", {})[section] = provenance()
        RESULTS.write_text(json.dumps(results, indent=2) + "\n")
    print(f"written: {RESULTS}")


def provenance() -> dict:
    """What a section's numbers were measured with: code, date, libraries, processor."""
    import platform
    from importlib.metadata import version
    commit = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=ROOT, text=True,
                            capture_output=True).stdout.strip()
    cpu = next((line.split(":", 1)[1].strip() for line in Path("/proc/cpuinfo").read_text()
                .splitlines() if line.startswith("model name")), platform.processor()) \
        if Path("/proc/cpuinfo").exists() else platform.processor()
    return {"commit": commit, "date": time.strftime("%Y-%m-%d"), "cpu": cpu,
            "cores": os.cpu_count(), "python": platform.python_version(),
            **{name: version(name) for name in ("torch", "numpy", "pandas", "scikit-learn")}}


def preprocessing_section(args, work: Path, results: dict) -> None:
    print("preprocessing throughput and peak memory")
    results["preprocessing"] = []
    for n in args.sizes:
        data = work / f"synthetic-{n}"
        if not (data / "genres.csv").exists():
            subprocess.run([sys.executable, "-m", "kit", "synth", "--out", str(data), "--n",
                            str(n)], check=True, cwd=ROOT, stderr=subprocess.DEVNULL)
        row = {"posters": n}
        warm_page_cache(data)           # every measurement below reads from memory alike
        for scheduler in SCHEDULERS:
            store = work / f"store-{n}-{scheduler}"
            subprocess.run(["rm", "-rf", str(store)], check=True)
            row[scheduler] = measure("preprocess", str(data), str(store), scheduler)
        row["naive_pil"] = measure("naive_preprocess", str(data))
        row["store_mb_per_1000"] = round(folder_mb(work / f"store-{n}-inline") / n * 1000, 1)
        results["preprocessing"].append(row)
        print(f"  {n:>6} posters: " + describe(row))

    real = real_source(work)
    print(f"real-poster measurements on {real}")
    row = {"source": os.path.relpath(real, ROOT)}   # relative: no machine paths in results
    warm_page_cache(real)
    # Rounds of every measurement in turn; each reports its median round (on a shared 2-core
    # machine one round of a few seconds swings by a third).
    rounds = {name: [] for name in (*SCHEDULERS, "naive_pil")}
    for _ in range(REAL_ROUNDS):
        for scheduler in SCHEDULERS:
            store = work / f"store-real-{scheduler}"
            subprocess.run(["rm", "-rf", str(store)], check=True)
            rounds[scheduler].append(measure("preprocess", str(real), str(store), scheduler))
        rounds["naive_pil"].append(measure("naive_preprocess", str(real)))
    for name, measured in rounds.items():
        ordered = sorted(measured, key=lambda m: m["posters_per_second"])
        row[name] = {**ordered[len(ordered) // 2],
                     "rounds_posters_per_second": [m["posters_per_second"] for m in measured]}
    row["default_over_naive"] = round(row["auto"]["posters_per_second"]
                                      / row["naive_pil"]["posters_per_second"], 2)
    results["preprocessing_real"] = row
    print("  " + describe(row) + f"; the default path is {row['default_over_naive']}x the naive "
          f"loop (medians of {REAL_ROUNDS} rounds)")


def warm_page_cache(folder: Path) -> None:
    """Read every file of ``folder`` once, so no measurement pays for a cold disk."""
    for path in folder.rglob("*"):
        if path.is_file():
            path.read_bytes()


def describe(row: dict) -> str:
    names = {"auto": "default (auto)", "inline": "one process", "processes": "process pool", "local": "Dask local",
             "naive_pil": "naive PIL"}
    return ", ".join(f"{names[k]} {row[k]['posters_per_second']}/s ({row[k]['peak_rss_mb']} MB)"
                     for k in (*SCHEDULERS, "naive_pil"))


def real_source(work: Path) -> Path:
    return REAL if (REAL / "genres.csv").exists() else work / "synthetic-1000"


def prepared_real(work: Path) -> Path:
    """The real posters prepared and split once in the bench's work folder."""
    real_work = work / "real"
    if not (real_work / "competitions").exists():
        for command in (["prepare", str(real_source(work)), "--workdir", str(real_work),
                         "--name", "real"], ["split", "--workdir", str(real_work)]):
            subprocess.run([sys.executable, "-m", "kit", *command], check=True, cwd=ROOT,
                           stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    return real_work


def lenet_section(args, work: Path, results: dict) -> None:
    real_work = prepared_real(work)
    store_rate = measure("lenet", str(real_work), "store")["images_per_second"]
    decode_rate = measure("lenet", str(real_work), "decode")["images_per_second"]
    results["lenet_training"] = {"from_store": store_rate, "decode_every_epoch": decode_rate,
                                 "speedup": round(store_rate / decode_rate, 2)}
    print(f"LeNet training: {store_rate} img/s from the store, {decode_rate} img/s decoding "
          f"every epoch ({results['lenet_training']['speedup']}x)")


def embedding_section(args, work: Path, results: dict) -> None:
    """Per view and backbone, in fp32 and (where the CPU computes it natively) bf16: emulated
    bf16 is about 10x slower, and the kit never picks it there."""
    from kit.train.config import native_bf16
    results["embedding"] = {}
    for backbone in ("efficientnet_lite0", "efficientnet_lite2"):
        for precision in ("bf16", "fp32") if native_bf16() else ("fp32",):
            rate = measure("embedding", backbone, precision)["images_per_second"]
            results["embedding"][f"{backbone}-{precision}"] = rate
            print(f"embedding {backbone} {precision}: {rate} img/s per view")


def pretrained_section(args, work: Path, results: dict) -> None:
    results["pretrained_vs_random"] = measure("pretrained", str(prepared_real(work)))
    print(f"frozen features, public test: {results['pretrained_vs_random']}")


def scoring_section(args, work: Path, results: dict) -> None:
    results["scoring"] = []
    for rows in args.score_rows:
        folder = work / f"score-{rows}"
        if not (folder / "submission.csv").exists():
            measure("make_key", str(folder), str(rows))
        row = {"rows": rows, "kit": measure("score", str(folder)),
               "naive_loop": measure("naive_score", str(folder))}
        results["scoring"].append(row)
        print(f"scoring {rows:>9} rows: harness {row['kit']['seconds']} s "
              f"({row['kit']['peak_rss_mb']} MB), naive loop {row['naive_loop']['seconds']} s "
              f"({row['naive_loop']['peak_rss_mb']} MB)")


def server_section(args, work: Path, results: dict) -> None:
    folder = work / "server"
    folder.mkdir(parents=True, exist_ok=True)
    results["server"] = measure("server", str(folder))
    row = results["server"]
    print(f"grading server, {row['teams']:,} teams and {row['submissions_in_db']:,} submissions: "
          f"leaderboard p50/p95 {row['leaderboard_api']['p50_ms']}/"
          f"{row['leaderboard_api']['p95_ms']} ms (page {row['leaderboard_page']['p50_ms']}/"
          f"{row['leaderboard_page']['p95_ms']} ms); {row['scored_per_second']} scored/s on "
          f"{row['scoring_workers']} workers, {row['test_films']:,} test films")


def estimates_section(args, work: Path, results: dict) -> None:
    if not {"preprocessing", "embedding", "preprocessing_real", "pretrained_vs_random"} <= set(
            results):
        print("estimates need the preprocessing, embedding and pretrained sections")
        return
    largest = results["preprocessing"][-1]
    store_per_1000 = largest["store_mb_per_1000"]
    embed_dirs = list(work.glob("real/datasets/real/store-*/embeddings/*"))
    embed_per_1000 = round(sum(folder_mb(d) for d in embed_dirs[:1]) /
                           max(results["preprocessing_real"]["inline"]["posters"], 1) * 1000, 2)
    single_rate = largest["inline"]["posters_per_second"]
    cluster_rate = max(largest["local"]["posters_per_second"],
                       largest["processes"]["posters_per_second"])
    per_core = cluster_rate / (os.cpu_count() or 1)
    from kit.train.config import resolve_precision
    lite0 = results["embedding"][f"efficientnet_lite0-{resolve_precision('auto')}"] / (
        os.cpu_count() or 1)
    results["estimates_900k"] = {
        "note": "estimates from the measured rates above, not measurements",
        "store_gb": round(store_per_1000 * FULL_LETTERBOXD / 1000 / 1000, 1),
        "embedding_cache_gb_per_view": round(embed_per_1000 * FULL_LETTERBOXD / 1000 / 1000, 2),
        "preprocess_hours_this_machine": round(FULL_LETTERBOXD / cluster_rate / 3600, 2),
        "preprocess_hours_16_workers": round(FULL_LETTERBOXD / (per_core * 16) / 3600, 2),
        "embed_lite0_hours_this_machine": round(FULL_LETTERBOXD / (lite0 * (os.cpu_count() or 1))
                                                / 3600, 2),
        "embed_lite0_hours_16_workers": round(FULL_LETTERBOXD / (lite0 * 16) / 3600, 2),
        "single_process_posters_per_second": single_rate,
    }
    print(f"estimates for {FULL_LETTERBOXD:,} films: {results['estimates_900k']}")


SCHEDULERS = ("auto", "inline", "processes", "local")
SECTIONS = {"preprocessing": preprocessing_section, "lenet": lenet_section,
            "embedding": embedding_section, "pretrained": pretrained_section,
            "scoring": scoring_section, "server": server_section,
            "estimates": estimates_section}


if __name__ == "__main__":
    main()
