"""Every validation error of the harness, each with a hand-made file."""
import gzip

import numpy as np
import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from eval.submission import SubmissionError, read_submission

GENRES = ["Drama", "Comedy", "Science Fiction"]
IDS = ["tt01", "tt02", "1000003"]


def write(tmp_path, text, name="s.csv", encoding="utf-8"):
    path = tmp_path / name
    path.write_bytes(text.encode(encoding) if isinstance(text, str) else text)
    return path


def problems(tmp_path, text, **kwargs):
    with pytest.raises(SubmissionError) as error:
        read_submission(write(tmp_path, text), IDS, GENRES, **kwargs)
    return " / ".join(error.value.problems)


VALID = "id,Drama,Comedy,Science Fiction\ntt01,0.9,0.1,0\ntt02,0.2,0.8,1\n1000003,0,0,0.5\n"


def test_valid_wide_file_with_columns_in_any_order(tmp_path):
    text = "Comedy,id,Science Fiction,Drama\n0.1,tt01,0,0.9\n0.8,tt02,1,0.2\n0,1000003,0.5,0\n"
    submission = read_submission(write(tmp_path, text), IDS, GENRES)
    expected = read_submission(write(tmp_path, VALID, "v.csv"), IDS, GENRES)
    np.testing.assert_array_equal(submission.values, expected.values)
    assert submission.kind == "probabilities"


def test_bom_crlf_quotes_and_order_of_rows(tmp_path):
    text = '\ufeffid,Drama,Comedy,"Science Fiction"\r\n"1000003",0,0,0.5\r\ntt02,0.2,0.8,1\r\n' \
           'tt01,0.9,0.1,0\r\n'
    submission = read_submission(write(tmp_path, text), IDS, GENRES)
    assert submission.values[2].tolist() == [0, 0, 0.5]


def test_labels_format_with_spaces_in_names(tmp_path):
    text = 'id,genres\ntt01,Drama|Science Fiction\ntt02,\n1000003,"Comedy"\n'
    submission = read_submission(write(tmp_path, text), IDS, GENRES)
    assert submission.kind == "labels"
    assert submission.values.tolist() == [[1, 0, 1], [0, 0, 0], [0, 1, 0]]


def test_decisions_are_recognised(tmp_path):
    text = "id,Drama,Comedy,Science Fiction\ntt01,1,0,0\ntt02,0,1,1\n1000003,0,0,0\n"
    assert read_submission(write(tmp_path, text), IDS, GENRES).kind == "decisions"


