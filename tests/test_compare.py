from kit.compare import compare
from kit.train.config import TrainConfig
from kit.workdir import Workdir


def test_compare_trains_scores_and_reports_every_strategy(workdir, tmp_path):
    base = TrainConfig(model="lenet", epochs=1, batch_size=16)
    result = compare(base, Workdir(workdir), ["none", "min-per-genre", "asymmetric-loss"],
                     submissions=str(tmp_path), resamples=20)
    names = sorted(p.name for p in tmp_path.glob("*.csv"))
    assert names == sorted(f"compare-{s}-{v}.csv" for s in ("none", "min-per-genre",
                                                            "asymmetric-loss")
                           for v in ("tuned", "at-0.5"))
    report = open(result["report"]).read()
    assert "compare-min-per-genre-tuned.csv" in report and "audit min-per-genre" in report
    page = open(result["html"]).read()
    assert page.count("data:image/png;base64,") == 3 + 2 * 3
    assert set(result["results"]) >= {"compare-none-at-0.5.csv", "(reference) prior"}
