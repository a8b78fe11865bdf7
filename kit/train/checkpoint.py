"""Checkpoints: one schema, with a version, written and read here for single runs and
cross-fitted ensembles alike; and the model a checkpoint describes."""
from __future__ import annotations

from dataclasses import asdict
from pathlib import Path

import numpy as np
import torch
from torch import nn

from kit.errors import KitError
from kit.files import atomic_path
from kit.models.ensemble import Ensemble
from kit.models.torch_files import load_weights_only, save
from kit.train.config import TrainConfig

SCHEMA = 2
# config, genres, competition, data_options, run, model_state: always; epoch (best.pt of a run),
# thresholds (once tuned), valid (probabilities and labels the thresholds were tuned on),
# optimizer_state, state and pretrained_digest (last.pt, to resume only what made it).
# Besides tensors and plain data, a checkpoint holds NumPy arrays, and nothing else may load:
# unpickling any other global could run code from a run folder someone else made.
NUMPY_ARRAYS = [np.ndarray, np.dtype, np.zeros(0).__reduce__()[0],      # _reconstruct
                *(getattr(np.dtypes, name) for name in np.dtypes.__all__)]


def write_checkpoint(path: Path, config: TrainConfig, genres: list[str], competition: str,
                     data_options: dict, run: str, model_state: dict, **extra) -> None:
    """Write a checkpoint atomically."""
    payload = {"schema": SCHEMA, "config": asdict(config), "genres": genres,
               "competition": competition, "data_options": data_options, "run": run,
               "model_state": model_state, **extra}
    with atomic_path(path) as tmp:
        save(payload, tmp)


def read_checkpoint(path: Path, origin: str) -> dict:
    """A checkpoint written by this kit version; KitError otherwise."""
    if not path.exists():
        raise KitError(f"{origin} has no {path.name} in {path.parent}; train it first")
    payload = load_weights_only(path, "checkpoint", NUMPY_ARRAYS)
    if not isinstance(payload, dict) or payload.get("schema") != SCHEMA:
        raise KitError(f"{path} was written by another kit version (checkpoint schema "
                       f"{payload.get('schema') if isinstance(payload, dict) else '?'}, this "
                       f"version reads {SCHEMA}); train {origin} again under another --name")
    return payload


def config_of(checkpoint: dict, origin: str) -> TrainConfig:
    """The training configuration a checkpoint was written with, checked."""
    return TrainConfig().updated(checkpoint["config"], origin)


def build_model(config: TrainConfig, num_classes: int, data_options: dict,
                load_pretrained: bool = True) -> nn.Module:
    """The network a run trains: an embedding head (frozen mode) or an image model; the mean
    of several when ``data_options`` lists its members (a cross-fitted run)."""
    if "members" in data_options:
        return Ensemble([build_model(config, num_classes, options, load_pretrained)
                         for options in data_options["members"]])
    if config.frozen:
        from kit.models.head import EmbeddingHead
        encoder = None
        if config.tuned_stages:
            from kit.models.pretrained import stage_encoder
            encoder = stage_encoder(config.model, config.tuned_stages,
                                    data_options["map_shape"], config.pretrained,
                                    load_pretrained)
        return EmbeddingHead(data_options["in_features"], num_classes, config.head_hidden,
                             config.dropout, data_options["mean"], data_options["std"],
                             config.mirror, encoder, data_options.get("columns"))
    if config.pretrained and not config.model.startswith("timm:"):
        raise KitError(f"--pretrained loads a checkpoint into a timm:<name> model or a frozen "
                       f"backbone; {config.model} trains from its own initial weights")
    from kit.models import create_model
    options = {"dropout": config.dropout, **data_options}
    if config.model.startswith("timm:") and load_pretrained:
        options.update(pretrained=config.pretrained, hub=config.hub_weights)
    return create_model(config.model, num_classes, **options).to(
        memory_format=torch.channels_last)


def load_weights(model: nn.Module, state: dict, origin: str) -> None:
    """Load checkpoint weights; weights of another architecture are a clear error."""
    try:
        model.load_state_dict(state)
    except RuntimeError as error:
        detail = str(error).splitlines()[1].strip() if "\n" in str(error) else str(error)
        raise KitError(f"the weights of {origin} do not fit the {type(model).__name__} of this "
                       f"kit version ({detail}); it was trained by another version: train it "
                       "again under another --name") from None


def model_of(checkpoint: dict, origin: str) -> tuple[TrainConfig, nn.Module]:
    """The configuration and the trained network of a checkpoint."""
    config = config_of(checkpoint, origin)
    model = build_model(config, len(checkpoint["genres"]), checkpoint["data_options"],
                        load_pretrained=False)
    load_weights(model, checkpoint["model_state"], origin)
    return config, model
