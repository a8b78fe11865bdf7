"""The model registry: ``factory(num_classes, **options)`` by name."""
from kit.registry import Registry

MODELS = Registry()
register_model = MODELS.register
