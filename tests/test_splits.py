import os

import numpy as np
import pandas as pd
import pytest

from kit.errors import KitError
from kit.labels import encode
from kit.splits import SplitOptions, make_competition, stratified_folds, stratified_split
from kit.synth import GENRES, draw_labels
from kit.workdir import Workdir
from tests.conftest import run_cli


def synthetic_labels(n, seed=0):
    rng = np.random.default_rng(seed)
    return encode(("|".join(draw_labels(rng)) for _ in range(n)), GENRES)


def test_stratification_keeps_every_genre_share_in_both_parts():
    labels = synthetic_labels(3000)
    rest, held = stratified_split(labels, 0.3, seed=0)
    # Iterative stratification trades exact part sizes for label balance: within 2%.
    assert abs(len(held) - 900) <= 60 and len(np.intersect1d(rest, held)) == 0
    assert len(rest) + len(held) == 3000
    overall = labels.mean(0)
    # Stated tolerance: within 1.5 percentage points of the overall share, for every genre.
    assert np.abs(labels[held].mean(0) - overall).max() < 0.015
    assert np.abs(labels[rest].mean(0) - overall).max() < 0.015


def parts(competition):
    train = competition.train_table()
    answers = pd.read_csv(competition.folder / "private" / "answers.csv", dtype=str)
    return {"train": train.loc[train.part == "train"], "valid": train.loc[train.part == "valid"],
            "public": answers.loc[answers.usage == "Public"],
            "private": answers.loc[answers.usage == "Private"]}


def test_parts_are_disjoint_cover_every_film_and_keep_genre_shares(competition):
    split = parts(competition)
    ids = [i for part in split.values() for i in part["id"]]
    assert len(ids) == len(set(ids)) == 240
    assert sorted(competition.test_ids()) == sorted(pd.concat([split["public"],
                                                               split["private"]])["id"])
    genres = competition.genres()
    overall = encode(pd.concat(split.values())["genres"], genres).mean(0)
    for name, part in split.items():
        share = encode(part["genres"], genres).mean(0)
        # Small parts (36 films): within 8 points, or one film, of the overall share.
        assert np.all(np.abs(share - overall) <= np.maximum(0.08, 1.0 / len(part))), name


def test_public_folder_holds_no_test_labels(competition):
    test_ids = set(competition.test_ids())
    answers = pd.read_csv(competition.folder / "private" / "answers.csv", dtype=str)
    for path in competition.public.rglob("*"):
        if path.suffix != ".csv":
            continue
        frame = pd.read_csv(path, dtype=str, keep_default_na=False)
        if path.name == "train.csv":
            assert not test_ids & set(frame["id"])
        else:   # test.csv and the sample submission: ids and a constant prior, nothing else
            assert "genres" not in frame.columns
            assert (frame.drop(columns="id").nunique() <= 1).all()
    assert set(answers.columns) == {"id", "genres", "usage"}


def test_same_seed_same_hashes_other_seed_new_competition(workdir):
    wd = Workdir(workdir)
    first = make_competition(wd, "synth", SplitOptions(min_support=5, seed=1))
    assert first["already_existed"]
    other = make_competition(wd, "synth", SplitOptions(min_support=5, seed=2))
    assert other["competition"] != first["competition"] and not other["already_existed"]
    from kit.files import read_json
    hashes = lambda name: read_json(wd.competitions / name / "split.json")["hashes"]
    assert hashes(first["competition"]) != hashes(other["competition"])
    # Rebuilt from scratch elsewhere, the same seed reproduces the same hashes.
    os.rename(wd.competitions / first["competition"], wd.root / "moved")
    again = make_competition(wd, "synth", SplitOptions(min_support=5, seed=1))
    assert again["competition"] == first["competition"] and not again["already_existed"]
    assert hashes(again["competition"]) == read_json(wd.root / "moved" / "split.json")["hashes"]


def test_rare_genres_are_dropped_and_named(competition):
    from kit.files import read_json
    split = read_json(competition.folder / "split.json")
    assert all(n < 5 for n in split["summary"]["dropped_genres"].values())
    assert not set(split["summary"]["dropped_genres"]) & set(competition.genres())


