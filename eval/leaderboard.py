"""`python -m eval leaderboard`: score every CSV in a folder, rank, write Markdown and HTML."""
from __future__ import annotations

import base64
import html
import os
from pathlib import Path

import numpy as np
from rich.text import Text

from eval.answers import AnswerKey
from eval.metrics import DEFAULT_RESAMPLES
from eval.scoring import score_submission, tied_with_best
from eval.submission import SubmissionError
from kit import plots
from kit.console import console, table
from kit.files import write_json, write_text

LOWER_IS_BETTER = {"error_rate"}
COLUMNS = ["f1_macro", "f1_micro", "f1_samples", "accuracy", "subset_accuracy", "ap_macro"]


def submissions_in(folder: str | Path) -> list[Path]:
    """Every CSV of a submission folder, sorted by name (links out of the folder included:
    the board lists them as refused, without reading them)."""
    from kit.errors import KitError
    folder = Path(folder)
    if not folder.is_dir():
        raise KitError(f"submission folder {folder} does not exist")
    return sorted(folder.glob("*.csv"))


def display_name(path: Path) -> str:
    """A file name fit for any report: bytes that are not UTF-8 shown as escapes."""
    return os.fsencode(path.name).decode("utf-8", "backslashreplace")


def outside(path: Path) -> bool:
    """A link that leads out of its folder (or nowhere)."""
    try:
        return not path.resolve(strict=True).is_relative_to(path.parent.resolve())
    except (OSError, RuntimeError):
        return True


def build_leaderboard(paths: list[Path], key: AnswerKey, out: str | Path,
                      metric: str = "f1_macro", threshold: float = 0.5,
                      resamples: int = DEFAULT_RESAMPLES, reveal_private: bool = False,
                      title: str = "Leaderboard", extra_figures: dict[str, Path] | None = None,
                      verdict: list[str] | None = None,
                      tables: list[dict] | None = None) -> dict:
    """Score, rank and write ``leaderboard.md``, ``leaderboard.html`` and ``leaderboard.json``
    (figures beside them); ``verdict`` sentences open the report, followed by ``tables``
    (each a ``title``, a ``header`` and ``rows`` of text cells), ``extra_figures`` end it."""
    from kit.errors import KitError
    out = Path(out)
    if metric not in COLUMNS + ["f1_weighted", "error_rate", "roc_auc_macro"]:
        raise KitError(f"unknown --metric {metric!r}; choose one of {', '.join(COLUMNS)}")
    entries, invalid = [], []
    for path in paths:
        name = display_name(path)
        if path.is_symlink() and outside(path):
            invalid.append({"name": name, "problems": ["a link to a file outside the "
                                                       "submission folder: not read"]})
            continue
        try:
            result = score_submission(path, key, threshold, resamples, None, reveal_private)
        except SubmissionError as error:
            invalid.append({"name": name, "problems": error.problems})
            continue
        entries.append({"name": name, "result": result, "path": path})
    show_private = reveal_private or key.closed
    # Once closed, the private part ranks (the final standing); the public rank stays beside it.
    part = "private" if key.closed and len(key.part("Private")) else "public"
    for usage in ("Public", "Private") if show_private else ("Public",):
        for name, result in key.references(usage).items():
            found = next((e for e in entries if e["name"] == f"(reference) {name}"), None)
            if found is None:
                found = {"name": f"(reference) {name}", "result": {}, "reference": True}
                entries.append(found)
            found["result"][usage.lower()] = result
    sign = 1 if metric in LOWER_IS_BETTER else -1
    for ranked_part, field in (("public", "public_rank"), (part, "rank")):
        entries.sort(key=lambda e: sign * (e["result"][ranked_part].get(metric) or 0.0))
        for rank, entry in enumerate(entries, 1):
            entry[field] = rank
    submitted = [e for e in entries if not e.get("reference")]
    for entry, tied in zip(submitted, tied_with_best(key, [e["path"] for e in submitted],
                                                     part.capitalize(), metric, threshold,
                                                     resamples)):
        entry["tied"] = tied and entry is not submitted[0]
    out.mkdir(parents=True, exist_ok=True)
    figures = {**_figures(entries, key, out), **(extra_figures or {})}
    board = {"title": title, "competition": key.competition.name, "metric": metric,
             "verdict": list(verdict or []), "tables": list(tables or []),
             "ranked_by": part, "private_shown": show_private,
             "entries": [_summary(e, show_private) for e in entries], "invalid": invalid,
             "figures": {k: os.path.relpath(v, out) for k, v in figures.items()}}
    write_json(out / "leaderboard.json", board)
    write_text(out / "leaderboard.md", _markdown(board, figures, out))
    write_text(out / "leaderboard.html", _html(board, figures))
    console.print(table(f"{title} of {key.competition.name} by {part} {metric}",
                        ["rank", "submission", *COLUMNS],
                        ([e["rank"], e["name"] + (" (tied with #1)" if e["tied"] else ""),
                          *(e[part].get(c) for c in COLUMNS)] for e in board["entries"]),
                        whole="submission"))
    for bad in invalid:
        console.print(Text.assemble(("invalid", "red"), f" {bad['name']}: {bad['problems'][0]}"),
                      soft_wrap=True)
    console.print(f"written: {out / 'leaderboard.md'}, {out / 'leaderboard.html'}")
    return board


