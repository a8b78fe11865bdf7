"""The preprocessing every model carries: resize to its input size, normalise, channels-last."""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn


def short_side_size(height: int, width: int, short_side: int) -> tuple[int, int]:
    """The (height, width) that gives an image's shorter side ``short_side`` pixels and keeps
    its aspect ratio (a 345 x 230 poster at 260: 390 x 260)."""
    scale = short_side / min(height, width)
    return max(1, round(height * scale)), max(1, round(width * scale))


class Preprocess(nn.Module):
    """Turn uint8 posters (B, 3, H, W) into normalised network input; mean/std kept as buffers.

    ``mean`` and ``std`` are on the [0, 1] scale. Images are resized to ``size`` or, with
    ``short_side``, to that many pixels on their shorter side with their aspect ratio kept (a
    fully convolutional backbone pools any size). One float copy, an optional resize and an
    in-place ``pixels / (255 std) - mean / std`` keep to one full-size float tensor. The result is
    channels-last (where a CPU's convolutions run fastest) and in the autocast dtype when autocast
    is on.
    """

    def __init__(self, mean, std, size: tuple[int, int] | None = None, short_side: int = 0):
        super().__init__()
        self.size = tuple(size) if size else None
        self.short_side = short_side
        self.register_buffer("mean", torch.tensor(mean, dtype=torch.float32).view(1, 3, 1, 1))
        self.register_buffer("std", torch.tensor(std, dtype=torch.float32).view(1, 3, 1, 1))

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        if images.dtype != torch.uint8:
            raise TypeError(f"models take uint8 posters (0..255), not {images.dtype}")
        pixels = images.float()
        size = short_side_size(*pixels.shape[-2:], self.short_side) if self.short_side \
            else self.size
        if size and tuple(pixels.shape[-2:]) != size:
            pixels = F.interpolate(pixels, size=size, mode="bilinear", antialias=True,
                                   align_corners=False)
        pixels.mul_(1 / (255 * self.std)).sub_(self.mean / self.std)
        dtype = torch.get_autocast_dtype("cpu") if torch.is_autocast_enabled("cpu") else None
        return pixels.to(dtype=dtype, memory_format=torch.channels_last)
