"""Terminal output: one rich console on stderr, progress bars, and the end-of-command summary."""
from __future__ import annotations

import json
import sys
from typing import Any, Callable, Iterable

from rich.console import Console
from rich.progress import (BarColumn, MofNCompleteColumn, Progress, TaskProgressColumn, TextColumn,
                           TimeElapsedColumn, TimeRemainingColumn)
from rich.table import Table
from rich.text import Text

from kit.errors import visible


def inert(text: str) -> str:
    """``text`` with its control characters but the line break shown as escapes, so a path or a
    genre holding ESC cannot drive the terminal."""
    return "\n".join(visible(line) for line in str(text).split("\n"))


class InertConsole(Console):
    """A console that prints every string as data: its control characters shown as escapes
    (a path given as --out, a genre name of the data set), wherever a message quotes it."""

    def print(self, *objects: Any, **options: Any) -> None:
        super().print(*(inert(item) if isinstance(item, str) else item for item in objects),
                      **options)

    def rule(self, title: str = "", **options: Any) -> None:
        super().rule(inert(title) if isinstance(title, str) else title, **options)


# Human-facing output goes to stderr so that `--json` leaves stdout to one JSON object.
# markup off: text is data (a genre named "[/x] action", a path "[bold]"), styles are given
# as styles; ":x:" in data stays text
console = InertConsole(stderr=True, markup=False, highlight=False, emoji=False)


def print_error(message: str, problems: Iterable[str] = (), title: str = "error:") -> None:
    """A refusal on the terminal: ``title`` and ``message``, then one line per problem, each
    printed inert."""
    console.print(Text.assemble((title, "bold red"), " ", inert(message)), soft_wrap=True)
    for problem in problems:
        console.print(f"  - {problem}", soft_wrap=True)     # printed inert by the console


def progress(transient: bool = False) -> Progress:
    """A progress bar with count, rate-friendly columns and time left."""
    return Progress(
        TextColumn("{task.description}", style="bold", markup=False), BarColumn(),
        MofNCompleteColumn(), TaskProgressColumn(), TextColumn("{task.fields[rate]}"),
        TimeElapsedColumn(), TimeRemainingColumn(), console=console, transient=transient,
        disable=console.quiet or (not console.is_terminal and not _force_progress()),
    )


def _force_progress() -> bool:
    import os
    return os.environ.get("KIT_PROGRESS") == "1"


def track(items: Iterable, total: int, description: str, unit: str = "items",
          size: Callable[[Any], int] | None = None, scale: int = 1, transient: bool = False):
    """Iterate ``items`` with a progress bar over ``total``: each item advances it by
    ``size(item)`` (1 without ``size``) and the rate shows ``scale`` times the advance per second,
    in ``unit``/s (``scale`` counts processes that each see a share of the work)."""
    import time
    start, done = time.perf_counter(), 0
    with progress(transient) as bar:
        task = bar.add_task(description, total=total, rate="")
        for item in items:
            yield item
            done += size(item) if size else 1
            rate = done * scale / max(time.perf_counter() - start, 1e-9)
            bar.update(task, completed=done, rate=f"{rate:,.1f} {unit}/s")


def read_chunks(path, description: str, **read_csv_options):
    """pandas ``read_csv`` chunks of ``path`` with a progress bar over the bytes read."""
    import os
    import pandas as pd
    total = os.path.getsize(path)
    with open(path, "rb") as handle, progress(transient=True) as bar:
        task = bar.add_task(description, total=total, rate="")
        for chunk in pd.read_csv(handle, **read_csv_options):
            bar.update(task, completed=min(handle.tell(), total))
            yield chunk


def table(title: str, columns: list[str], rows: Iterable[Iterable[Any]],
          whole: str | None = None, width: int | None = None) -> Table:
    """A rich table with the given header and rows (values formatted with ``format_value``).

    Every cell is data, never markup: a genre named ``[/x] action`` or a file named
    ``:smile:.csv`` is shown as written. The column ``whole`` (default: the first), the one that
    says what each row is, keeps its cells whole (up to 40 characters) in a terminal of
    ``width`` columns (default: this one's); of the other columns, the first is always shown
    (folded if need be) and those that do not fit are left out, the last first, and named in
    the caption."""
    cells = [[format_value(value) for value in row] for row in rows]
    key = columns.index(whole) if whole is not None else 0
    sizes = [max([len(str(column))] + [len(row[i]) for row in cells]) for i, column in
             enumerate(columns)]
    sizes[key] = min(sizes[key], 40)
    room = (width or console.width) - 1
    shown = []
    for index in sorted(range(len(columns)), key=lambda i: (i != key, i > key, i)):
        if room - (sizes[index] + 3) >= 0 or index == key or len(shown) == 1:
            shown.append(index)                     # the key and one more, folded if need be
            room -= sizes[index] + 3
    shown.sort()
    left_out = [str(columns[i]) for i in range(len(columns)) if i not in shown]
    out = Table(title=Text(visible(str(title))), title_justify="left",
                caption=Text(f"left out at this width: {', '.join(left_out)}")
                if left_out else None, caption_justify="left")
    for index in shown:
        out.add_column(Text(str(columns[index])), justify="left" if index in (0, key)
                       else "right", no_wrap=index == key, overflow="fold",
                       min_width=sizes[index] if index == key else None)
    for row in cells:
        out.add_row(*(Text(row[i]) for i in shown))
    return out


def format_value(value: Any) -> str:
    """One table cell: fractions (scores) to four places, a whole number above 1 (an upload
    limit in MB) as one, a figure of 10 or more (posters per second) to one place, text with
    its non-printing characters as escapes."""
    if value is None:
        return "-"
    if isinstance(value, float):
        if value.is_integer() and abs(value) > 1:
            return f"{value:.0f}"
        return f"{value:.1f}" if abs(value) >= 10 else f"{value:.4f}"
    return visible(str(value))


def summary(title: str, data: dict[str, Any], as_json: bool) -> None:
    """End a command: a short summary on the terminal, or one JSON object on stdout."""
    if as_json:
        sys.stdout.write(json.dumps(data, default=str) + "\n")
        return
    console.print(table(title, ["item", "value"], ((k, _inline(v)) for k, v in data.items()
                                                   if _inline(v) is not None)))


def _inline(value: Any) -> Any:
    """Scalars as they are; small dicts and lists of scalars on one line; others left out."""
    if isinstance(value, dict):
        if not value or not all(isinstance(v, (int, float, str)) for v in value.values()):
            return "-" if not value else None
        text = ", ".join(f"{k}: {format_value(v)}" for k, v in value.items())
    elif isinstance(value, (list, tuple)):
        if not all(isinstance(v, (int, float, str)) for v in value):
            return None
        text = ", ".join(format_value(v) for v in value)
    else:
        return value
    return text if len(text) <= 160 else text[:157] + "..."
