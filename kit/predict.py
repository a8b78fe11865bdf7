"""`kit predict`: a trained run's probabilities for every test film, as a submission CSV.

With thresholds tuned on valid, each genre's probabilities are rescaled piecewise-linearly so
that its threshold lands on 0.5 (the harness's default): decisions at 0.5 are the tuned ones,
and rankings (average precision, ROC-AUC) are unchanged. ``--raw`` writes them untouched.
"""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import torch
from torch.utils.data import DataLoader, TensorDataset

from kit.competition import Competition
from kit.errors import KitError
from kit.files import write_csv
from kit.train.checkpoint import model_of, read_checkpoint
from kit.train.data import PosterDataset, embed_for
from kit.train.inference import predict_probabilities
from kit.train.thresholds import calibrate
from kit.workdir import Workdir


def predict(workdir: Workdir, run: str, out_dir: str | Path = "submissions",
            name: str | None = None, raw: bool = False, batch_size: int = 64,
            part: str = "test") -> dict:
    """Write ``out_dir/<name>.csv`` with one probability column per genre for every film of
    ``part``: the test ids (a submission), or the valid ids (to score without an answer key)."""
    if part not in ("test", "valid"):
        raise KitError(f"--part must be test or valid, got {part!r}")
    checkpoint = read_checkpoint(workdir.run(run) / "best.pt", f"run {run!r}")
    config, model = model_of(checkpoint, f"run {run!r}")
    competition = Competition.find(workdir, checkpoint["competition"])
    genres = checkpoint["genres"]
    if genres != competition.genres():
        raise KitError(f"run {run!r} was trained on other genres than {competition.name}")
    store = competition.store()
    if part == "test":
        ids = competition.test_ids()
    else:
        table = competition.train_table()
        ids = table.loc[table["part"] == "valid", "id"].tolist()
    positions = store.positions(ids)
    if config.frozen:
        features = torch.from_numpy(embed_for(config, store).features(positions))
        dataset = TensorDataset(features, torch.zeros(len(ids), dtype=torch.uint8))
    else:
        dataset = PosterDataset(store, positions, np.zeros((len(ids), len(genres)), np.uint8))
    probabilities, _ = predict_probabilities(model, DataLoader(dataset, batch_size=batch_size))
    thresholds = checkpoint.get("thresholds")
    if thresholds is not None and not raw:
        probabilities = calibrate(probabilities, np.array(thresholds))
    frame = pd.DataFrame(probabilities.round(6), columns=genres)
    frame.insert(0, "id", ids)
    path = Path(out_dir) / f"{name or run}.csv"
    write_csv(path, frame)
    return {"run": run, "submission": str(path), "part": part, "films": len(ids),
            "genres": len(genres),
            "calibrated_to_tuned_thresholds": thresholds is not None and not raw,
            "mean_predicted_genres": float((probabilities >= 0.5).sum(1).mean())}
