"""The training loop: logs, resuming, seeds, mixup, balancing, configs, precision, and
the private folder never opened."""
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch

from kit.errors import KitError
from kit.predict import predict
from kit.train.checkpoint import build_model
from kit.train.config import TrainConfig
from kit.train.data import EpochSampler
from kit.train.inference import as_model_input
from kit.train.run_folder import run_identity
from kit.train.run import train
from kit.workdir import Workdir
from tests.training_setup import TINY, private_moved_away


def test_training_writes_log_curves_checkpoints_and_thresholds(workdir):
    summary = train(TrainConfig(**TINY), Workdir(workdir), "tiny")
    run = Workdir(workdir).run("tiny")
    log = pd.read_csv(run / "log.csv")
    assert list(log["epoch"]) == [1, 2] and {"train_loss", "valid_loss", "valid_f1_macro",
                                            "images_per_second"} <= set(log.columns)
    assert (run / "curves.png").stat().st_size > 1000
    assert (run / "genres.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    best = torch.load(run / "best.pt", weights_only=False)
    assert len(best["thresholds"]) == len(best["genres"])
    assert summary["epochs_run"] == 2
    with pytest.raises(KitError, match="pass --resume"):
        train(TrainConfig(**TINY), Workdir(workdir), "tiny")


def test_resumed_run_equals_an_uninterrupted_one(workdir, monkeypatch):
    import kit.train.loop as training
    config = TrainConfig(**{**TINY, "epochs": 3, "augment": True})
    train(config, Workdir(workdir), "straight")
    real_epoch = training.train_one_epoch
    calls = {"n": 0}

    def killed_in_epoch_two(*args, **kwargs):
        calls["n"] += 1
        if calls["n"] == 2:
            raise KeyboardInterrupt
        return real_epoch(*args, **kwargs)
    monkeypatch.setattr(training, "train_one_epoch", killed_in_epoch_two)
    with pytest.raises(KeyboardInterrupt):
        train(config, Workdir(workdir), "interrupted")
    monkeypatch.setattr(training, "train_one_epoch", real_epoch)
    train(config, Workdir(workdir), "interrupted", resume=True)
    load = lambda name: torch.load(Workdir(workdir).run(name) / "last.pt", weights_only=False)
    straight, resumed = load("straight"), load("interrupted")
    for key, tensor in straight["model_state"].items():
        assert torch.equal(tensor, resumed["model_state"][key]), key
    assert straight["state"]["history"][-1]["valid_loss"] == \
        resumed["state"]["history"][-1]["valid_loss"]


def test_resuming_with_other_settings_is_refused(workdir):
    train(TrainConfig(**{**TINY, "epochs": 1}), Workdir(workdir), "settings")
    with pytest.raises(KitError, match=r"other settings.*lr: 0.001 -> 0.01.*use another --name "
                                       r"\(kit compare: another --prefix\)"):
        train(TrainConfig(**{**TINY, "epochs": 1, "lr": 0.01}), Workdir(workdir), "settings",
              resume=True)


def test_resuming_on_another_competition_or_other_weights_is_refused(workdir, competition,
                                                                     tmp_path):
    from kit.splits import SplitOptions, make_competition
    wd = Workdir(workdir)
    config = TrainConfig(**{**TINY, "epochs": 1})
    train(config, wd, "first-split", competition.name)
    other = make_competition(wd, "synth", SplitOptions(min_support=5, seed=2))["competition"]
    try:
        with pytest.raises(KitError, match=f"trained on competition '{competition.name}', "
                                           f"not on '{other}'"):
            train(config, wd, "first-split", other, resume=True)
    finally:
        make_competition(wd, "synth", SplitOptions(min_support=5, seed=1))   # current again
    # The content of a --pretrained file, not its name, is part of a run's and a cache's identity.
    from kit.embeddings import Backbone, cache_dir
    from kit.train.run_folder import check_resumable
    weights = tmp_path / "weights.pt"
    weights.write_bytes(b"first weights")
    data = type("Data", (), {"genres": competition.genres(), "data_options": {}})
    identity = lambda: run_identity(config.updated({"pretrained": str(weights)}), competition,
                                    "own-weights", data)
    cached_in = lambda: cache_dir(competition.store(), Backbone("m", weights), "full", "fp32")
    before, first_cache = identity(), cached_in()
    weights.write_bytes(b"other weights")                   # same path, other bytes
    assert cached_in() != first_cache
    with pytest.raises(KitError, match="other --pretrained weights"):
        check_resumable(before, identity(), "own-weights")


def test_weights_of_another_architecture_are_a_clear_error(workdir, tmp_path):
    train(TrainConfig(**{**TINY, "epochs": 1}), Workdir(workdir), "old-version")
    run = Workdir(workdir).run("old-version")
    for name in ("best.pt", "last.pt"):      # as an older LeNet (conv, ReLU, pool) saved them
        checkpoint = torch.load(run / name, weights_only=False)
        checkpoint["model_state"] = {k.replace("features.2.", "features.3."): v
                                     for k, v in checkpoint["model_state"].items()}
        torch.save(checkpoint, run / name)
    with pytest.raises(KitError, match=r"weights of run 'old-version' do not fit the LeNet.*"
                                       r"Missing key.*features.2.weight.*another --name"):
        predict(Workdir(workdir), "old-version", tmp_path)
    with pytest.raises(KitError, match="do not fit the LeNet"):
        train(TrainConfig(**{**TINY, "epochs": 2}), Workdir(workdir), "old-version", resume=True)
    assert not list(tmp_path.iterdir())


class Planted:
    """A pickled object that, when unpickled, writes a file: what a run folder made by someone
    else could hold instead of weights."""
    def __init__(self, target: Path):
        self.target = target

    def __reduce__(self):
        return (Path.write_text, (self.target, "ran"))


def test_a_checkpoint_that_would_run_code_when_loaded_is_refused(workdir, tmp_path):
    train(TrainConfig(**{**TINY, "epochs": 1}), Workdir(workdir), "shared")
    run = Workdir(workdir).run("shared")
    planted = tmp_path / "planted.txt"
    checkpoint = torch.load(run / "best.pt", weights_only=False)
    torch.save({**checkpoint, "extra": Planted(planted)}, run / "best.pt")
    with pytest.raises(KitError, match="holds objects other than weights.*not loaded"):
        predict(Workdir(workdir), "shared", tmp_path / "out")
    assert not planted.exists()        # loaded with weights_only=False, the file was written


def test_same_seed_same_weights(workdir):
    for name in ("seed-a", "seed-b"):
        train(TrainConfig(**{**TINY, "epochs": 1}), Workdir(workdir), name)
    a, b = (torch.load(Workdir(workdir).run(n) / "best.pt", weights_only=False)["model_state"]
            for n in ("seed-a", "seed-b"))
    assert all(torch.equal(a[k], b[k]) for k in a)


def test_a_frozen_run_gets_the_same_weights_whether_or_not_it_embedded_first(workdir):
    """The first run embeds its view (loading the backbone draws random initial weights), the
    second finds the cache: the head's initial weights must not depend on which happened."""
    config = TrainConfig(model="efficientnet_lite0", frozen=True, views=("flip-middle",),
                         epochs=1, batch_size=32)
    for name in ("embeds-first", "cache-found"):
        train(config, Workdir(workdir), name)
    a, b = (torch.load(Workdir(workdir).run(n) / "best.pt", weights_only=False)["model_state"]
            for n in ("embeds-first", "cache-found"))
    assert all(torch.equal(a[k], b[k]) for k in a)


def test_mixup_mixes_each_row_and_its_labels_by_one_weight_and_a_seed_repeats_it(workdir):
    from kit.train.loop import mixed
    rows = torch.eye(64)                # row i is film i: a mixed row names its two films
    torch.manual_seed(0)
    inputs, targets = mixed(rows, rows.clone(), torch.distributions.Beta(0.2, 0.2))
    torch.testing.assert_close(inputs, targets)
    torch.testing.assert_close(inputs.sum(1), torch.ones(64))
    assert (inputs >= 0).all() and ((inputs > 0).sum(1) <= 2).all()
    assert not torch.equal(inputs, rows)
    weights = {}
    for name, mixup in (("mix-a", 0.4), ("mix-b", 0.4), ("no-mix", 0.0)):
        config = TrainConfig(model="efficientnet_lite0", frozen=True, views=("flip-middle",),
                             epochs=1, batch_size=32, head_hidden=16, mixup=mixup)
        train(config, Workdir(workdir), name)
        weights[name] = torch.load(Workdir(workdir).run(name) / "best.pt",
                                   weights_only=False)["model_state"]["layers.1.weight"]
    assert torch.equal(weights["mix-a"], weights["mix-b"])
    assert not torch.equal(weights["mix-a"], weights["no-mix"])



def test_label_smoothing_trains_towards_labels_pulled_to_one_half():
    """A network that always answers logit -10 on films without any genre: BCE is about 10 x
    the target, so 0 with the true labels and 10 x 0.05 with smoothing 0.1."""
    from torch.utils.data import DataLoader, TensorDataset

    from kit.train.loop import train_one_epoch
    network = torch.nn.Linear(4, 3)
    torch.nn.init.zeros_(network.weight)
    torch.nn.init.constant_(network.bias, -10.0)
    loader = DataLoader(TensorDataset(torch.zeros(8, 4), torch.zeros(8, 3)), batch_size=4)
    optimizer = torch.optim.SGD(network.parameters(), lr=0.0)
    floor = float(np.log1p(np.exp(-10.0)))
    losses = {s: train_one_epoch(network, torch.nn.BCEWithLogitsLoss(), optimizer, loader,
                                 "smoothing", label_smoothing=s) for s in (0.0, 0.1)}
    assert losses[0.0] == pytest.approx(floor, abs=1e-6)
    assert losses[0.1] == pytest.approx(10 * 0.05 + floor, abs=1e-6)

@pytest.mark.parametrize("balance, loss", [("class-weight", "bce"), ("sampler", "asl"),
                                           ("min-per-genre", "focal")])
def test_balancing_strategies_and_losses_train(workdir, balance, loss):
    config = TrainConfig(**{**TINY, "epochs": 1, "balance": balance, "loss": loss,
                            "min_count": 8})
    summary = train(config, Workdir(workdir), f"{balance}-{loss}")
    assert np.isfinite(summary["best_valid_loss"])


def test_class_weight_needs_bce(workdir):
    with pytest.raises(KitError, match="needs --loss bce"):
        train(TrainConfig(**{**TINY, "balance": "class-weight", "loss": "asl"}), Workdir(workdir),
              "bad-combo")
    assert not Workdir(workdir).run("bad-combo").exists()     # a refused run leaves no folder
    with pytest.raises(KitError, match="needs --loss bce"):
        train(TrainConfig(**{**TINY, "balance": "class-weight", "loss": "asl", "folds": 2}),
              Workdir(workdir), "bad-combo")
    assert not Workdir(workdir).run("bad-combo").exists()


def test_config_names_are_checked_in_files_and_options(tmp_path):
    config = tmp_path / "bad.toml"
    config.write_text('model = "lenet"\nloss = "hinge"\n')
    with pytest.raises(KitError, match="unknown loss 'hinge' in .*bad.toml; choose one of bce"):
        TrainConfig.from_file(config)
    cli = subprocess.run([sys.executable, "-m", "kit", "train", "--optimizer", "lbfgs",
                          "--workdir", str(tmp_path)], capture_output=True, text=True)
    assert cli.returncode == 2
    assert "unknown optimizer 'lbfgs' in the command line; choose one of adam, adamw, sgd" \
        in " ".join(cli.stderr.split())
    assert "Traceback" not in cli.stdout + cli.stderr
    with pytest.raises(KitError, match="unknown precision 'fp16' in options; "
                                       "choose one of auto, bf16, fp32"):
        TrainConfig().updated({"precision": "fp16"})
    for path, state in ((tmp_path / "missing.toml", "does not exist"), (tmp_path, "is a folder")):
        with pytest.raises(KitError, match=f"config file .* {state}$"):
            TrainConfig.from_file(path)


def test_the_kits_baselines_are_found_from_any_folder(tmp_path):
    """The bundle's README says `kit train --config baselines/lenet.toml`; run in the folder a
    participant joined into (not the kit's), it said the file does not exist."""
    def train(config):
        return subprocess.run([sys.executable, "-m", "kit", "train", "--config", config,
                               "--workdir", "work"], capture_output=True, text=True,
                              cwd=tmp_path)
    for config in ("baselines/lenet.toml", "lenet", "lite2-mixup-crossfit.toml"):
        done = train(config)               # found, so it goes on to look for a competition
        assert done.returncode == 2 and "no competition" in done.stderr, (config, done.stderr)
    (tmp_path / "baselines").mkdir()
    (tmp_path / "baselines" / "lenet.toml").write_text('loss = "hinge"\n')   # one's own wins
    for config in ("baselines/lenet.toml", "lenet"):
        assert "unknown loss 'hinge'" in train(config).stderr, config
    done = train("lenett")
    assert done.returncode == 2 and "config file lenett does not exist, nor is it a baseline " \
        "of the kit (lenet, " in " ".join(done.stderr.split())
    assert "does not exist" in train("elsewhere/lenet.toml").stderr


@pytest.mark.parametrize("line, message", [
    ('lr = "fast"', "lr in .*bad.toml must be a finite number, not 'fast'"),
    ("epochs = 0", "epochs in .*bad.toml must be between 1 and 100000"),
    ("frozen = 1", "frozen in .*bad.toml must be true or false"),
    ('views = "full"', "views in .*bad.toml must be a non-empty list"),
    ('joined_backbones = ["lenet"]', "unknown joined_backbones .*bad.toml; choose one of"),
    ("dropout = -0.5", "dropout in .*bad.toml must be between"),
    ("weight_cap = -1", "weight_cap in .*bad.toml must be between"),
    ("mirror = true",
     "frozen-mode options without frozen = true: mirror; set frozen = true .*bad.toml"),
    ("mixup = 0.2", "frozen-mode options without frozen = true: mixup; set frozen = true"),
    ("frozen = true\nmixup = 1e-6", "mixup must be 0 .off. or at least 0.01, not 1e-06"),
    ("frozen = true\nshort_side = 5", "short_side must be 0 .* or at least 32, not 5"),
    ("frozen = true", "frozen mode embeds the posters with a pretrained backbone and lenet "
     "has no weights here"),
    ('joined_backbones = ["efficientnet_lite0"]\nmirror = true',
     "without frozen = true: joined_backbones, mirror; .* leave them out .*bad.toml")])
def test_config_values_are_checked_once_where_they_are_read(tmp_path, line, message):
    config = tmp_path / "bad.toml"
    config.write_text(f'model = "lenet"\n{line}\n')
    with pytest.raises(KitError, match=message):
        TrainConfig.from_file(config)
    cli = subprocess.run([sys.executable, "-m", "kit", "train", "--config", str(config),
                          "--workdir", str(tmp_path)], capture_output=True, text=True)
    assert cli.returncode == 2 and "Traceback" not in cli.stderr


def test_every_config_field_is_an_option_and_round_trips_through_toml(tmp_path):
    import argparse
    from dataclasses import fields
    from kit.losses import LOSSES
    from kit.train.config import OPTIMIZERS
    from kit.train.config_options import add_config_arguments, given_options
    from kit.train.loop import OPTIMIZERS as optimiser_classes
    parser = argparse.ArgumentParser()
    add_config_arguments(parser)
    args = parser.parse_args(["--lr", "0.01", "--no-tune-thresholds", "--strategy", "sampler",
                              "--views", "full", "flip", "--pretrained", "w.pth"])
    assert given_options(args) == {"lr": 0.01, "tune_thresholds": False, "balance": "sampler",
                                   "views": ["full", "flip"], "pretrained": "w.pth"}
    assert {a.dest for a in parser._actions} >= {f.name for f in fields(TrainConfig)}
    config = TrainConfig().updated(given_options(args))
    (tmp_path / "c.toml").write_text(config.to_toml())
    assert TrainConfig.from_file(tmp_path / "c.toml") == config
    assert set(optimiser_classes) == set(OPTIMIZERS) and LOSSES == ("bce", "asl", "focal")


def test_image_models_train_under_bf16_autocast_unless_fp32_is_asked(workdir):
    weights = {}
    for precision in ("bf16", "fp32"):
        config = TrainConfig(**{**TINY, "epochs": 1, "precision": precision})
        train(config, Workdir(workdir), f"precision-{precision}")
        weights[precision] = torch.load(Workdir(workdir).run(f"precision-{precision}") / "best.pt",
                                        weights_only=False)["model_state"]["features.0.weight"]
    assert not torch.allclose(weights["bf16"], weights["fp32"], atol=1e-6)
    assert TrainConfig(precision="bf16").bf16_training
    assert not TrainConfig(precision="bf16", frozen=True,                # embeddings only
                           model="efficientnet_lite0").bf16_training


def test_posters_reach_the_network_channels_last_and_in_the_autocast_dtype():
    posters = torch.randint(0, 256, (2, 3, 345, 230), dtype=torch.uint8)
    batch = as_model_input(posters)
    assert batch is posters                                  # the model normalises uint8 itself
    model = build_model(TrainConfig(model="lenet"), 4, {"input_size": [345, 230],
                                                       "mean": [0.5] * 3, "std": [0.25] * 3})
    pixels = model.preprocess(batch)
    assert pixels.dtype == torch.float32 and pixels.is_contiguous(memory_format=torch.channels_last)
    torch.testing.assert_close(pixels, (posters.float() / 255 - 0.5) / 0.25)
    assert torch.equal(batch, posters)                       # and leaves the batch as it was
    with pytest.raises(TypeError, match="models take uint8 posters"):
        model.preprocess(posters.float() / 255)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        pixels = model.preprocess(batch)
    assert pixels.dtype == torch.bfloat16
    assert pixels.is_contiguous(memory_format=torch.channels_last)
    convolutions = [m.weight for m in model.modules() if isinstance(m, torch.nn.Conv2d)]
    assert convolutions and all(w.is_contiguous(memory_format=torch.channels_last)
                                for w in convolutions)


def test_command_line_starts_without_importing_torch():
    probe = ("import sys; from kit.cli import build_parser; build_parser(); "
             "print(sorted(m for m in ('torch', 'timm', 'torchvision') if m in sys.modules))")
    loaded = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True,
                            check=True).stdout.strip()
    assert loaded == "[]"


