"""The study behind `kit compare`: is a strategy really better than doing nothing?

For every strategy and decision rule: F1 on the scored part over seeds (mean and spread), the
paired bootstrap difference against `none` with the same rule, and the gap between F1 on the
strategy's own training films, on valid as the strategy balanced it, and on the natural test
part (the overfitting the course report saw). A verdict is generated from these numbers.
"""
from __future__ import annotations

from pathlib import Path

import numpy as np
from torch.utils.data import DataLoader, Subset

from eval.answers import AnswerKey
from eval.metrics import bootstrap_f1, decisions, f1_micro_macro, interval, resample_count
from eval.submission import read_submission
from kit import plots
from kit.competition import Competition
from kit.train.checkpoint import model_of, read_checkpoint
from kit.train.data import PosterDataset, prepare_data
from kit.train.inference import predict_probabilities
from kit.workdir import Workdir

RULES = ("tuned", "0.5")
METRICS = ("macro", "micro")
BASELINE = "none"


def row_name(strategy: str, rule: str) -> str:
    """The short name of a strategy under a decision rule, as rows and files show it."""
    return f"{strategy}@{rule}"


def fit_gap(workdir: Workdir, run: str, competition: Competition, scheduler: str) -> dict:
    """F1 at 0.5 of a run on the training films its strategy trains on (one epoch's draw for a
    sampler: repeated copies included), on valid as the strategy balanced it, and those sizes."""
    checkpoint = read_checkpoint(workdir.run(run) / "best.pt", f"run {run!r}")
    config, model = model_of(checkpoint, f"run {run!r}")
    data = prepare_data(config, competition, scheduler)
    train = data.train
    if isinstance(train, PosterDataset):                   # the films, not augmented views
        train = PosterDataset(train.store, train.positions, train.labels)
    drawn = np.arange(len(train))
    if data.plan.sample_weights is not None:
        rng = np.random.default_rng(config.seed)
        drawn = rng.choice(len(train), len(train), replace=True, p=data.plan.sample_weights)
    films, copies = np.unique(drawn, return_inverse=True)
    probabilities, _ = predict_probabilities(model, DataLoader(Subset(train, films.tolist()),
                                                               batch_size=64))
    train_f1 = f1_micro_macro(data.train_labels[drawn], probabilities[copies] >= 0.5)
    valid_probabilities, _ = predict_probabilities(model, DataLoader(data.valid, batch_size=64))
    valid_f1 = f1_micro_macro(data.valid_labels, valid_probabilities >= 0.5)
    return {"train_films": int(len(drawn)), "repeated_copies": int(len(drawn) - len(films)),
            "valid_films": int(len(data.valid)),
            "train": dict(zip(("micro", "macro"), train_f1)),
            "valid": dict(zip(("micro", "macro"), valid_f1))}


def public_decisions(key: AnswerKey, paths: dict[str, Path]) -> dict[str, np.ndarray]:
    """Each submission's 0/1 decisions at 0.5 on the key's public part, read once."""
    rows = key.part("Public")
    return {name: decisions(read_submission(path, key.ids, key.genres).values[rows], 0.5)
            for name, path in paths.items()}


def part_f1(key: AnswerKey, predicted: np.ndarray) -> dict:
    """Micro and macro F1 of decisions on the key's public part."""
    truth = key.labels[key.part("Public")]
    return dict(zip(("micro", "macro"), f1_micro_macro(truth, predicted)))


def paired_against_baseline(key: AnswerKey, predicted: dict[str, np.ndarray],
                            resamples: int) -> dict:
    """For each row ``strategy@rule`` of the first seed: the difference in micro and macro F1
    against ``none@rule``, with its 95% paired bootstrap interval on the public part."""
    rows = key.part("Public")
    truth = key.labels[rows]
    out = {}
    for name, values in predicted.items():
        baseline = predicted.get(row_name(BASELINE, name.split("@")[1]))
        if baseline is None or name.startswith(f"{BASELINE}@"):
            continue
        draws = bootstrap_f1(truth, [values, baseline], resample_count(len(rows), resamples))
        ours, theirs = f1_micro_macro(truth, values), f1_micro_macro(truth, baseline)
        out[name] = {metric: {"difference": ours[i] - theirs[i],
                              "interval": interval(draws[0][metric] - draws[1][metric])}
                     for i, metric in enumerate(("micro", "macro"))}
    return out


