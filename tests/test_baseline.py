import json

from kit.train.config import config_file
from tests.conftest import run_cli


def test_every_shipped_baseline_is_a_valid_config():
    from kit.train.config import TrainConfig
    shipped = sorted(config_file("lenet").parent.glob("*.toml"))
    assert len(shipped) >= 10
    for path in shipped:
        assert config_file(path.stem) == path
        TrainConfig.from_file(path)
    mixup = TrainConfig.from_file(config_file("lite2-mixup-crossfit"))
    assert mixup.folds == 10 and mixup.repeats == 3 and mixup.mirror and mixup.stage_features == 3
    assert mixup.views == ("full",) and mixup.short_side == 350 and mixup.micro_weight == 0.3
    assert mixup.threshold_grid == "log" and mixup.mixup == 0.2
    repeated = TrainConfig.from_file(config_file("lite2-repeated-crossfit"))
    assert mixup.updated({"mixup": 0.0}) == repeated
    trio = TrainConfig.from_file(config_file("lite-trio-crossfit"))
    assert mixup.updated({"joined_backbones": ["efficientnet_lite1", "efficientnet_lite0"],
                          "separate_heads": True, "repeats": 2, "micro_weight": 0.5}) == trio
    best = TrainConfig.from_file(config_file("lite-trio-nomirror-crossfit"))
    assert trio.updated({"mirror": False, "micro_weight": 0.1, "patience": 4,
                         "label_smoothing": 0.02}) == best
    upright = TrainConfig.from_file(config_file("lite2-upright-crossfit"))
    assert repeated.updated({"repeats": 1, "threshold_grid": "linear"}) == upright


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
