"""Cross-fitting: folds ensembled with out-of-fold thresholds, repeats averaged."""
import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch

from kit.errors import KitError
from kit.competition import Competition
from kit.predict import predict
from kit.train.checkpoint import build_model
from kit.train.config import TrainConfig
from kit.train.run import train
from kit.workdir import Workdir
from tests.training_setup import private_moved_away


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
    assert (run / "genres.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"     # out of fold
    assert not (run / "fold-1" / "genres.png").exists()     # not one per model
    assert (run / "curves.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"     # every model's
    assert not (run / "fold-1" / "curves.png").exists()
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


@pytest.mark.parametrize("folds, message", [(0, "between 1 and 100"), (1.5, "a whole number"),
                                            (True, "a whole number"), ("3", "a whole number")])
def test_folds_must_be_a_whole_number(folds, message):
    with pytest.raises(KitError, match=f"folds in options must be {message}"):
        TrainConfig().updated({"folds": folds})
