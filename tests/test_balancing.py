import numpy as np
import pytest

from kit import balancing
from kit.errors import KitError
from tests.test_splits import synthetic_labels


def test_min_per_genre_reaches_m_whenever_the_pool_allows():
    labels = synthetic_labels(2000)
    result = balancing.plan("min-per-genre", labels, labels[:400], seed=0, min_count=30)
    counts = labels[result.train_rows].sum(0)
    pool = labels.sum(0)
    assert np.all(counts >= np.minimum(30, pool))
    assert len(result.train_rows) < len(labels) and len(set(result.train_rows)) == len(
        result.train_rows)


def test_min_per_genre_reports_genres_the_pool_cannot_fill():
    labels = synthetic_labels(500)
    names = [f"g{j}" for j in range(labels.shape[1])]
    result = balancing.plan("min-per-genre", labels, labels[:100], min_count=60, genres=names)
    short = [j for j in range(labels.shape[1]) if labels[:, j].sum() < 60]
    assert short
    for j in short:
        assert any(note.startswith(f"train: g{j} has only {labels[:, j].sum()} films")
                   for note in result.notes)


def test_target_size_derives_m():
    labels = synthetic_labels(2000)
    result = balancing.plan("min-per-genre", labels, labels[:300], target_size=700)
    assert 500 < len(result.train_rows) <= 700


def test_class_weight_is_negatives_over_positives_capped():
    labels = np.array([[1, 0], [1, 0], [1, 1], [0, 0]] * 50, dtype=np.uint8)
    result = balancing.plan("class-weight", labels, labels, weight_cap=2.0)
    np.testing.assert_allclose(result.pos_weight, [1.0, 2.0])


def test_sampler_favours_films_of_rare_genres():
    labels = synthetic_labels(2000)
    result = balancing.plan("sampler", labels, labels)
    drawn = labels[balancing.effective_rows(result, seed=0)]
    rare = labels.sum(0).argmin()
    assert drawn[:, rare].mean() > 2 * labels[:, rare].mean()


def test_unknown_strategy_and_missing_option_are_clear():
    labels = synthetic_labels(50)
    with pytest.raises(KitError, match="choose one of none, min-per-genre"):
        balancing.plan("oversample-everything", labels, labels)
    with pytest.raises(KitError, match="--min-count M or --target-size N"):
        balancing.plan("min-per-genre", labels, labels)


def test_audit_draws_before_and_after(competition, tmp_path):
    from kit.labels import encode
    table = competition.train_table()
    train = encode(table.loc[table.part == "train", "genres"], competition.genres())
    result = balancing.plan("min-per-genre", train, train, min_count=10)
    report = balancing.audit("min-per-genre", train, competition.genres(), result, tmp_path)
    assert report["train_films_after"] < report["train_films_before"]
    assert all((tmp_path / f).stat().st_size > 1000 for f in
               ["min-per-genre-label_distribution.png", "min-per-genre-genres_per_film.png"])
