"""Rows wider than the header, found before any CSV parser sees them.

pandas' parser spends time and memory far beyond linear on one row with millions of fields (a
3 MB row of commas: 66 s and 1.7 GB). This scan counts the commas of each line with numpy, in
blocks, at a cost linear in the file's size; only a line with more commas than the header
allows is looked at closely (quotes may hold commas), with Python's csv module.
"""
from __future__ import annotations

import csv
from pathlib import Path

import numpy as np

BLOCK_BYTES = 1 << 22          # with a few index arrays per block: under 200 MB
COMMA, NEWLINE, RETURN, QUOTE = ord(","), ord("\n"), ord("\r"), ord('"')
FIELD_LIMIT = 1 << 20         # characters in one field; no id or value comes near it


def wide_rows(path: Path, fields: int) -> list[int]:
    """Numbers (1 = the first line after the header) of the lines holding more than ``fields``
    CSV fields, in order; a line the csv module cannot read alone (an over-long field, a quote
    left open) counts as wide when its commas alone exceed the header's."""
    suspects = _lines_with_more_commas(path, fields - 1)
    if not suspects:
        return []
    wide = []
    with open(path, "rb") as handle:
        for number, (start, end) in sorted(suspects.items()):
            handle.seek(start)
            if _fields(handle.read(end - start)) > fields:
                wide.append(number)
    return wide


def _lines_with_more_commas(path: Path, commas: int) -> dict[int, tuple[int, int]]:
    """{line number (0 = the header): (start, end) byte offsets} of the lines after the header
    with more than ``commas`` commas."""
    suspects: dict[int, tuple[int, int]] = {}
    completed, line_start, carried, offset = 0, 0, 0, 0
    with open(path, "rb") as handle:
        while block := handle.read(BLOCK_BYTES):
            data = np.frombuffer(block, dtype=np.uint8)
            # A line ends at \n, or at a \r not followed by \n (old Mac files, which pandas
            # reads as lines too).
            newline = data == NEWLINE
            lone_return = data == RETURN
            lone_return[:-1] &= ~newline[1:]
            ends = np.flatnonzero(newline | lone_return)
            # Commas of each line ending in this block, and of the unfinished last one.
            before = np.searchsorted(np.flatnonzero(data == COMMA), np.append(ends, len(data)))
            counts = np.diff(before, prepend=0)
            counts[0] += carried
            for index in np.flatnonzero(counts[:-1] > commas):
                number = completed + int(index)
                start = line_start if index == 0 else offset + int(ends[index - 1]) + 1
                if number > 0:
                    suspects[number] = (start, offset + int(ends[index]))
            if len(ends):
                completed += len(ends)
                line_start = offset + int(ends[-1]) + 1
            carried = int(counts[-1])
            offset += len(block)
    if carried > commas and completed > 0:      # a last line without a newline
        suspects[completed] = (line_start, offset)
    return suspects


def _fields(line: bytes) -> int:
    """Fields of one line as the csv module reads it; a line it cannot read alone counts its
    commas."""
    if QUOTE not in line:
        return line.count(b",") + 1
    limit = csv.field_size_limit()
    try:
        csv.field_size_limit(FIELD_LIMIT)
        text = line.decode("utf-8", errors="replace")
        return max((len(row) for row in csv.reader([text], skipinitialspace=True)), default=0)
    except csv.Error:
        return line.count(b",") + 1
    finally:
        csv.field_size_limit(limit)
