"""The fast path for a well-formed wide submission: Arrow's multithreaded CSV reader.

A file is taken here only when every row holds a test id, each test id exactly once, and a number
in [0, 1] in every genre column. Anything else (a blank or stray cell, an unknown or repeated id,
a short or long row, text that is not UTF-8) returns None, and the careful reader in
``eval.submission`` names each problem: the messages are the same for every invalid file, and a
valid file gives the same values on both paths (a test draws cells to check it).
"""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
from pyarrow import csv

CELL_BYTES = 64     # a plain row's cells are far shorter; a longer file goes the chunked way


def plain_values(path: Path, header: list[str], id_column: str, genres: list[str],
                 test_ids: list[str]) -> np.ndarray | None:
    """The (n_test, n_genres) values of a plain wide submission aligned with ``test_ids``, or
    None when the file is anything but plain."""
    if path.stat().st_size > (len(test_ids) + 1) * (len(header) * CELL_BYTES):
        return None     # more than a plain file holds: memory stays bounded by the test set
    types = {name: pa.string() if name == id_column else pa.float64() for name in header}
    try:
        table = csv.read_csv(path, csv.ReadOptions(column_names=header, skip_rows=1),
                             convert_options=csv.ConvertOptions(column_types=types,
                                                                strings_can_be_null=False))
    except (pa.ArrowException, ValueError, OSError):
        return None
    if table.num_rows != len(test_ids):
        return None
    ids, known = table.column(id_column), pa.array(test_ids, pa.string())
    if pc.all(pc.equal(ids, known)).as_py():       # the sample submission's order
        positions = np.arange(len(test_ids))
    else:
        positions = pc.index_in(ids, value_set=known)
        if positions.null_count:
            return None
        positions = positions.to_numpy()
        if not np.all(np.bincount(positions, minlength=len(test_ids)) == 1):
            return None
    values = np.empty((len(test_ids), len(genres)), dtype=np.float64)
    for j, genre in enumerate(genres):
        column = table.column(genre)
        if column.null_count:
            return None
        values[positions, j] = column.to_numpy()
    if not np.all((values >= 0) & (values <= 1)):      # also false for NaN
        return None
    return values