def test_head_workers_train_without_importing_timm_or_torchvision():
    """A head worker imports the training loop, not the libraries of the losses and backbones
    it does not use (2.5 s for each of the processes a cross-fitted run starts)."""
    probe = ("import sys; import kit.train.side_by_side; "
             "print(sorted(m for m in ('timm', 'torchvision') if m in sys.modules))")
    loaded = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True,
                            check=True).stdout.strip()
    assert loaded == "[]"


def test_train_and_predict_never_open_the_private_folder(workdir, competition, tmp_path):
    with private_moved_away(competition, tmp_path):
        train(TrainConfig(**{**TINY, "epochs": 1}), Workdir(workdir), "no-peeking")
        result = predict(Workdir(workdir), "no-peeking", tmp_path / "subs")
    frame = pd.read_csv(result["submission"], dtype={"id": str})
    assert sorted(frame["id"]) == sorted(competition.test_ids())
    assert list(frame.columns[1:]) == competition.genres()


def test_prediction_scores_in_the_harness(workdir, competition, tmp_path):
    from eval.answers import load_answers
    from eval.scoring import score_submission
    train(TrainConfig(**{**TINY, "epochs": 1}), Workdir(workdir), "to-score")
    result = predict(Workdir(workdir), "to-score", tmp_path)
    scored = score_submission(result["submission"],
                              load_answers(competition.folder / "private" / "answers.csv"),
                              resamples=20)
    assert 0 <= scored["public"]["f1_macro"] <= 1 and scored["kind"] == "probabilities"


def test_epoch_sampler_splits_one_seeded_order_between_processes():
    whole = list(EpochSampler(10, seed=3))
    halves = [list(EpochSampler(10, seed=3, rank=r, world=2)) for r in (0, 1)]
    assert sorted(halves[0] + halves[1]) == sorted(whole) and len(halves[0]) == 5
    weighted = list(EpochSampler(1000, seed=1, weights=[0.0] * 999 + [1.0]))
    assert set(weighted) == {999}


def test_the_readme_names_every_training_option():
    from dataclasses import fields
    readme = (Path(__file__).resolve().parents[1] / "README.md").read_text()
    missing = [f.name for f in fields(TrainConfig)
               if f"`--{f.name.replace('_', '-')}`" not in readme]
    assert not missing, f"README lists no option for {missing}"
