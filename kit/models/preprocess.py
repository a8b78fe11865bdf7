"""The preprocessing every model carries: resize to its input size, normalise, channels-last."""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn


class Preprocess(nn.Module):
    """Turn uint8 posters (B, 3, H, W) into normalised network input; mean/std kept as buffers.

    ``mean`` and ``std`` are on the [0, 1] scale. One float copy, an optional resize and an
    in-place ``pixels / (255 std) - mean / std`` keep to one full-size float tensor. The result is
    channels-last (where a CPU's convolutions run fastest) and in the autocast dtype when autocast
    is on.
    """

    def __init__(self, mean, std, size: tuple[int, int] | None = None):
        super().__init__()
        self.size = tuple(size) if size else None
        self.register_buffer("mean", torch.tensor(mean, dtype=torch.float32).view(1, 3, 1, 1))
        self.register_buffer("std", torch.tensor(std, dtype=torch.float32).view(1, 3, 1, 1))

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        if images.dtype != torch.uint8:
            raise TypeError(f"models take uint8 posters (0..255), not {images.dtype}")
        pixels = images.float()
        if self.size and tuple(pixels.shape[-2:]) != self.size:
            pixels = F.interpolate(pixels, size=self.size, mode="bilinear", antialias=True,
                                   align_corners=False)
        pixels.mul_(1 / (255 * self.std)).sub_(self.mean / self.std)
        dtype = torch.get_autocast_dtype("cpu") if torch.is_autocast_enabled("cpu") else None
        return pixels.to(dtype=dtype, memory_format=torch.channels_last)
