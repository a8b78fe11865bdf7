"""Submissions of pathological shapes, each about ``size`` bytes: one huge row (with \n or with
old Mac \r line ends), header, field, id, quoted run of newlines, an unclosed quote, blank lines,
many rows. Reading any of them must cost
time and memory linear in its size (`tests/test_submission.py` at a few MB, `make stress` at
30 MB)."""
from __future__ import annotations

from pathlib import Path


def pathological_submissions(folder: Path, genres: list[str], test_id: str, size: int
                             ) -> list[Path]:
    """Write the shapes into ``folder`` for a competition with ``genres``; return their paths."""
    header = ",".join(["id", *genres]) + "\n"
    row = ",".join([test_id, *["0.5"] * len(genres)]) + "\n"
    shapes = {
        "long_row": header + test_id + "," * size + "\n",
        "long_row_old_mac": (header + test_id + "," * size + "\n").replace("\n", "\r"),
        "long_header": header.rstrip("\n") + "".join(f",x{i}" for i in range(size // 9))
                       + "\n" + row,
        "long_field": header + f'{test_id},"' + "x" * size + '"\n',
        "long_id": header + "t" * size + ",0" * len(genres) + "\n",
        "quoted_newlines": header + f'{test_id},"' + "\n" * size + '"\n',
        "unclosed_quote": header + f'{test_id},"0.5\n' + row * (size // len(row)),
        "blank_lines": header + "\n" * size,
        "many_rows": header + row * (size // len(row)),
    }
    folder.mkdir(parents=True, exist_ok=True)
    paths = []
    for name, text in shapes.items():
        path = folder / f"{name}.csv"
        path.write_text(text, encoding="utf-8")
        paths.append(path)
    return paths
