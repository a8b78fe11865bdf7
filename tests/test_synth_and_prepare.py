import hashlib
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest

from kit.errors import KitError
from kit.synth import GENRES, synthesize
from tests.conftest import run_cli

ROOT = Path(__file__).resolve().parent.parent


def digest(folder):
    files = sorted(p for p in folder.rglob("*") if p.is_file())
    return {str(p.relative_to(folder)): hashlib.sha256(p.read_bytes()).hexdigest() for p in files}


def test_synth_is_deterministic_for_a_seed(tmp_path):
    synthesize(tmp_path / "a", 30, seed=5, workers=2)
    synthesize(tmp_path / "b", 30, seed=5, workers=1)
    synthesize(tmp_path / "c", 30, seed=6, workers=1)
    assert digest(tmp_path / "a") == digest(tmp_path / "b")
    assert digest(tmp_path / "a")["genres.csv"] != digest(tmp_path / "c")["genres.csv"]


def test_synthetic_labels_look_like_letterboxd(synthetic_dir):
    genres = pd.read_csv(synthetic_dir / "genres.csv")
    assert set(genres["genre"]) <= set(GENRES)
    counts = genres["genre"].value_counts()
    assert counts.index[0] == "Drama" and counts["Drama"] > 2 * counts.iloc[len(counts) // 2]
    per_film = genres.groupby("id")["genre"].agg(list)
    assert per_film.map(len).between(1, 4).all()
    with_drama = per_film[per_film.map(lambda g: "Drama" in g)].map(len).mean()
    without = per_film[per_film.map(lambda g: "Drama" not in g)].map(len).mean()
    assert with_drama > without


def test_prepare_command_reports_and_resumes(synthetic_dir, tmp_path, capsys):
    code, first, _ = run_cli(capsys, "prepare", str(synthetic_dir), "--workdir", str(tmp_path),
                             "--size", "69x46")
    assert code == 0 and first["stored"] == 240 and first["layout"] == "letterboxd"
    report = tmp_path / "datasets" / synthetic_dir.name / "report"
    assert (report / "label_distribution.png").stat().st_size > 1000
    assert (report / "genres_per_film.png").stat().st_size > 1000
    code, second, _ = run_cli(capsys, "--workdir", str(tmp_path), "prepare", str(synthetic_dir),
                              "--size", "69x46")     # --workdir before the command works too
    assert second["skipped_unchanged"] == 240 and second["newly_stored"] == 0


def test_prepare_bad_input_is_one_clear_message(tmp_path, capsys):
    code, data, err = run_cli(capsys, "prepare", str(tmp_path / "missing"),
                              "--workdir", str(tmp_path))
    assert code == 2 and data is None
    assert "does not exist" in err


def kit(*argv, cwd=None, timeout=300):
    return subprocess.run([sys.executable, "-m", "kit", *argv], capture_output=True, text=True,
                          cwd=cwd, timeout=timeout, env={**os.environ, "PYTHONPATH": str(ROOT)})


def test_synth_refuses_a_folder_holding_data_unless_forced(tmp_path):
    synthesize(tmp_path, 30, seed=5, workers=1)
    with pytest.raises(KitError, match="is not empty.*--force"):
        synthesize(tmp_path, 20, seed=6, workers=1)
    synthesize(tmp_path, 20, seed=6, workers=1, force=True)
    assert len(list((tmp_path / "posters").iterdir())) == 20       # no mix of the two sets
    assert pd.read_csv(tmp_path / "genres.csv", dtype=str)["id"].nunique() == 20


def test_a_work_folder_records_paths_inside_it_relative_to_it(synthetic_dir, tmp_path):
    # Prepared from one folder with a relative --workdir, copied, the original removed, then
    # split from another current folder: the copy uses its own store.
    (tmp_path / "here").mkdir()
    done = kit("prepare", str(synthetic_dir), "--workdir", "work", "--name", "s", "--size",
               "23x15", cwd=tmp_path / "here")
    assert done.returncode == 0, done.stderr[-2000:]
    shutil.copytree(tmp_path / "here" / "work", tmp_path / "copy")
    shutil.rmtree(tmp_path / "here" / "work")
    done = kit("split", "--workdir", str(tmp_path / "copy"), "--min-support", "5", cwd="/")
    assert done.returncode == 0, done.stderr[-2000:]


def test_one_prepare_at_a_time_per_dataset(synthetic_dir, tmp_path):
    from kit.files import exclusive_lock
    with exclusive_lock(tmp_path / "datasets" / "s" / ".lock", "kit prepare of 's'"):
        done = kit("prepare", str(synthetic_dir), "--workdir", str(tmp_path), "--name", "s")
    assert done.returncode == 2
    assert f"is busy: kit prepare of 's' (pid {os.getpid()}" in done.stderr
    assert "Traceback" not in done.stderr


def test_a_data_folder_name_that_is_no_usable_name_gives_a_derived_one(synthetic_dir, tmp_path):
    hidden = tmp_path / ".holdout posters"
    shutil.copytree(synthetic_dir, hidden)
    done = kit("prepare", str(hidden), "--workdir", str(tmp_path / "w"), "--size", "23x15",
               "--json")
    assert done.returncode == 0, done.stderr[-2000:]
    assert json.loads(done.stdout)["dataset"] == "holdout-posters"


def test_an_image_size_beyond_reason_is_refused_where_it_is_parsed(tmp_path, capsys):
    with pytest.raises(SystemExit) as exit_:
        run_cli(capsys, "prepare", str(tmp_path), "--workdir", str(tmp_path), "--size",
                "100000x100000")
    assert exit_.value.code == 2
    assert "between 8 and 4096, got 100000x100000" in capsys.readouterr().err
