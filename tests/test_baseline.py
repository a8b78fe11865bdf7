import json

from kit.baseline import baseline_file
from tests.conftest import run_cli


def test_every_shipped_baseline_is_a_valid_config():
    from kit.train.config import TrainConfig
    for name in ("lenet", "lenet-min-per-genre", "lite0-frozen", "lite2-frozen", "lite2-crossfit"):
        TrainConfig.from_file(baseline_file(name))
    assert TrainConfig.from_file(baseline_file("lite2-crossfit")).folds == 10


def test_baseline_runs_from_data_to_score(synthetic_dir, tmp_path, capsys):
    code, summary, err = run_cli(capsys, "baseline", "--data", str(synthetic_dir), "--workdir",
                                 str(tmp_path / "work"), "--epochs", "1", "--submissions",
                                 str(tmp_path / "subs"))
    assert code == 0, err
    score = json.loads(open(summary["score"]).read())
    assert score["public"]["f1_micro"] == summary["public_f1_micro"]
    assert (tmp_path / "subs" / f"{summary['run']}.csv").exists()
    assert (tmp_path / "subs" / f"{summary['run']}.posters.png").stat().st_size > 10_000


def test_unknown_baseline_lists_the_known_ones(tmp_path, capsys):
    code, _, err = run_cli(capsys, "baseline", "--baseline", "nope", "--workdir", str(tmp_path))
    assert code == 2 and "lite0-frozen" in err and "lenet" in err
