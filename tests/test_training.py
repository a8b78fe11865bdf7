import contextlib
import json
import os
import shutil
import socket
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch
from hypothesis import given, settings, strategies as st

from kit.errors import KitError
from kit.competition import Competition
from kit.predict import predict
from kit.train.checkpoint import build_model
from kit.train.config import TrainConfig, resolve_precision
from kit.train.data import EpochSampler
from kit.train.inference import as_model_input
from kit.train.loop import run_identity
from kit.train.run import train
from kit.train.thresholds import calibrate
from kit.workdir import Workdir

TINY = dict(model="lenet", epochs=2, batch_size=16, patience=5)


def test_training_writes_log_curves_checkpoints_and_thresholds(workdir):
    summary = train(TrainConfig(**TINY), Workdir(workdir), "tiny")
    run = Workdir(workdir).run("tiny")
    log = pd.read_csv(run / "log.csv")
    assert list(log["epoch"]) == [1, 2] and {"train_loss", "valid_loss", "valid_f1_macro",
                                            "images_per_second"} <= set(log.columns)
    assert (run / "curves.png").stat().st_size > 1000
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
    from kit.train.loop import check_resumable
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
    inputs, targets = mixed(rows, rows.clone(), 0.2)
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
    with pytest.raises(KitError, match="unknown precision 'fp16' in options; choose one of auto, bf16, fp32"):
        TrainConfig().updated({"precision": "fp16"})


