"""A named registry with a decorator (after timm's): models and balancing strategies use it."""
from __future__ import annotations

from typing import Callable


class Registry(dict):
    """name -> factory; ``@registry.register("name")`` adds one."""

    def register(self, name: str) -> Callable:
        def add(factory):
            self[name] = factory
            return factory
        return add