@pytest.mark.parametrize("text, message", [
    ("", "the file is empty"),
    ("\n\n  \n", "the file is empty"),
    (b"\x00\x01\x02binary", "not CSV text"),
    (b"id,Drama\n\xff\xfe\xfa,1\n" + b"x" * 100, "not UTF-8"),
    ("id,Drama\n".encode("utf-16"), "it is UTF-16 text; save it as UTF-8 CSV"),
    ("id,Drama\n".encode("utf-32"), "it is UTF-32 text; save it as UTF-8 CSV"),
    (gzip.compress(VALID.encode(), mtime=0),
     "it is gzip-compressed; decompress it and submit the CSV"),
    (b"PK\x03\x04" + b"\x00" * 30, "it is a ZIP archive (an .xlsx workbook is one)"),
    ("film,Drama,Comedy,Science Fiction\ntt01,1,0,0\n",
     "no 'id' column among the header's 4 columns: film, Drama, Comedy, Science Fiction"),
    ("film\ntt01\n", "no 'id' column among the header's 1 column: film (1 in all)"),
    (VALID.replace(",", ";"), "(1 in all); its columns are separated by semicolons: save it "
                              "comma-separated"),
    (VALID.replace(",", "\t"), "its columns are separated by tabs: save it comma-separated"),
    ("id,Drama,Comedy\ntt01,1,0\n", "missing genre columns: Science Fiction"),
    ("ID,id,Drama,Comedy,Science Fiction\ntt01,tt01,1,0,0\n",     # once 'unknown genre
     "more than one id column: ID, id (2 in all); keep one"),     # columns: id'
    ("id,drama,Comedy,Science Fiction\ntt01,1,0,0\n",
     "genre names match exactly, case included: drama is not Drama (1 in all)"),
    ("id,Drama,Comedy,Science Fiction,Western\ntt01,1,0,0,1\n", "unknown genre columns: Western"),
    ("id,Drama,Drama,Comedy,Science Fiction\ntt01,1,1,0,0\n", "duplicated columns: Drama"),
    ("id,Drama,Comedy,Science Fiction\n", "header but no rows"),
    (VALID + "tt01,0,0,0\n", "duplicate ids: tt01 (1 in all)"),
    ("id,Drama,Comedy,Science Fiction\ntt01,0,0,0\n", "missing test ids: tt02, 1000003 (2 in all)"),
    (VALID + "tt99,0,0,0\n", "ids not in the test set: tt99 (1 in all)"),
    (VALID.replace("0.9", "high"), "non-numeric values: row 1 column 'Drama'"),
    (VALID.replace("0.9", "nan"), "NaN values: row 1 column 'Drama'"),
    (VALID.replace("0.9", "inf"), "infinite values: row 1 column 'Drama'"),
    (VALID.replace("0.8", "1.5"), "values outside [0, 1]: row 2 column 'Comedy'"),
    (VALID.replace("0.8", "-0.1"), "values outside [0, 1]: row 2 column 'Comedy'"),
    (VALID.replace(",0.9,", ",,"), "empty values: row 1 column 'Drama'"),
    (VALID.replace("tt02,", ","), "empty id in rows 2"),
    ("id,genres\ntt01,Drama|Westrn\ntt02,\n1000003,Comedy\n", "unknown genre names: 'Westrn' x1"),
    ("id,genres\ntt01,drama\ntt02,\n1000003,Comedy\n",
     "unknown genre names: 'drama' x1 (1 in all) / genre names match exactly, case included: "
     "drama is not Drama (1 in all)"),
    ('id,Drama,Comedy,Science Fiction\ntt01,"1,0,0\n', "not valid CSV"),
    (b"\r\x01", "no 'id' column"),
    (VALID.replace("\n", ",\n"), "columns without a name (a comma at the end of the header?): "
                                 "column 5 (1 in all)"),
    (VALID.replace("\n", ",,\n"), "columns without a name (a comma at the end of the header?): "
                                  "column 5, 6 (2 in all)"),
    ("id,Drama,Comedy,Science Fiction\ntt01,True,0,0\ntt02,True,1,1\n1000003,False,0,0\n",
     "non-numeric values: row 1 column 'Drama', row 2 column 'Drama', row 3 column 'Drama'"),
])
def test_each_problem_is_reported_precisely(tmp_path, text, message):
    assert message in problems(tmp_path, text)


def test_all_problems_are_collected_and_long_lists_are_cut(tmp_path):
    ids = [f"x{i}" for i in range(25)]
    text = "id,Drama,Comedy,Science Fiction\n" + "".join(f"{i},2,0,0\n" for i in ids)
    found = problems(tmp_path, text)
    assert "ids not in the test set: x0, x1" in found and "(25 in all)" in found
    assert "missing test ids" in found


def test_chunked_reading_sees_duplicates_across_chunks(tmp_path):
    text = VALID + "tt01,0,0,0\n"
    assert "duplicate ids: tt01" in problems(tmp_path, text, chunk_rows=1)
    assert read_submission(write(tmp_path, VALID), IDS, GENRES, chunk_rows=1).values.shape == (3, 3)


@given(data=st.binary(max_size=300))
def test_arbitrary_bytes_never_escape_as_an_exception(tmp_path, data):
    try:
        read_submission(write(tmp_path, data), IDS, GENRES)
    except SubmissionError:
        pass


cell = st.one_of(st.floats(allow_nan=True, allow_infinity=True).map(str),
                 st.sampled_from(["0", "1", "0.5", "", "nan", "x", '"', "1e-3", " 0.2"]),
                 st.text(max_size=4))


@given(header=st.lists(st.sampled_from(["id", *GENRES, "genres", "x", "Id"]), min_size=1,
                       max_size=6),
       rows=st.lists(st.tuples(st.sampled_from(IDS + ["", "zz"]), st.lists(cell, max_size=6)),
                     max_size=6),
       newline=st.sampled_from(["\n", "\r\n"]))
