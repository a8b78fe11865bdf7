import json

from kit.compare import compare
from kit.train.config import TrainConfig
from kit.workdir import Workdir


def test_compare_answers_the_question_with_seeds_pairs_and_the_fit_gap(workdir, tmp_path,
                                                                         capsys):
    base = TrainConfig(model="lenet", epochs=1, batch_size=16)
    result = compare(base, Workdir(workdir), ["min-per-genre", "sampler"],
                     submissions=str(tmp_path), resamples=20, seeds=2)
    rows = [f"{s}@{r}" for s in ("none", "min-per-genre", "sampler") for r in ("tuned", "0.5")]
    assert sorted(p.name for p in (tmp_path / "compare").glob("*.csv")) == sorted(
        f"{row}.csv" for row in rows)                       # none joins as the yardstick
    assert len(list((tmp_path / "compare" / "seed1").glob("*.csv"))) == 6
    study = json.loads(open(result["study"]).read())
    assert set(study["rows"]) == set(rows) and result["seeds"] == 2
    paired = study["rows"]["min-per-genre@0.5"]["macro"]["against_none"]
    low, high = paired["interval"]
    assert low <= paired["difference"] <= high and paired["verdict"] in (
        "better", "worse", "not distinguishable")
    assert study["rows"]["sampler@tuned"]["micro"]["spread"] is not None
    gap = study["fit_gap"]["sampler"]
    assert gap["repeated_copies"] > 0 and study["fit_gap"]["none"]["repeated_copies"] == 0
    assert all(0 <= gap[part]["macro"] <= 1 for part in ("train", "valid", "test"))
    assert study["fit_gap"]["min-per-genre"]["train_films"] < study["fit_gap"]["none"][
        "train_films"]
    report = open(result["report"]).read()
    assert report.index("## Verdict") < report.index("### F1 over 2 seeds") < report.index(
        "## Ranking")                   # the means the verdict quotes, before the first seed's
    mean = study["rows"]["sampler@tuned"]["macro"]["mean"]
    assert f"| sampler@tuned | {mean:.3f} ±" in report
    assert "### overfitting: macro F1 at 0.5" in report
    assert "Best macro F1 on the public test part" in report and "the overfitting gap" in report
    assert "min-per-genre@tuned.csv" in report and "audit min-per-genre" in report
    page = open(result["html"]).read()
    assert page.count("data:image/png;base64,") == 3 + 1 + 2 * 3 and "<h2>Verdict</h2>" in page
    assert f"<td class=name>sampler@tuned</td><td>{mean:.3f} ±" in page
    # The terminal (80 columns when not a terminal) shows every row name whole.
    err = capsys.readouterr().err
    assert all(f"{row}.csv" in err and row in err for row in rows)


def test_compare_trains_a_frozen_models_strategies_side_by_side(workdir, tmp_path, capfd):
    from kit.train.distributed import Distributed
    from kit.train.side_by_side import head_workers
    base = TrainConfig(model="efficientnet_lite0", frozen=True, epochs=2, batch_size=32,
                       head_hidden=32)
    capfd.readouterr()
    result = compare(base, Workdir(workdir), ["class-weight", "asymmetric-loss"],
                     submissions=str(tmp_path), prefix="heads", resamples=20, seeds=1)
    shown = capfd.readouterr().err
    study = json.loads(open(result["study"]).read())
    assert set(study["rows"]) == {f"{s}@{r}" for s in ("none", "class-weight", "asymmetric-loss")
                                  for r in ("tuned", "0.5")}
    assert set(study["fit_gap"]) == {"none", "class-weight", "asymmetric-loss"}
    run = "heads-class-weight-" + result["competition"]
    if head_workers(base, Distributed(), "auto", 3) > 1:      # 2 cores and 4 GB free, or more
        assert f"{run}: 2 epochs, best valid loss" in shown
    assert json.loads((Workdir(workdir).run(run) / "summary.json").read_text())["epochs_run"] == 2
