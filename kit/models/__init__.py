"""Model registry with one entry point, ``create_model`` (after timm's).

Every model takes a float batch of posters in [0, 1] at the store's size, shape (B, 3, H, W),
does its own resizing and normalisation, and returns one logit per genre.
Names: the registered ones (``list_models()``), or ``timm:<any timm model name>``.
"""
from __future__ import annotations

from typing import Callable

from torch import nn

from kit.errors import KitError

_REGISTRY: dict[str, Callable[..., nn.Module]] = {}


def register_model(name: str):
    """Decorator adding a model factory ``factory(num_classes, **options)`` under ``name``."""
    def add(factory):
        _REGISTRY[name] = factory
        return factory
    return add


def list_models() -> list[str]:
    from kit.models import lenet, pretrained  # noqa: F401  (register the built-in models)
    return sorted(_REGISTRY)


def create_model(name: str, num_classes: int, **options) -> nn.Module:
    """Build model ``name`` with ``num_classes`` outputs."""
    from kit.models import lenet, pretrained  # noqa: F401  (register the built-in models)
    if name.startswith("timm:"):
        return pretrained.timm_classifier(name[len("timm:"):], num_classes, **options)
    if name not in _REGISTRY:
        raise KitError(f"unknown model {name!r}; choose one of {', '.join(list_models())} "
                       "or timm:<name>")
    return _REGISTRY[name](num_classes, **options)
