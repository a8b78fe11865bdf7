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
MEASUREMENTS = ROOT / "bench" / "measurements.py"
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
    """Run one measurement of bench/measurements.py in a fresh process."""
    output, exit_code, peak_rss_mb = run_measured([sys.executable, str(MEASUREMENTS), *argv])
    if exit_code != 0:
        raise SystemExit(f"measurement {argv} failed")
    return {**json.loads(output.strip().splitlines()[-1]), "peak_rss_mb": peak_rss_mb}


def folder_mb(path: Path) -> float:
    return sum(p.stat().st_size for p in path.rglob("*") if p.is_file()) / 1e6


# --- the suite ----------------------------------------------------------------------------------

def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--workdir", default="work/bench",
                        help="folder for the synthetic data and stores (default: %(default)s)")
    parser.add_argument("--sizes", type=int, nargs="+", default=[1000, 5000, 20000],
                        help="synthetic posters stored by each preprocessing measurement "
                        "(default: %(default)s)")
    parser.add_argument("--score-rows", type=int, nargs="+", default=[10_000, 100_000, 1_000_000],
                        help="rows of the scored submissions (default: %(default)s)")
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
    names = {"auto": "default (auto)", "inline": "one process", "processes": "process pool",
             "local": "Dask local", "naive_pil": "naive PIL"}
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
    from kit.train.precision import native_bf16
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
    from kit.train.precision import resolve_precision
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
