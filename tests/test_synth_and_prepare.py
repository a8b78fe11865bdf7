import hashlib

import pandas as pd

from kit.synth import GENRES, synthesize
from tests.conftest import run_cli


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
    code, second, _ = run_cli(capsys, "prepare", str(synthetic_dir), "--workdir", str(tmp_path),
                              "--size", "69x46")
    assert second["skipped_unchanged"] == 240 and second["newly_stored"] == 0


def test_prepare_bad_input_is_one_clear_message(tmp_path, capsys):
    code, data, err = run_cli(capsys, "prepare", str(tmp_path / "missing"),
                              "--workdir", str(tmp_path))
    assert code == 2 and data is None
    assert "does not exist" in err and "Traceback" not in err
