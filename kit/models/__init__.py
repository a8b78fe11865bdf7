"""Model registry with one entry point, ``create_model`` (after timm's).

Every model takes the store's uint8 posters (B, 3, H, W) (a float tensor is a TypeError), does
its own resizing and normalisation, and returns one logit per genre.
Names: the registered ones (``list_models()``), or ``timm:<any timm model name>``.
"""
from __future__ import annotations

from torch import nn

from kit.errors import KitError
from kit.models.registry import MODELS


def list_models() -> list[str]:
    """The names of every registered model."""
    from kit.models import lenet, pretrained  # noqa: F401  (register the built-in models)
    return sorted(MODELS)


def create_model(name: str, num_classes: int, **options) -> nn.Module:
    """Build model ``name`` with ``num_classes`` outputs."""
    from kit.models import lenet, pretrained  # noqa: F401  (register the built-in models)
    if name.startswith("timm:"):
        return pretrained.timm_classifier(name[len("timm:"):], num_classes, **options)
    if name not in MODELS:
        raise KitError(f"unknown model {name!r}; choose one of {', '.join(list_models())} "
                       "or timm:<name>")
    return MODELS[name](num_classes, **options)