def summarise(scores: dict[str, list[dict]], paired: dict, gaps: dict[str, dict]) -> dict:
    """The study's numbers per row: mean and spread over seeds, the paired difference against
    `none` with a word for it, and each strategy's train / valid / test F1 (test: its first
    seed at 0.5)."""
    rows = {}
    for name, per_seed in scores.items():
        row = {"seeds": len(per_seed)}
        for metric in METRICS:
            values = np.array([s[metric] for s in per_seed])
            row[metric] = {"mean": float(values.mean()),
                           "spread": float(values.std(ddof=1)) if len(values) > 1 else None}
            if name in paired:
                compared = paired[name][metric]
                low, high = compared["interval"]
                word = "better" if low > 0 else "worse" if high < 0 else "not distinguishable"
                baseline = scores[row_name(BASELINE, name.split("@")[1])]
                difference = values.mean() - np.mean([s[metric] for s in baseline])
                spread = row[metric]["spread"]
                compared = {**compared, "verdict": word, "mean_difference": float(difference),
                            "within_seed_spread": bool(spread is not None
                                                       and abs(difference) < spread)}
                row[metric]["against_none"] = compared
        rows[name] = row
    fit_gap = {strategy: {**gap, "test": scores[row_name(strategy, "0.5")][0]}
               for strategy, gap in gaps.items()}
    return {"rows": rows, "fit_gap": fit_gap}


def verdict(study: dict, part: str) -> list[str]:
    """Plain sentences from the study's numbers: the best row on each metric, by how much it
    differs from `none` with the same rule and whether that is beyond noise, and what
    rebalancing did to the gap between training and test F1."""
    rows = study["rows"]
    sentences = []
    for metric in METRICS:
        best = max(rows, key=lambda name: rows[name][metric]["mean"])
        mean = rows[best][metric]["mean"]
        sentence = f"Best {metric} F1 on the {part}: {best}, {mean:.3f} (mean over seeds)"
        compared = rows[best][metric].get("against_none")
        if compared is None:
            sentence += " (doing nothing: no strategy beats it)."
        else:
            low, high = compared["interval"]
            sentence += (f"; against {row_name(BASELINE, best.split('@')[1])} with the first "
                         f"seed {compared['difference']:+.3f} (95% paired interval {low:+.3f} to "
                         f"{high:+.3f}): {compared['verdict']}")
            if compared["within_seed_spread"]:
                sentence += ", and smaller than the spread over seeds"
            sentence += "."
        sentences.append(sentence)
    for metric in METRICS:
        better = [n for n, r in rows.items()
                  if r[metric].get("against_none", {}).get("verdict") == "better"]
        worse = [n for n, r in rows.items()
                 if r[metric].get("against_none", {}).get("verdict") == "worse"]
        sentences.append(f"On {metric} F1 against none with the same rule, better beyond "
                         f"noise: {', '.join(better) or 'no row'}; worse beyond noise: "
                         f"{', '.join(worse) or 'no row'}; the others are not distinguishable.")
    gaps = study["fit_gap"]
    if BASELINE in gaps:
        def gap(strategy: str) -> float:
            return gaps[strategy]["train"]["macro"] - gaps[strategy]["test"]["macro"]
        def compared(strategy: str) -> str:
            change = gap(strategy) - gap(BASELINE)
            return "about the same" if abs(change) < 0.01 else "wider" if change > 0 \
                else "narrower"
        parts = [f"{s} {gap(s):+.3f} ({compared(s)})" for s in gaps if s != BASELINE]
        sentences.append(f"Train minus test macro F1 at 0.5, the overfitting gap: none "
                         f"{gap(BASELINE):+.3f}; " + "; ".join(parts) + ".")
    return sentences


def gap_figure(gaps: dict[str, dict], path: Path) -> Path:
    """Macro F1 at 0.5 on each strategy's training films, valid as balanced, and test."""
    import matplotlib.pyplot as plt
    strategies = list(gaps)
    figure, axis = plt.subplots(figsize=(8, 0.5 * len(strategies) + 1.8))
    y = np.arange(len(strategies))
    for offset, (part, colour) in zip((-0.27, 0, 0.27), (("train", "tab:red"),
                                                         ("valid", "tab:orange"),
                                                         ("test", "tab:blue"))):
        axis.barh(y + offset, [gaps[s][part]["macro"] for s in strategies], 0.27,
                  label=part, color=colour)
    axis.set_yticks(y, strategies)
    axis.invert_yaxis()
    axis.set_xlim(0, 1)
    axis.set_xlabel("macro F1 at 0.5: training films, valid (as balanced), natural test")
    axis.legend(loc="lower right")
    return plots.save(figure, path)
