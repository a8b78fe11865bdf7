"""`kit search`: random search over the chosen space, seeds, frozen heads side by side."""
import json

import pandas as pd
import pytest
import torch

from kit.errors import KitError
from kit.train.config import TrainConfig
from kit.train.run import train
from kit.workdir import Workdir
from tests.training_setup import TINY


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