def test_near_valid_csvs_give_a_score_or_a_clean_error(tmp_path, header, rows, newline):
    lines = [",".join(header)] + [",".join([i, *values]) for i, values in rows]
    try:
        submission = read_submission(write(tmp_path, newline.join(lines) + newline), IDS, GENRES)
    except SubmissionError as error:
        assert error.problems and all(isinstance(p, str) and p for p in error.problems)
    else:
        assert submission.values.shape == (3, 3)
        assert np.isfinite(submission.values).all()
        assert ((submission.values >= 0) & (submission.values <= 1)).all()


@given(values=st.lists(st.lists(st.floats(0, 1), min_size=3, max_size=3), min_size=3,
                       max_size=3),
       truth=st.lists(st.lists(st.booleans(), min_size=3, max_size=3), min_size=3, max_size=3),
       threshold=st.floats(0.01, 0.99))
def test_any_valid_submission_scores_within_bounds(values, truth, threshold):
    from eval.metrics import decisions, score
    truth = np.array(truth, dtype=np.uint8)
    scores = np.array(values, dtype=np.float32)
    result = score(truth, decisions(scores, threshold), GENRES, scores)
    for name, value in result.items():
        if isinstance(value, float):
            assert 0.0 <= value <= 1.0 or name.endswith("genres_per_film"), name


def test_precision_is_kept_and_long_rows_are_one_clear_problem(competition, tmp_path):
    """float64 from parsing to metrics (0.49999999 is below 0.5); a row with 150,000 extra
    fields is reported, at a cost linear in its length."""
    from eval.submission import SubmissionError, read_submission
    ids, genres = competition.test_ids(), competition.genres()
    frame = pd.DataFrame(0.0, index=range(len(ids)), columns=genres)
    frame.iloc[0, 0] = 0.49999999
    frame.insert(0, "id", ids)
    frame.to_csv(tmp_path / "near.csv", index=False)
    values = read_submission(tmp_path / "near.csv", ids, genres).values
    assert values.dtype == np.float64 and values[0, 0] == 0.49999999 and values[0, 0] < 0.5
    header = (tmp_path / "near.csv").read_text().splitlines()[0]
    for end in ("\n", "\r\n", "\r"):          # old Mac files end lines with \r alone
        (tmp_path / "long.csv").write_bytes((header + end + "," * 1_500_000 + end).encode())
        with pytest.raises(SubmissionError) as error:
            read_submission(tmp_path / "long.csv", ids, genres)
        assert error.value.problems == [f"rows with more fields than the header's "
                                        f"{len(genres) + 1}: lines 1 (1 in all) after the header"]


def test_one_parse_of_the_header_names_every_column(competition, tmp_path):
    """Names with whitespace, non-breaking spaces or quotes, and a header past 64 KB, are read
    the same way by the checks and by the reader of the values."""
    from eval.submission import SubmissionError, read_submission
    ids, genres = competition.test_ids(), competition.genres()
    header = ["id"] + [f' "{g}"' if j % 3 == 0 else f"\u00a0{g} " for j, g in enumerate(genres)]
    lines = [",".join(header)] + [",".join([i] + ["0.5"] * len(genres)) for i in ids]
    (tmp_path / "odd.csv").write_text("\n".join(lines) + "\n")
    assert read_submission(tmp_path / "odd.csv", ids, genres).values.shape == (len(ids),
                                                                              len(genres))
    padding = ["x" * 70_000]
    wide = ",".join(["id", *genres, *padding, genres[0]])
    rows = [",".join([i] + ["0.5"] * (len(genres) + 2)) for i in ids]
    (tmp_path / "wide.csv").write_text("\n".join([wide, *rows]) + "\n")
    with pytest.raises(SubmissionError) as error:
        read_submission(tmp_path / "wide.csv", ids, genres)
    assert any("duplicated columns" in p for p in error.value.problems)


SHAPE_BYTES = 3_000_000


