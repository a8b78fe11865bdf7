"""`kit compare`: the report's question in one command.

One model per balancing strategy under the same split, seed and budget; each scored twice on the
natural test distribution (decisions at 0.5, and at per-genre thresholds tuned on valid); one
comparison report (Markdown, HTML, PNG) with the balancing audit of every strategy.
"""
from __future__ import annotations

from pathlib import Path

from kit import balancing
from kit.competition import Competition
from kit.console import console
from kit.errors import KitError
from kit.predict import predict
from kit.train.config import TrainConfig
from kit.train.data import balance_for
from kit.train.run import train
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
            prefix: str = "compare", resamples: int = 1000, scheduler: str = "auto"
            ) -> dict | None:
    """Train, predict and score every strategy; write the comparison report (None on torchrun
    ranks other than 0, which train along)."""
    from eval.answers import load_answers, valid_key
    from eval.leaderboard import build_leaderboard

    chosen = strategies or list(STRATEGIES)
    unknown = [s for s in chosen if s not in STRATEGIES]
    if unknown:
        raise KitError(f"unknown strategies {', '.join(unknown)}; choose from "
                       f"{', '.join(STRATEGIES)}")
    chosen_competition = Competition.find(workdir, competition)
    out = workdir.root / "compare" / chosen_competition.name
    # A participant's work folder holds no answer key: compare on the valid part, and say so.
    part = "test" if chosen_competition.answers.exists() else "valid"
    genres = chosen_competition.genres()
    parts = chosen_competition.labelled_parts()
    train_labels, valid_labels = parts["train"].labels, parts["valid"].labels
    if base.min_count is None and base.target_size is None:
        base = base.updated({"target_size": len(train_labels) // 2})
    paths, audits, runs = [], {}, {}
    for strategy in chosen:
        config = base.updated({**STRATEGIES[strategy], "tune_thresholds": True})
        run = f"{prefix}-{strategy}-{chosen_competition.name}"
        console.rule(f"strategy {strategy}")
        runs[strategy] = train(config, workdir, run, chosen_competition.name, resume=True,
                               scheduler=scheduler)
        if runs[strategy] is None:  # torchrun ranks other than 0 train along, rank 0 reports
            continue
        for variant, raw in (("tuned", False), ("at-0.5", True)):
            paths.append(Path(predict(workdir, run, submissions, f"{prefix}-{strategy}-{variant}",
                                      raw=raw, part=part)["submission"]))
        plan = balance_for(config, train_labels, valid_labels, genres, config.seed)
        report = balancing.audit(config.balance if strategy != "asymmetric-loss" else strategy,
                                 train_labels, genres, plan, out / "audits", config.seed)
        audits[f"audit {strategy}: films per genre"] = Path(report["figures"][0])
        audits[f"audit {strategy}: genres per film"] = Path(report["figures"][1])
    if not paths:
        return None
    if part == "test":
        key = load_answers(chosen_competition.answers)
        title = "Balancing strategies compared"
    else:
        key = valid_key(chosen_competition)
        title = ("Balancing strategies compared on the valid part (no answer key here; tuned "
                 "thresholds were fit on these films, so tuned scores are optimistic)")
        console.print(f"[yellow]no answer key in {workdir.root}: comparing on the valid part[/]")
    board = build_leaderboard(paths, key, out, resamples=resamples, title=title,
                              extra_figures=audits)
    rows = [e for e in board["entries"] if not e["reference"]]
    return {"competition": chosen_competition.name, "strategies": chosen, "scored_on": part,
            "report": str(out / "leaderboard.md"),
            "html": str(out / "leaderboard.html"),
            "best": rows[0]["name"] if rows else None,
            "results": {e["name"]: {"f1_micro": e["public"]["f1_micro"],
                                    "f1_macro": e["public"]["f1_macro"],
                                    "f1_micro_interval": e["public"]["f1_micro_interval"],
                                    "f1_macro_interval": e["public"]["f1_macro_interval"]}
                        for e in board["entries"]}}
