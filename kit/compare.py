"""`kit compare`: the report's question in one command.

One model per balancing strategy (and `none`, the yardstick) under the same split and budget,
for one or more seeds; each scored twice on the natural test distribution (decisions at 0.5,
and at per-genre thresholds tuned on valid); one report (Markdown, HTML, PNG) that opens with a
verdict generated from the study (`kit/study.py`) and ends with every strategy's audit.
"""
from __future__ import annotations

import os
import time
from pathlib import Path

from kit import balancing
from kit.competition import Competition
from kit.console import console, table
from kit.errors import KitError
from kit.files import write_json
from kit.predict import predict
from kit.study import (BASELINE, fit_gap, gap_figure, paired_against_baseline, part_f1,
                       public_decisions, row_name, summarise, verdict)
from kit.train.config import TrainConfig
from kit.train.data import balance_for, embed_for
from kit.train.run import train_several
from kit.workdir import Workdir

# name -> settings applied on top of the base configuration
STRATEGIES = {
    "none": {"balance": "none"},
    "min-per-genre": {"balance": "min-per-genre"},
    "class-weight": {"balance": "class-weight"},
    "sampler": {"balance": "sampler"},
    "asymmetric-loss": {"balance": "none", "loss": "asl"},
}


def compare(base: TrainConfig, workdir: Workdir, strategies: list[str] | None = None,
            competition: str | None = None, submissions: str = "submissions",
            prefix: str = "compare", resamples: int = 1000, scheduler: str = "auto",
            seeds: int | None = None) -> dict | None:
    """Train, predict and score every strategy with ``seeds`` seeds (None: 3 when the first
    seed's runs took under a minute each on average, else 1; one under torchrun); write the
    comparison report with its verdict (None on torchrun ranks other than 0, which train
    along). Frozen heads with a hidden layer train side by side (``train_several``)."""
    from eval.answers import load_answers, valid_key
    from eval.leaderboard import build_leaderboard

    chosen = strategies or list(STRATEGIES)
    unknown = [s for s in chosen if s not in STRATEGIES]
    if unknown:
        raise KitError(f"unknown strategies {', '.join(unknown)}; choose from "
                       f"{', '.join(STRATEGIES)}")
    if BASELINE not in chosen:
        chosen = [BASELINE, *chosen]            # every strategy is judged against doing nothing
    chosen_competition = Competition.find(workdir, competition)
    name = chosen_competition.name
    out = workdir.root / "compare" / name
    # A participant's work folder holds no answer key: compare on the valid part, and say so.
    part = "test" if chosen_competition.answers.exists() else "valid"
    parts = chosen_competition.labelled_parts()
    train_labels, valid_labels = parts["train"].labels, parts["valid"].labels
    if base.min_count is None and base.target_size is None:
        base = base.updated({"target_size": len(train_labels) // 2})
    if base.frozen:     # the embedding cache first, so the time of a run is its training
        embed_for(base, chosen_competition.store(), scheduler)
    paths: dict[int, dict[str, Path]] = {}
    audits, gaps = {}, {}
    seed = 0
    while seed < (seeds or 1):
        paths[seed] = {}
        runs = [(f"{prefix}-{strategy}-{name}" + (f"-seed{seed}" if seed else ""),
                 base.updated({**STRATEGIES[strategy], "tune_thresholds": True,
                               "seed": base.seed + seed}))
                for strategy in chosen]
        started = time.perf_counter()
        summaries = train_several(runs, workdir, name, scheduler, announce=lambda index: (
            console.rule(f"strategy {chosen[index]}, seed {runs[index][1].seed}")))
        seconds = (time.perf_counter() - started) / len(runs)
        folder = Path(submissions) / prefix / (f"seed{seed}" if seed else "")
        for strategy, (run, config), summary in zip(chosen, runs, summaries):
            if summary is None:
                continue        # torchrun ranks other than 0 train along, rank 0 reports
            for rule, raw in (("tuned", False), ("0.5", True)):
                paths[seed][row_name(strategy, rule)] = Path(predict(
                    workdir, run, folder, row_name(strategy, rule), raw=raw,
                    part=part)["submission"])
            if seed == 0:
                gaps[strategy] = fit_gap(workdir, run, chosen_competition, scheduler)
                audits.update(_audit(config, strategy, train_labels, valid_labels,
                                     chosen_competition.genres(), out))
        if seeds is None:
            # Every torchrun process must train the same runs: one seed there, unless asked.
            alone = int(os.environ.get("WORLD_SIZE", "1")) == 1
            seeds = 3 if alone and seconds < 60 else 1
            console.print(f"{seeds} seed{'s' * (seeds > 1)} (a run took {seconds:.0f} s on "
                          "average; --seeds K to choose)")
        seed += 1
    if not paths[0]:
        return None
    if part == "test":
        key = load_answers(chosen_competition.answers)
        title = "Balancing strategies compared"
    else:
        key = valid_key(chosen_competition)
        title = ("Balancing strategies compared on the valid part (no answer key here; tuned "
                 "thresholds were fit on these films, so tuned scores are optimistic)")
        console.print(f"no answer key in {workdir.root}: comparing on the valid part",
                      style="yellow")
    predicted = {seed: public_decisions(key, seed_paths) for seed, seed_paths in paths.items()}
    scores = {row: [part_f1(key, predicted[s][row]) for s in paths] for row in paths[0]}
    study = summarise(scores, paired_against_baseline(key, predicted[0], resamples), gaps)
    scored_on = "public test part" if part == "test" else "valid part"
    sentences = verdict(study, scored_on)
    figures = {**audits,
               "train, valid and test F1": gap_figure(study["fit_gap"], out / "fit_gap.png")}
    tables = study_tables(study, len(paths))
    board = build_leaderboard(list(paths[0].values()), key, out, resamples=resamples,
                              title=title, extra_figures=figures, verdict=sentences,
                              tables=tables)
    write_json(out / "study.json", study)
    for extra in tables:
        console.print(table(extra["title"], extra["header"], extra["rows"]))
    for sentence in sentences:
        console.print(f"- {sentence}", soft_wrap=False)
    rows = [e for e in board["entries"] if not e["reference"]]
    return {"competition": name, "strategies": chosen, "scored_on": part, "seeds": len(paths),
            "report": str(out / "leaderboard.md"), "html": str(out / "leaderboard.html"),
            "study": str(out / "study.json"), "best": rows[0]["name"] if rows else None,
            "verdict": sentences}


def _audit(config: TrainConfig, strategy: str, train_labels, valid_labels, genres: list[str],
           out: Path) -> dict[str, Path]:
    plan = balance_for(config, train_labels, valid_labels, genres, config.seed)
    report = balancing.audit(config.balance if strategy != "asymmetric-loss" else strategy,
                             train_labels, genres, plan, out / "audits", config.seed)
    return {f"audit {strategy}: films per genre": Path(report["figures"][0]),
            f"audit {strategy}: genres per film": Path(report["figures"][1])}


def study_tables(study: dict, seeds: int) -> list[dict]:
    """The study's rows as text tables: F1 over seeds with the difference against `none`, and
    the overfitting gap; for the terminal and the report alike."""
    def described(row: dict, metric: str) -> list[str]:
        mean, spread = row[metric]["mean"], row[metric]["spread"]
        against = row[metric].get("against_none")
        return [f"{mean:.3f}" + (f" ±{spread:.3f}" if spread is not None else ""),
                "-" if against is None else f"{against['difference']:+.3f} "
                f"[{against['interval'][0]:+.3f}, {against['interval'][1]:+.3f}]"]
    over_seeds = (f"F1 over {seeds} seeds (mean ±sd; the ranking scores the first seed's files)"
                  if seeds > 1 else "F1 of one seed")
    return [{"title": f"{over_seeds} and against none with the same rule, first seed [95%]",
             "header": ["row", "macro", "macro vs none", "micro", "micro vs none"],
             "rows": [[name, *described(row, "macro"), *described(row, "micro")]
                      for name, row in study["rows"].items()]},
            {"title": "overfitting: macro F1 at 0.5 on each strategy's own films",
             "header": ["strategy", "train films", "repeated", "train", "valid", "test"],
             "rows": [[s, str(g["train_films"]), str(g["repeated_copies"]),
                       *(f"{g[part]['macro']:.3f}" for part in ("train", "valid", "test"))]
                      for s, g in study["fit_gap"].items()]}]
