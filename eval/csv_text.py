"""The first look at a submission file: that it is CSV text in UTF-8, and its header row. A
file of another kind (UTF-16, gzip, a workbook) is named, with what to do instead."""
from __future__ import annotations

import codecs
import csv
from pathlib import Path

from kit.errors import KitError
from kit.files import regular_file

HEADER_BYTES = 1 << 20      # the header names the id and the genres: far less than this
# What a file that is not CSV text starts with, for a message that says what to do instead.
NOT_CSV_SIGNATURES = (
    (codecs.BOM_UTF32_LE, "UTF-32 text; save it as UTF-8 CSV"),
    (codecs.BOM_UTF32_BE, "UTF-32 text; save it as UTF-8 CSV"),
    (codecs.BOM_UTF16_LE, "UTF-16 text; save it as UTF-8 CSV"),
    (codecs.BOM_UTF16_BE, "UTF-16 text; save it as UTF-8 CSV"),
    (b"\x1f\x8b", "gzip-compressed; decompress it and submit the CSV"),
    (b"PK\x03\x04", "a ZIP archive (an .xlsx workbook is one); submit the CSV itself"),
    (b"\xd0\xcf\x11\xe0", "an old Excel workbook (.xls); export it as CSV"),
)


class SubmissionError(ValueError):
    """An invalid submission; ``problems`` lists every reason, one sentence each."""

    def __init__(self, problems: list[str]):
        super().__init__("; ".join(problems))
        self.problems = problems


def read_header(path: Path) -> list[str]:
    """The header row, after checking the file is non-empty UTF-8 text."""
    try:
        regular_file(path, "submission file")
    except KitError as error:
        raise SubmissionError([str(error)]) from None
    with open(path, "rb") as handle:
        head = handle.read(HEADER_BYTES)
    if not head.strip(codecs.BOM_UTF8 + b" \t\r\n"):
        raise SubmissionError(["the file is empty"])
    for signature, what in NOT_CSV_SIGNATURES:
        if head.startswith(signature):
            raise SubmissionError([f"the file is not CSV text: it is {what}"])
    if b"\x00" in head:
        raise SubmissionError(["the file is not CSV text (it contains NUL bytes)"])
    try:
        head.decode("utf-8-sig")
    except UnicodeDecodeError as error:
        if error.start < len(head) - 4:     # not just a character cut at the read boundary
            raise SubmissionError([f"the file is not UTF-8 text (byte {error.start})"]) from None
    if len(head) == HEADER_BYTES and b"\n" not in head and b"\r" not in head:
        raise SubmissionError([f"the header line is longer than {HEADER_BYTES:,} bytes; it "
                               "should name the id column and the genres"])
    # The whole first record: this one parse names every column, for the checks and for the
    # reader of the values alike.
    try:
        with open(path, encoding="utf-8-sig", newline="") as handle:
            first = next(csv.reader(handle, skipinitialspace=True), [])
    except UnicodeDecodeError as error:
        raise SubmissionError([f"the header is not UTF-8 text ({error.reason})"]) from None
    except csv.Error as error:
        raise SubmissionError([f"the header is not valid CSV: {error}"]) from None
    return [name.strip() for name in first]


def separator_hint(header: list[str]) -> str:
    """What to do when the header is one column that semicolons or tabs split, as spreadsheets
    set to some languages save CSV; else ""."""
    marks = {";": "semicolons", "\t": "tabs"}
    found = [name for mark, name in marks.items() if len(header) == 1 and mark in header[0]]
    return f"; its columns are separated by {found[0]}: save it comma-separated" if found else ""