def _summary(entry: dict, show_private: bool) -> dict:
    result = entry["result"]
    summary = {"rank": entry["rank"], "public_rank": entry["public_rank"], "name": entry["name"],
               "reference": entry.get("reference", False), "tied": entry.get("tied", False),
               "public": {c: result["public"].get(c) for c in COLUMNS + [
                   "f1_macro_interval", "f1_micro_interval"]},
               "beats_references": result["public"].get("beats_references")}
    if show_private and "private" in result:
        summary["private"] = {c: result["private"].get(c) for c in COLUMNS}
    return summary


def _figures(entries: list[dict], key: AnswerKey, out: Path) -> dict[str, Path]:
    import matplotlib.pyplot as plt
    names = [plots.short_label(e["name"]) for e in entries]
    public = [e["result"]["public"] for e in entries]
    figure, axis = plt.subplots(figsize=(8, 0.45 * len(names) + 1.5))
    y = np.arange(len(names))
    for offset, metric in ((-0.2, "f1_macro"), (0.2, "f1_micro")):
        values = np.array([p[metric] for p in public])
        spans = [p.get(f"{metric}_interval") or [p[metric]] * 2 for p in public]
        errors = np.clip([[v - s[0], s[1] - v] for v, s in zip(values, spans)], 0, None).T
        axis.barh(y + offset, values, 0.4, xerr=errors, capsize=2, label=metric)
    axis.set_yticks(y, names)
    axis.invert_yaxis()
    axis.set_xlabel("public score (95% bootstrap interval)")
    axis.legend()
    bars = plots.save(figure, out / "metrics.png")

    heat = np.array([[g["f1"] for g in p["per_genre"]] for p in public])
    figure, axis = plt.subplots(figsize=(0.45 * len(key.genres) + 3, 0.4 * len(names) + 2))
    image = axis.imshow(heat, aspect="auto", vmin=0, vmax=1, cmap="viridis")
    axis.set_xticks(range(len(key.genres)), [plots.short_label(g) for g in key.genres],
                    rotation=60, ha="right")
    axis.set_yticks(range(len(names)), names)
    figure.colorbar(image, label="F1")
    axis.set_title("per-genre F1 (public)")
    heatmap = plots.save(figure, out / "per_genre_f1.png")

    figure, axis = plt.subplots(figsize=(8, 0.45 * len(names) + 1.5))
    axis.barh(y, [p["predicted_genres_per_film"] for p in public], color="tab:orange",
              label="predicted")
    axis.axvline(public[0]["true_genres_per_film"], color="black", linestyle="--",
                 label="true")
    axis.set_yticks(y, names)
    axis.invert_yaxis()
    axis.set_xlabel("mean genres per film (public)")
    axis.legend()
    per_film = plots.save(figure, out / "genres_per_film.png")
    return {"metrics": bars, "per_genre_f1": heatmap, "genres_per_film": per_film}


def _format(value) -> str:
    if value is None:
        return "-"
    return f"{value:.4f}" if isinstance(value, float) else str(value)


MARKDOWN_SPECIAL = str.maketrans({c: "\\" + c for c in "\\`*[]!|<>"} |
                                 {"\n": " ", "\r": " ", "\t": " "})


