"""What the pages show, computed in Python so the templates stay plain: the competition's facts,
time left, and the geometry of the score chart (an inline SVG, no script)."""
from __future__ import annotations

import math

from kit.competition import Competition
from kit.files import read_table

CHART_ROWS = 12
LABEL_WIDTH, BAR_WIDTH, ROW_HEIGHT = 230, 420, 26
LABEL_CHARACTERS = 32


def competition_facts(competition: Competition) -> dict:
    """Counts participants may know: genres, training and test films, image size."""
    train = competition.train_table()
    info = competition.info()
    return {"genres": competition.genres(),
            "train": int((train["part"] == "train").sum()),
            "valid": int((train["part"] == "valid").sum()),
            "test": len(read_table(competition.public / "test.csv", ["id"])),
            "image_size": "x".join(map(str, info.get("image_size", [])))}


def time_left(seconds: int | None) -> str | None:
    """'3 days 4 h', '5 h 12 min', '40 s' (None without a deadline)."""
    if seconds is None:
        return None
    days, rest = divmod(seconds, 86400)
    hours, rest = divmod(rest, 3600)
    minutes, seconds = divmod(rest, 60)
    if days:
        return f"{days} days {hours} h"
    if hours:
        return f"{hours} h {minutes} min"
    return f"{minutes} min {seconds} s" if minutes else f"{seconds} s"


def nice_top(value: float) -> float:
    """The axis end: the smallest of 1, 2, 4, 5 or 10 x 10^k at or above ``value``."""
    if value <= 0:
        return 1.0
    exponent = math.floor(math.log10(value))
    for step in (1, 2, 4, 5, 10):
        if step * 10 ** exponent >= value * (1 - 1e-12):
            return step * 10 ** exponent
    return 10 ** (exponent + 1)


def score_chart(rows: list[dict], metric: str) -> dict | None:
    """Bars and 95% interval whiskers of the top rows (teams and references), for an SVG."""
    shown = [r for r in rows if r.get("score") is not None][:CHART_ROWS]
    if not shown:
        return None
    top = nice_top(max(max(r["score"], (r.get("interval") or [0, 0])[1] or 0) for r in shown))
    scale = BAR_WIDTH / top
    bars = []
    for i, row in enumerate(shown):
        span = row.get("interval")
        label = row["team"]
        if len(label) > LABEL_CHARACTERS:
            label = label[:LABEL_CHARACTERS - 1] + "…"
        bars.append({"label": label, "y": 10 + i * ROW_HEIGHT,
                     "width": max(1.0, row["score"] * scale), "score": row["score"],
                     "low": LABEL_WIDTH + span[0] * scale if span else None,
                     "high": LABEL_WIDTH + span[1] * scale if span else None,
                     "kind": "reference" if row.get("reference") else
                             "baseline" if row.get("baseline") else
                             "tied" if row.get("tied") else "team"})
    ticks = [{"x": LABEL_WIDTH + t * top / 4 * scale, "value": t * top / 4} for t in range(5)]
    return {"bars": bars, "ticks": ticks, "label_width": LABEL_WIDTH, "metric": metric,
            "width": LABEL_WIDTH + BAR_WIDTH + 60, "height": 40 + len(bars) * ROW_HEIGHT,
            "axis_y": 14 + len(bars) * ROW_HEIGHT}