@pytest.mark.parametrize("argv, message", [
    (["--sample", "100000"], "larger than the 240 stored films"),
    (["--min-support", "100000"], "no genre has at least"),
    (["--sample", "3", "--min-support", "1"], "too few for the requested fractions"),
    (["--seed", "abc"], None),
    (["--test", "1.5"], "between 0 and 1"),
])
def test_bad_split_input_gives_one_clear_message(workdir, capsys, argv, message):
    if message is None:
        with pytest.raises(SystemExit) as exit_:
            run_cli(capsys, "split", "--workdir", str(workdir), *argv)
        assert exit_.value.code == 2 and "expected an integer" in capsys.readouterr().err
        return
    code, _, err = run_cli(capsys, "split", "--workdir", str(workdir), *argv)
    assert code == 2 and message in err


def test_stratified_folds_partition_the_films_and_spread_every_genre():
    rng = np.random.default_rng(3)
    labels = encode(pd.Series(["|".join(draw_labels(rng)) for _ in range(600)]), GENRES)
    folds = stratified_folds(labels, 5, seed=1)
    sizes = np.bincount(folds)
    assert len(sizes) == 5 and sizes.sum() == 600 and (abs(sizes - 120) <= 6).all()
    per_fold = np.stack([labels[folds == k].sum(0) for k in range(5)])
    assert (per_fold.max(0) - per_fold.min(0) <= 1).all()      # every genre spread evenly
    np.testing.assert_array_equal(folds, stratified_folds(labels, 5, seed=1))
    assert not np.array_equal(folds, stratified_folds(labels, 5, seed=2))
    with pytest.raises(KitError, match="cannot cut 600 films into 1 folds"):
        stratified_folds(labels, 1, seed=1)


def test_a_competition_folder_appears_whole_or_not_at_all(synthetic_dir, tmp_path, capsys):
    from kit.competition import Competition
    assert run_cli(capsys, "prepare", str(synthetic_dir), "--workdir", str(tmp_path), "--name",
                   "s", "--size", "23x15")[0] == 0
    # What a split killed mid-write leaves (its hidden building folder), and an incomplete
    # folder from an older kit that wrote in place.
    competitions = tmp_path / "competitions"
    for stray in (".s-0123456789.4242", "s-older"):
        (competitions / stray / "public").mkdir(parents=True)
        (competitions / stray / "public" / "train.csv").write_text("id,genres,part\n")
    with pytest.raises(KitError, match="no competition in"):
        Competition.find(Workdir(tmp_path))       # neither is taken for a competition
    code, result, _ = run_cli(capsys, "split", "--workdir", str(tmp_path), "--min-support", "5")
    assert code == 0
    assert Competition.find(Workdir(tmp_path)).name == result["competition"]
    assert not list(competitions.glob(f".{result['competition']}.*"))
    assert (competitions / result["competition"] / "split.json").exists()
    # A builder killed while writing this very competition leaves its folder; the next build
    # removes it (its pid is gone).
    name = result["competition"]
    os.rename(competitions / name, competitions / f".{name}.999999999")
    assert run_cli(capsys, "split", "--workdir", str(tmp_path), "--min-support", "5")[0] == 0
    assert not list(competitions.glob(f".{result['competition']}.*"))


def test_a_dataset_is_not_split_while_another_command_holds_it(synthetic_dir, tmp_path, capsys):
    # kit prepare rewrites the store a split reads, and two builds of one competition would
    # replace each other's folder: kit split waits for neither, it names the holder.
    from kit.files import exclusive_lock
    assert run_cli(capsys, "prepare", str(synthetic_dir), "--workdir", str(tmp_path), "--name",
                   "s", "--size", "23x15")[0] == 0
    with exclusive_lock(tmp_path / "datasets" / "s" / ".lock", "kit prepare of 's'"):
        code, _, output = run_cli(capsys, "split", "--workdir", str(tmp_path))
        assert code == 2
        assert "is busy: kit prepare of 's'" in " ".join(output.split())
        assert not (tmp_path / "competitions").exists() or \
            not list((tmp_path / "competitions").iterdir())
    assert run_cli(capsys, "split", "--workdir", str(tmp_path), "--min-support", "5")[0] == 0
    # A dataset never prepared is said to be so, and no folder is made for it.
    code, _, output = run_cli(capsys, "split", "--workdir", str(tmp_path), "--dataset", "nope")
    assert code == 2 and "dataset 'nope' is not prepared" in output
    assert not (tmp_path / "datasets" / "nope").exists()
