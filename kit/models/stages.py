"""The stages of an EfficientNet-style backbone: pooled for multi-scale features, or cut in two
for partial fine-tuning.

Multi-scale features join the mean-pooled outputs of the last stages to the backbone's pooled
features: earlier stages describe textures, colours and small parts of a poster that the last
layer, trained to name ImageNet objects, keeps little of.

Partial fine-tuning: the frozen part (stem and every stage but the last ``stages``) runs once
per poster and view, and its output maps are cached on disk (kit.embeddings); the tuned part
(the last stages, the head convolution and the pooling) trains with the head on those maps, so
an epoch costs only the tuned part.
"""
from __future__ import annotations

import torch
from torch import nn

from kit.errors import KitError

PARTS = ("conv_stem", "bn1", "blocks", "conv_head", "bn2", "global_pool")


def check_stages(network: nn.Module, stages: int, setting: str, most: int) -> None:
    """``network`` is EfficientNet-style and has at least ``stages`` + ``most`` stages."""
    missing = [part for part in PARTS if not hasattr(network, part)]
    if missing:
        raise KitError(f"{setting} needs an EfficientNet-style backbone (stem, stages, head "
                       f"convolution); {type(network).__name__} has no {', '.join(missing)}")
    if not 1 <= stages <= len(network.blocks) - most:
        raise KitError(f"{setting} must be between 1 and {len(network.blocks) - most} for this "
                       f"backbone ({len(network.blocks)} stages), not {stages}")


class MultiScaleFeatures(nn.Module):
    """A network's pooled features, then the mean-pooled outputs of its last ``stages``
    stages (EfficientNet-Lite2, three stages: 1280 + 120 + 208 + 352 features)."""

    def __init__(self, network: nn.Module, stages: int):
        super().__init__()
        check_stages(network, stages, "stage_features", 0)
        self.network, self.stages = network, stages

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        net = self.network
        x = net.bn1(net.conv_stem(images))
        pooled = []
        for index, stage in enumerate(net.blocks):
            x = stage(x)
            if index >= len(net.blocks) - self.stages:
                pooled.append(x.mean((2, 3)))
        return torch.cat([net.global_pool(net.bn2(net.conv_head(x))), *pooled], 1)


def split_network(network: nn.Module, stages: int) -> tuple[nn.Module, nn.Module]:
    """(frozen part, tuned part) of a timm EfficientNet-style network whose last ``stages``
    stages are tuned; the tuned part ends in pooled features."""
    check_stages(network, stages, "tuned_stages", 1)
    frozen = nn.Sequential(network.conv_stem, network.bn1, *network.blocks[:-stages])
    tuned = nn.Sequential(*network.blocks[-stages:], network.conv_head, network.bn2,
                          network.global_pool)
    return frozen, tuned


class StageEncoder(nn.Module):
    """The tuned stages over the cached maps of each view of a film: (films, views x C x H x W)
    in, (films, views x features) out. Batch-norm statistics stay those of ImageNet (a few
    thousand posters estimate them worse than they are), so only weights are tuned."""

    def __init__(self, tuned: nn.Module, map_shape: list[int]):
        super().__init__()
        self.tuned, self.map_shape = tuned, tuple(map_shape)

    def forward(self, maps: torch.Tensor) -> torch.Tensor:
        films = len(maps)
        return self.tuned(maps.reshape(-1, *self.map_shape)).reshape(films, -1)

    def train(self, mode: bool = True) -> "StageEncoder":
        super().train(mode)
        for module in self.modules():
            if isinstance(module, nn.modules.batchnorm._BatchNorm):
                module.eval()
        return self