@pytest.mark.parametrize("line, message", [
    ('lr = "fast"', "lr in .*bad.toml must be a finite number, not 'fast'"),
    ("epochs = 0", "epochs in .*bad.toml must be between 1 and 100000"),
    ("frozen = 1", "frozen in .*bad.toml must be true or false"),
    ('views = "full"', "views in .*bad.toml must be a non-empty list"),
    ('joined_backbones = ["lenet"]', "unknown joined_backbones .*bad.toml; choose one of"),
    ("dropout = -0.5", "dropout in .*bad.toml must be between"),
    ("weight_cap = -1", "weight_cap in .*bad.toml must be between"),
    ("mirror = true", "frozen-mode options without frozen = true: mirror; set frozen = true .*bad.toml"),
    ("mixup = 0.2", "frozen-mode options without frozen = true: mixup; set frozen = true"),
    ("frozen = true\nmixup = 1e-6", "mixup must be 0 .off. or at least 0.01, not 1e-06"),
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
    from kit.train.config import OPTIMIZERS, add_config_arguments, given_options
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
    assert not TrainConfig(precision="bf16", frozen=True).bf16_training   # embeddings only


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


@contextlib.contextmanager
def private_moved_away(competition, tmp_path):
    """The competition's private/ folder elsewhere for the block: what runs in it never needs
    the answer key (the frozen-embedding and cross-fitted tests run inside it too)."""
    private, hidden = competition.folder / "private", tmp_path / "private-away"
    shutil.move(private, hidden)
    try:
        yield
    finally:
        shutil.move(hidden, private)


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


def test_calibration_maps_each_threshold_to_one_half_and_keeps_order():
    probabilities = np.array([[0.1, 0.2], [0.3, 0.9], [0.2, 0.5]])
    thresholds = np.array([0.2, 0.6])
    calibrated = calibrate(probabilities, thresholds)
    assert ((calibrated >= 0.5) == (probabilities >= thresholds)).all()
    for j in range(2):
        assert (np.argsort(calibrated[:, j]) == np.argsort(probabilities[:, j])).all()


@settings(max_examples=settings().max_examples // 10, deadline=None)
@given(seed=st.integers(0, 2**31 - 1), weight=st.floats(0.05, 5),
       grid=st.sampled_from(["linear", "log"]), scale=st.sampled_from([1.0, 0.05]))
def test_thresholds_tuned_for_micro_too_never_score_worse_on_that_aim(seed, weight, grid, scale):
    """Per-genre tuning gives each genre its best F1 on the grid (so the best macro F1); with a
    micro weight, macro + weight x micro of the films tuned on, as the harness's metric counts
    it, is at least that of the per-genre thresholds, and no other grid value for one genre
    raises it. ``scale`` 0.05 gives rare genres' small probabilities."""
    from eval.metrics import f1_micro_macro
    from kit.train.thresholds import THRESHOLD_GRIDS, tune_thresholds
    values = THRESHOLD_GRIDS[grid]
    rng = np.random.default_rng(seed)
    labels = rng.random((60, 5)) < rng.uniform(0.05, 0.6, 5)
    probabilities = np.clip(labels * rng.uniform(0, 0.5) + rng.random((60, 5)) * 0.7, 0, 1)
    probabilities *= scale
    own = tune_thresholds(probabilities, labels, grid=grid)
    for genre in range(5):
        best = max(f1_micro_macro(labels[:, [genre]], probabilities[:, [genre]] >= t)[0]
                   for t in values)
        mine = f1_micro_macro(labels[:, [genre]], probabilities[:, [genre]] >= own[genre])[0]
        assert mine == best or not labels[:, genre].any()
    joint = tune_thresholds(probabilities, labels, weight, grid)

    def aim(thresholds):
        micro, macro = f1_micro_macro(labels, probabilities >= thresholds)
        return macro + weight * micro
    assert aim(joint) >= aim(own) - 1e-12
    for genre in range(5):
        for value in values:
            moved = joint.copy()
            moved[genre] = value
            assert aim(moved) <= aim(joint) + 1e-12


def test_epoch_sampler_splits_one_seeded_order_between_processes():
    whole = list(EpochSampler(10, seed=3))
    halves = [list(EpochSampler(10, seed=3, rank=r, world=2)) for r in (0, 1)]
    assert sorted(halves[0] + halves[1]) == sorted(whole) and len(halves[0]) == 5
    weighted = list(EpochSampler(1000, seed=1, weights=[0.0] * 999 + [1.0]))
    assert set(weighted) == {999}


def test_frozen_backbone_head_and_resumable_embedding_cache(workdir, competition, tmp_path):
    from kit.embeddings import Backbone, embed_store
    config = TrainConfig(model="efficientnet_lite0", frozen=True, views=("full", "top"),
                         epochs=2, batch_size=32, lr=0.01)
    with private_moved_away(competition, tmp_path):       # embedding included
        summary = train(config, Workdir(workdir), "frozen")
        predict(Workdir(workdir), "frozen", tmp_path / "subs")
    assert summary["epochs_run"] == 2
    store = Competition.find(Workdir(workdir)).store()
    cache = embed_store(store, Backbone("efficientnet_lite0"), ("full", "top"))
    before = cache.features(np.arange(len(store)))
    assert before.shape == (len(store), 2 * 1280)
    first = sorted(cache.dirs[1].glob("emb-*.npy"))[0]
    first.unlink()
    first.with_suffix(".json").unlink()
    again = embed_store(store, Backbone("efficientnet_lite0"), ("full", "top")).features(
        np.arange(len(store)))
    np.testing.assert_array_equal(before, again)


def test_joined_backbones_put_their_embeddings_side_by_side(workdir, competition, tmp_path):
    """A frozen head on Lite0 and Lite1 features of the same view: one input of both widths,
    trained and predicted like any run; elsewhere the option is refused."""
    config = TrainConfig(model="efficientnet_lite0", frozen=True, epochs=1, batch_size=32,
                         joined_backbones=("efficientnet_lite1",))
    assert TrainConfig.from_file(write_config(tmp_path, config)) == config
    with private_moved_away(competition, tmp_path):
        train(config, Workdir(workdir), "joined")
        submission = predict(Workdir(workdir), "joined", tmp_path / "subs")["submission"]
    best = torch.load(Workdir(workdir).run("joined") / "best.pt", weights_only=False)
    assert best["data_options"]["in_features"] == 1280 + 1280
    assert len(pd.read_csv(submission)) == len(Competition.find(Workdir(workdir)).test_ids())
    with pytest.raises(KitError, match="without frozen = true: joined_backbones;"):
        TrainConfig(**TINY).updated({"joined_backbones": ["efficientnet_lite1"]})


def test_mirror_trains_on_a_film_or_its_mirror_and_predicts_the_mean_of_both(
        workdir, competition, tmp_path):
    """The mirrored views are embedded beside the views; the head's input per film is the film
    then its mirror image, and its prediction is the mean of both, whichever comes first."""
    from kit.embeddings import mirror_view, view
    images = torch.arange(2 * 3 * 12 * 8, dtype=torch.float32).reshape(2, 3, 12, 8)
    for name in ("full", "top", "middle", "bottom"):
        assert torch.equal(view(images, mirror_view(name)), view(images, name).flip(-1))
        assert mirror_view(mirror_view(name)) == name
    config = TrainConfig(model="efficientnet_lite0", frozen=True, epochs=1, batch_size=32,
                         views=("full", "top"), mirror=True, head_hidden=16)
    with private_moved_away(competition, tmp_path):
        train(config, Workdir(workdir), "mirror")
        predict(Workdir(workdir), "mirror", tmp_path / "subs")
    store = Competition.find(Workdir(workdir)).store()
    cached = {folder.name for folder in (store.dir / "embeddings").iterdir()}
    assert {f"efficientnet_lite0-{v}-{resolve_precision('auto')}"
            for v in ("flip", "flip-top", "full", "top")} <= cached
    best = torch.load(Workdir(workdir).run("mirror") / "best.pt", weights_only=False)
    assert best["data_options"]["in_features"] == 2 * 1280
    model = build_model(config, len(best["genres"]), best["data_options"]).eval()
    model.load_state_dict(best["model_state"])
    film, mirrored = torch.randn(4, 2 * 1280), torch.randn(4, 2 * 1280)
    both = model(torch.cat([film, mirrored], 1))
    torch.testing.assert_close(both, model(torch.cat([mirrored, film], 1)))
    model.mirror = False
    alone = [model(half).sigmoid() for half in (film, mirrored)]
    torch.testing.assert_close(both.sigmoid(), (alone[0] + alone[1]) / 2)


def write_config(folder, config: TrainConfig):
    path = folder / "joined.toml"
    path.write_text(config.to_toml())
    return path


def test_random_search_logs_trials_and_saves_a_reusable_best_config(workdir):
    from kit.train.search import random_search
    result = random_search(TrainConfig(**TINY), Workdir(workdir), "s", trials=2, epochs=1)
    trials = pd.read_csv(Workdir(workdir).root / "searches" / "s" / "trials.csv")
    assert len(trials) == 2 and trials["dropout"].between(0.1, 0.5).all()
    best = TrainConfig.from_file(result["best_config"])
    assert best.lr == pytest.approx(result["best_lr"]) and best.dropout == result["best_dropout"]


def test_search_draws_the_chosen_space_and_reports_the_spread_over_seeds(workdir):
    from kit.train.search import random_search
    result = random_search(TrainConfig(**TINY), Workdir(workdir), "wide", trials=2, epochs=1,
                           space=("weight_decay", "batch_size"), seeds=2)
    trials = pd.read_csv(Workdir(workdir).root / "searches" / "wide" / "trials.csv")
    assert (trials["seeds"] == 2).all() and (trials["f1_macro_sd"] >= 0).all()
    assert trials["runs"].str.split().map(len).eq(2).all()
    runs = {path.name for path in Workdir(workdir).runs.iterdir()}
    assert {"wide-trial00", "wide-trial00-seed1"} <= runs
    best = TrainConfig.from_file(result["best_config"])
    assert best.weight_decay == result["best_weight_decay"]
    assert best.batch_size == result["best_batch_size"] and best.lr == TrainConfig(**TINY).lr
    with pytest.raises(KitError, match="frozen"):
        random_search(TrainConfig(**TINY), Workdir(workdir), "h", 1, 1, space=("head_hidden",))



def test_a_search_of_frozen_heads_trains_them_side_by_side_with_the_weights_of_one_by_one(
        workdir, capfd):
    """Every trial and seed of a frozen head on one split trains at once, one worker each; a
    head gets the weights it gets when trained alone in this process (``inline``), bit for bit."""
    from kit.train.checkpoint import config_of
    from kit.train.distributed import Distributed
    from kit.train.search import random_search
    from kit.train.side_by_side import head_workers
    config = TrainConfig(model="efficientnet_lite0", frozen=True, batch_size=32, patience=5,
                         head_hidden=32)
    capfd.readouterr()
    result = random_search(config, Workdir(workdir), "heads", trials=2, epochs=2, seeds=2,
                           space=("lr", "dropout"))
    shown = capfd.readouterr().err
    trials = pd.read_csv(Workdir(workdir).root / "searches" / "heads" / "trials.csv")
    assert len(trials) == 2 and (trials["seeds"] == 2).all()
    assert result["best_valid_loss"] == trials["valid_loss_mean"].min()
    if head_workers(config, Distributed(), "auto", 4) > 1:     # 2 cores and 4 GB free, or more
        assert "heads-trial01-seed1: 2 epochs, best valid loss" in shown
    trial = Workdir(workdir).run("heads-trial01-seed1")
    searched = torch.load(trial / "best.pt", weights_only=False)
    alone = train(config_of(searched, "the trial"), Workdir(workdir), "alone",
                  scheduler="inline")
    summary = json.loads((trial / "summary.json").read_text())
    assert alone["best_valid_loss"] == summary["best_valid_loss"]
    kept = torch.load(Workdir(workdir).run("alone") / "best.pt", weights_only=False)
    assert kept["epoch"] == searched["epoch"]
    for key, tensor in searched["model_state"].items():
        assert torch.equal(tensor, kept["model_state"][key]), key


TORCHRUN_COMMANDS = {
    "train": ["train", "--name", "ddp-train", "--epochs", "1", "--balance", "sampler"],
    "cross-fit": ["train", "--name", "ddp-cross-fit", "--epochs", "1", "--folds", "2"],
    "search": ["search", "--name", "ddp-search", "--trials", "2", "--trial-epochs", "1"],
    "compare": ["compare", "--prefix", "ddp-compare", "--strategies", "none", "sampler",
                "--epochs", "1", "--bootstrap", "20", "--submissions", "{tmp}"],
}


@pytest.mark.parametrize("command", TORCHRUN_COMMANDS)
def test_torchrun_trains_data_parallel_on_two_processes(workdir, tmp_path, command):
    with socket.socket() as probe:          # a free port, not a fixed one another run may hold
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    argv = [a.format(tmp=tmp_path) for a in TORCHRUN_COMMANDS[command]]
    launch = [sys.executable, "-m", "torch.distributed.run", "--nproc_per_node=2",
              f"--master_port={port}", "-m", "kit", *argv, "--workdir", str(workdir),
              "--batch-size", "8"]
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    finished = subprocess.run(launch, capture_output=True, text=True, timeout=300, env=env)
    assert finished.returncode == 0, finished.stderr[-2000:]
    runs = Workdir(workdir).runs
    logs = sorted(runs.glob(f"ddp-{command}*/**/log.csv"))
    assert len(logs) == {"train": 1, "cross-fit": 2, "search": 2, "compare": 2}[command]
    assert all(len(pd.read_csv(log)) == 1 for log in logs)
    if command == "cross-fit":
        ensemble = runs / "ddp-cross-fit"
        assert json.loads((ensemble / "summary.json").read_text())["folds"] == 2
        assert len(torch.load(ensemble / "best.pt", weights_only=False)["thresholds"]) > 0
    if command == "search":
        trials = Workdir(workdir).root / "searches" / "ddp-search" / "trials.csv"
        assert len(pd.read_csv(trials)) == 2
    if command == "compare":
        assert len(list((tmp_path / "ddp-compare").glob("*@*.csv"))) == 4   # 2 strategies x 2
        assert not (tmp_path / "ddp-compare" / "seed1").exists()      # one seed under torchrun


def test_cross_fitted_run_ensembles_its_folds_with_out_of_fold_thresholds(workdir, competition,
                                                                         tmp_path):
    from kit.embeddings import Backbone, embed_store
    from kit.models.ensemble import Ensemble
    config = TrainConfig(model="efficientnet_lite0", frozen=True, epochs=3, batch_size=32,
                         lr=0.01, folds=3)
    with private_moved_away(competition, tmp_path):
        summary = train(config, Workdir(workdir), "xfit")
        predict(Workdir(workdir), "xfit", tmp_path / "away")
    competition = Competition.find(Workdir(workdir))
    assert summary["folds"] == 3 and summary["out_of_fold_films"] == len(
        competition.train_table())
    run = Workdir(workdir).run("xfit")
    members = [torch.load(run / f"fold-{i}" / "best.pt", weights_only=False) for i in (1, 2, 3)]
    assert sum(len(m["valid"]["labels"]) for m in members) == summary["out_of_fold_films"]
    ensemble = torch.load(run / "best.pt", weights_only=False)
    assert len(ensemble["thresholds"]) == len(ensemble["genres"])
    np.testing.assert_array_equal(ensemble["valid"]["labels"],
                                  np.concatenate([m["valid"]["labels"] for m in members]))
    study = [sys.executable, "-m", "kit", "thresholds", "--micro-weight", "0", "1", "--parts",
             "3", "--json", "--workdir", str(workdir), "--run"]
    result = json.loads(subprocess.run(study + ["xfit"], capture_output=True, text=True,
                                       check=True).stdout.splitlines()[-1])
    assert result["films"] == summary["out_of_fold_films"]
    assert [row["micro_weight"] for row in result["results"]] == [0, 1]
    assert all(0 <= row["f1_micro"] <= 1 and 0 <= row["f1_macro"] <= 1
               for row in result["results"])
    assert Path(result["plot"]).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    missing = subprocess.run(study + ["nope"], capture_output=True, text=True)
    assert missing.returncode == 2 and "run nope has no best.pt" in missing.stderr
    too_many = subprocess.run(study + ["xfit", "--parts", "100"], capture_output=True, text=True)
    assert too_many.returncode == 2 and "too few to cut into 100 parts" in too_many.stderr
    earlier = Workdir(workdir).run("xfit-earlier")      # as kit versions before "valid" wrote it
    earlier.mkdir(parents=True, exist_ok=True)
    torch.save({k: v for k, v in ensemble.items() if k != "valid"}, earlier / "best.pt")
    old = subprocess.run(study + ["xfit-earlier"], capture_output=True, text=True)
    assert old.returncode == 2 and "earlier kit version" in old.stderr

    predict(Workdir(workdir), "xfit", tmp_path, raw=True)
    submitted = pd.read_csv(tmp_path / "xfit.csv").drop(columns="id").to_numpy()
    store = competition.store()
    cache = embed_store(store, Backbone("efficientnet_lite0"), ("full",))
    features = torch.from_numpy(cache.features(
        store.positions(competition.test_ids()))).float()
    expected = []
    for member in members:
        model = build_model(config, len(member["genres"]), member["data_options"]).eval()
        model.load_state_dict(member["model_state"])
        expected.append(torch.sigmoid(model(features)).detach().numpy())
    assert isinstance(build_model(config, 3, ensemble["data_options"]), Ensemble)
    np.testing.assert_allclose(submitted, np.mean(expected, axis=0), atol=1e-5)   # float32 noise

    from dataclasses import replace
    from kit.train.thresholds import tune_thresholds
    assert train(replace(config, micro_weight=1.0), Workdir(workdir), "xfit",
                 resume=True)["folds"] == 3                    # re-tunes, trains nothing
    retuned = torch.load(run / "best.pt", weights_only=False)
    assert retuned["model_state"].keys() == ensemble["model_state"].keys() and all(
        torch.equal(retuned["model_state"][k], ensemble["model_state"][k])
        for k in ensemble["model_state"])
    np.testing.assert_array_equal(retuned["thresholds"], tune_thresholds(
        retuned["valid"]["probabilities"], retuned["valid"]["labels"], 1.0))
    with pytest.raises(KitError, match="'xfit/fold-1' exists"):
        train(config, Workdir(workdir), "xfit")


def test_repeated_cross_fitting_averages_each_films_out_of_fold_predictions(workdir,
                                                                           competition, tmp_path,
                                                                           capfd):
    """--repeats 2: a second cross-fitting with seed + 1 (other folds, other weights); each
    film's out-of-fold probability is the mean of its two models that did not train on it, and
    the run predicts the mean of all four models; a resume with the log grid only re-tunes."""
    from dataclasses import replace
    from kit.train.crossfit import binary_cross_entropy
    from kit.train.side_by_side import head_workers
    from kit.train.distributed import Distributed
    from kit.train.thresholds import tune_thresholds
    config = TrainConfig(model="efficientnet_lite0", frozen=True, epochs=2, batch_size=32,
                         lr=0.01, folds=2, repeats=2, seed=4, head_hidden=32)
    capfd.readouterr()
    with private_moved_away(competition, tmp_path):
        summary = train(config, Workdir(workdir), "twice")
    side_by_side = capfd.readouterr().err
    films = len(Competition.find(Workdir(workdir)).train_table())
    run = Workdir(workdir).run("twice")
    folders = ["fold-1", "fold-2", "repeat-2/fold-1", "repeat-2/fold-2"]
    members = [torch.load(run / f / "best.pt", weights_only=False) for f in folders]
    assert [m["config"]["seed"] for m in members] == [4, 4, 5, 5]
    first, second = ({i: p for m in pair for i, p in zip(m["valid"]["ids"],
                                                         m["valid"]["probabilities"])}
                     for pair in (members[:2], members[2:]))
    assert len(first) == len(second) == films == summary["out_of_fold_films"]
    assert not np.array_equal(members[0]["valid"]["ids"], members[2]["valid"]["ids"])
    ensemble = torch.load(run / "best.pt", weights_only=False)
    order = [i for m in members[:2] for i in m["valid"]["ids"]]
    np.testing.assert_allclose(ensemble["valid"]["probabilities"],
                               [(first[i] + second[i]) / 2 for i in order], atol=1e-6)
    assert len(ensemble["data_options"]["members"]) == 4
    assert summary["out_of_fold_loss"] == round(binary_cross_entropy(
        ensemble["valid"]["probabilities"], ensemble["valid"]["labels"]), 5)

    retuned = train(replace(config, threshold_grid="log"), Workdir(workdir), "twice",
                    resume=True)
    assert retuned["epochs_run"] == summary["epochs_run"]               # trained nothing
    thresholds = torch.load(run / "best.pt", weights_only=False)["thresholds"]
    np.testing.assert_array_equal(thresholds, tune_thresholds(
        ensemble["valid"]["probabilities"], ensemble["valid"]["labels"], grid="log"))
    with pytest.raises(KitError, match="repeats repeats a cross-fitting"):
        TrainConfig(repeats=2)

    # The four heads trained side by side (one worker process and thread each, the default)
    # are those trained one after the other in this process (``inline``), bit for bit.
    with private_moved_away(competition, tmp_path):
        in_turn = train(config, Workdir(workdir), "twice-in-turn", scheduler="inline")
    one_by_one = capfd.readouterr().err
    assert "twice-in-turn: fold 1 of 2, repeat 1 of 2" in one_by_one
    if head_workers(config, Distributed(), "auto", 4) > 1:     # 2 cores and 4 GB free, or more
        assert "twice/repeat-2/fold-2: 2 epochs, best valid loss" in side_by_side
        assert "twice: fold 1 of 2" not in side_by_side
    assert in_turn["out_of_fold_loss"] == summary["out_of_fold_loss"]
    for folder, member in zip(folders, members):
        alone = torch.load(Workdir(workdir).run("twice-in-turn") / folder / "best.pt",
                           weights_only=False)
        assert alone["epoch"] == member["epoch"]
        for key, tensor in member["model_state"].items():
            assert torch.equal(tensor, alone["model_state"][key]), (folder, key)


def test_only_frozen_heads_train_side_by_side_and_no_more_than_cores_and_memory_hold():
    import psutil
    from kit.train.side_by_side import HEAD_WORKER_BYTES, head_workers
    from kit.train.distributed import Distributed
    heads = TrainConfig(model="efficientnet_lite0", frozen=True, folds=10, repeats=3,
                        head_hidden=64)
    alone = Distributed()
    side_by_side = head_workers(heads, alone, "auto", 30)
    assert side_by_side == max(1, min(os.cpu_count(), 30,
                                      psutil.virtual_memory().available // HEAD_WORKER_BYTES))
    assert head_workers(heads, alone, "auto", 1) == 1
    assert head_workers(heads, alone, "inline", 30) == 1
    assert head_workers(heads, Distributed(0, 2), "auto", 30) == 1            # torchrun
    assert head_workers(TrainConfig(folds=10), alone, "auto", 30) == 1         # an image model
    assert head_workers(heads.updated({"tuned_stages": 1}), alone, "auto", 30) == 1
    assert head_workers(heads.updated({"head_hidden": 0}), alone, "auto", 30) == 1  # logistic


def test_the_log_grid_reaches_a_rare_genres_small_probabilities():
    """A genre on 2% of films whose model gives its films 0.02 to 0.04 and the others less:
    every threshold of the linear grid decides no film (F1 0), the log grid separates them."""
    from eval.metrics import f1_micro_macro
    from kit.train.thresholds import tune_thresholds
    labels = np.zeros((200, 1), dtype=bool)
    labels[:4] = True
    probabilities = np.where(labels, 0.03, 0.005) + np.linspace(0, 0.01, 200)[:, None]
    for grid, f1 in (("linear", 0.0), ("log", 1.0)):
        decided = probabilities >= tune_thresholds(probabilities, labels, grid=grid)
        assert f1_micro_macro(labels, decided)[1] == f1


@pytest.mark.parametrize("folds, message", [(0, "between 1 and 100"), (1.5, "a whole number"),
                                            (True, "a whole number"), ("3", "a whole number")])
def test_folds_must_be_a_whole_number(folds, message):
    with pytest.raises(KitError, match=f"folds in options must be {message}"):
        TrainConfig().updated({"folds": folds})


def test_frozen_head_trained_on_fewer_films_than_features_stays_calibrated():
    from kit.models.head import EmbeddingHead
    from kit.train.data import feature_scaling
    generator = torch.Generator().manual_seed(0)
    train_x, valid_x = torch.randn(40, 300, generator=generator), torch.randn(200, 300,
                                                                            generator=generator)
    train_x[:, :150] = 0.5                  # constant on the training films, not on the others
    train_y, valid_y = (train_x[:, 200:205] > 0).float(), (valid_x[:, 200:205] > 0).float()
    mean, std = feature_scaling(train_x)
    torch.manual_seed(0)
    head = EmbeddingHead(300, 5, mean=mean, std=std)
    optimizer = torch.optim.Adam(head.parameters(), lr=0.01)
    loss = torch.nn.BCEWithLogitsLoss()
    for _ in range(30):
        optimizer.zero_grad()
        loss(head(train_x), train_y).backward()
        optimizer.step()
    head.eval()
    with torch.no_grad():
        assert float(loss(head(valid_x), valid_y)) < 1.5      # a std clamped at 1e-6: 19,000


def test_the_readme_names_every_training_option():
    from dataclasses import fields
    readme = (Path(__file__).resolve().parents[1] / "README.md").read_text()
    missing = [f.name for f in fields(TrainConfig)
               if f"`--{f.name.replace('_', '-')}`" not in readme]
    assert not missing, f"README lists no option for {missing}"