def _markdown(board: dict, figures: dict[str, Path], out: Path) -> str:
    def cell(text: str) -> str:
        """Any string from a file or a name, inert in Markdown (no HTML, link or table cell)."""
        return str(text).translate(MARKDOWN_SPECIAL)
    part = board["ranked_by"]
    lines = [f"# {cell(board['title'])}: {cell(board['competition'])}", ""]
    if board["verdict"]:
        lines += ["## Verdict", ""] + [f"- {cell(sentence)}" for sentence in board["verdict"]]
    for extra in board["tables"]:
        lines += ["", f"### {cell(extra['title'])}", "",
                  "| " + " | ".join(map(cell, extra["header"])) + " |",
                  "|---" * len(extra["header"]) + "|"]
        lines += ["| " + " | ".join(map(cell, row)) + " |" for row in extra["rows"]]
    if board["verdict"] or board["tables"]:
        lines += ["", "## Ranking", ""]
    lines += [f"Ranked by the **{part}** part's `{board['metric']}`"
             + (" (the competition is closed: the final standing)" if part == "private" else "")
             + "; scored on the natural test distribution. *tied*: not distinguishable from "
               "the first (paired bootstrap, 95%).", "",
             "| rank | public rank | submission | " + " | ".join(COLUMNS) + " |",
             "|---" * (len(COLUMNS) + 3) + "|"]
    for entry in board["entries"]:
        name = cell(entry["name"]) + (" *tied*" if entry["tied"] else "")
        lines.append(f"| {entry['rank']} | {entry['public_rank']} | {name} | " +
                     " | ".join(_format(entry[part].get(c)) for c in COLUMNS) + " |")
    if board["private_shown"] and part == "public":
        lines += ["", "## Private part", "", "| submission | " + " | ".join(COLUMNS) + " |",
                  "|---" * (len(COLUMNS) + 1) + "|"]
        lines += [f"| {cell(e['name'])} | " + " | ".join(_format(e["private"].get(c))
                                                         for c in COLUMNS) + " |"
                  for e in board["entries"] if "private" in e]
    if board["invalid"]:
        lines += ["", "## Invalid submissions", ""]
        lines += [f"- {cell(bad['name'])}: {cell('; '.join(bad['problems']))}"
                  for bad in board["invalid"]]
    lines += [""] + [f"![{name}]({os.path.relpath(path, out)})" for name, path in figures.items()]
    lines += [""]
    return "\n".join(lines)


def _html(board: dict, figures: dict[str, Path]) -> str:
    escape = html.escape
    part = board["ranked_by"]
    head = "<th>rank</th><th>public rank</th><th class=name>submission</th>" + "".join(
        f"<th>{escape(c)}</th>" for c in COLUMNS)
    rows = "".join(
        "<tr>" + f"<td>{entry['rank']}</td><td>{entry['public_rank']}</td>"
        f"<td class=name>{escape(entry['name'])}{' <em>tied</em>' if entry['tied'] else ''}"
        "</td>" +
        "".join(f"<td>{escape(_format(entry[part].get(c)))}</td>" for c in COLUMNS) + "</tr>"
        for entry in board["entries"])
    private = ""
    if board["private_shown"] and part == "public":
        private = "<h2>Private part</h2><table><tr><th class=name>submission</th>" + "".join(
            f"<th>{escape(c)}</th>" for c in COLUMNS) + "</tr>" + "".join(
            f"<tr><td class=name>{escape(e['name'])}</td>" + "".join(
                f"<td>{escape(_format(e['private'].get(c)))}</td>" for c in COLUMNS) + "</tr>"
            for e in board["entries"] if "private" in e) + "</table>"
    tables = "".join(
        f"<h3>{escape(extra['title'])}</h3><table><tr>"
        + "".join(f"<th{' class=name' * (j == 0)}>{escape(c)}</th>"
                  for j, c in enumerate(extra["header"])) + "</tr>"
        + "".join("<tr>" + "".join(f"<td{' class=name' * (j == 0)}>{escape(c)}</td>"
                                   for j, c in enumerate(row)) + "</tr>" for row in extra["rows"])
        + "</table>" for extra in board["tables"])
    invalid = "".join(f"<li><b>{escape(bad['name'])}</b>: {escape('; '.join(bad['problems']))}"
                      "</li>" for bad in board["invalid"])
    images = "".join(
        f'<figure><img alt="{escape(name)}" src="data:image/png;base64,'
        f'{base64.b64encode(path.read_bytes()).decode()}"></figure>'
        for name, path in figures.items())
    return ("<!DOCTYPE html><html><head><meta charset='utf-8'>"
            f"<title>{escape(board['title'])}: {escape(board['competition'])}</title><style>"
            "body{font-family:sans-serif;margin:2em}table{border-collapse:collapse}"
            "td,th{border:1px solid #ccc;padding:4px 8px;text-align:right}"
            ".name{text-align:left;overflow-wrap:anywhere}img{max-width:100%}</style></head><body>"
            f"<h1>{escape(board['title'])}: {escape(board['competition'])}</h1>"
            + ("<h2>Verdict</h2><ul>" + "".join(f"<li>{escape(s)}</li>" for s in
                                                board["verdict"]) + "</ul>"
               if board["verdict"] else "")
            + tables + ("<h2>Ranking</h2>" if board["verdict"] or board["tables"] else "")
            + f"<p>Ranked by the <b>{part}</b> part's <code>{escape(board['metric'])}</code>"
            + (" (the competition is closed: the final standing)" if part == "private" else "")
            + ", scored on the natural test distribution; <em>tied</em>: not distinguishable "
              f"from the first (paired bootstrap, 95%).</p><table><tr>{head}</tr>{rows}</table>"
              f"{private}"
            + (f"<h2>Invalid submissions</h2><ul>{invalid}</ul>" if invalid else "")
            + f"{images}</body></html>\n")