def test_any_shape_of_file_costs_memory_linear_in_its_size(competition, tmp_path):
    """Each pathological shape (tests/shapes.py) of 3 MB ends in a score or one clear message,
    with peak memory far below what pandas alone spent on some of them (a 3 MB row of commas:
    1.7 GB; a 3 MB header was quadratic). `make stress` runs the same shapes at 30 MB."""
    import subprocess
    import sys
    from tests.shapes import pathological_submissions
    answers = str(competition.folder / "private" / "answers.csv")
    for path in pathological_submissions(tmp_path, competition.genres(),
                                         competition.test_ids()[0], SHAPE_BYTES):
        with open(tmp_path / "stderr.txt", "w+b") as stderr:
            # Through a small launcher: a child forked from this (large) process would count
            # its memory as the child's peak.
            done = subprocess.run([sys.executable, "-c", PEAK_MEMORY, sys.executable, "-m",
                                   "eval", "score", str(path), "--answers", answers,
                                   "--bootstrap", "10"], stdout=subprocess.PIPE, stderr=stderr,
                                  text=True, timeout=300)
            stderr.seek(0)
            message = stderr.read().decode(errors="replace")
        code, peak_kb = map(int, done.stdout.split())
        assert code in (0, 2), (path.name, message[-2000:])
        assert "Traceback" not in message and len(message) < 20_000, path.name
        assert peak_kb < 450_000, (path.name, peak_kb)


# Runs argv[1:], prints its exit code and peak memory (KB); its output goes to /dev/null.
PEAK_MEMORY = ("import os, subprocess, sys; p = subprocess.Popen(sys.argv[1:], "
               "stdout=subprocess.DEVNULL); _, status, usage = os.wait4(p.pid, 0); "
               "print(os.waitstatus_to_exitcode(status), usage.ru_maxrss)")


PLAIN = ["0.5", "1", "0", "1.0", "1e-3", ".5", "0.30000000000000004", '"0.5"']
CELLS = PLAIN + [" 0.25", "0.75 ", "+0.2", "0.", "-0", "", "nan", "NaN", "inf", "1.5", "-0.1",
                 "abc", "0x1", "1_0", "1d-1"]
ID_FORMS = ["{}", " {}", "{} ", '"{}"', "x{}"]


def test_a_plain_file_takes_the_fast_path(tmp_path):
    from eval.columnar import plain_values
    from eval.csv_text import read_header
    path = write(tmp_path, VALID)
    values = plain_values(path, read_header(path), "id", GENRES, IDS)
    assert values is not None
    np.testing.assert_array_equal(values, [[0.9, 0.1, 0], [0.2, 0.8, 1], [0, 0, 0.5]])


@settings(max_examples=settings().max_examples // 5)    # two readers per example
@given(st.permutations(range(3)),
       st.lists(st.one_of(st.just("{}"), st.sampled_from(ID_FORMS)), min_size=3, max_size=3),
       st.lists(st.lists(st.one_of(st.sampled_from(PLAIN), st.sampled_from(CELLS)),
                         min_size=3, max_size=3), min_size=3, max_size=4))
def test_the_fast_reader_takes_only_files_the_careful_reader_reads_alike(order, id_forms, cells):
    """Arrow's reader (eval.columnar) may take a file only when the careful pandas reader accepts
    it with the same values; on any other file it steps aside, so every message is the careful
    reader's."""
    import tempfile
    from pathlib import Path
    from eval.columnar import plain_values
    from eval.csv_text import read_header
    from eval.submission import read_in_chunks
    ids = [IDS[i] for i in order] + [IDS[0]]            # a fourth row repeats an id
    lines = [",".join([form.format(i)] + row)
             for form, i, row in zip(id_forms, ids, cells)]
    with tempfile.TemporaryDirectory() as folder:
        path = write(Path(folder), VALID.split("\n")[0] + "\n" + "\n".join(lines) + "\n")
        header = read_header(path)
        fast = plain_values(path, header, "id", GENRES, IDS)
        try:
            careful = read_in_chunks(path, header, IDS, GENRES, "id", None).values
        except SubmissionError:
            careful = None
    if fast is not None:
        assert careful is not None
        np.testing.assert_array_equal(fast, careful)
