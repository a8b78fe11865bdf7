"""The course report's modified LeNet-5 on 3x345x230 posters."""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from kit.models.registry import register_model
from kit.models.preprocess import Preprocess


class ConvAvgPool(nn.Conv2d):
    """A 5x5 convolution followed by a 2x2 average pool, computed as one 6x6 stride-2 convolution.

    Both are linear, so the pooled output equals a stride-2 convolution whose kernel is the 5x5
    kernel smeared over 2x2 (exact up to float rounding): a quarter of the output positions and no
    full-size intermediate: 36 multiply-adds per pooled output instead of 4 x 25, about 3x fewer.
    """

    def __init__(self, in_channels: int, out_channels: int):
        super().__init__(in_channels, out_channels, 5)
        self.register_buffer("box", torch.full((1, 1, 2, 2), 0.25), persistent=False)

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        out_channels, in_channels = self.weight.shape[:2]
        kernel = F.conv_transpose2d(self.weight.reshape(-1, 1, 5, 5), self.box)
        return F.conv2d(images, kernel.reshape(out_channels, in_channels, 6, 6), self.bias,
                        stride=2)


class LeNet(nn.Module):
    """conv 6@5x5 -> avgpool 2 -> conv 16@5x5 -> pool -> (conv 16@5x5 -> pool) x 2 ->
    FC 240 -> FC 168 -> genres; ReLU after each pool as in LeNet-5 (subsampling, then the
    non-linearity), dropout between each hidden FC layer and its activation; logits out."""

    def __init__(self, num_classes: int, input_size=(345, 230), dropout: float = 0.3,
                 mean=(0.5, 0.5, 0.5), std=(0.25, 0.25, 0.25)):
        super().__init__()
        self.preprocess = Preprocess(mean, std)
        layers, channels = [], 3
        for out_channels in (6, 16, 16, 16):
            layers += [ConvAvgPool(channels, out_channels), nn.ReLU()]
            channels = out_channels
        self.features = nn.Sequential(*layers)
        height, width = input_size
        for _ in range(4):
            height, width = (height - 4) // 2, (width - 4) // 2
        if min(height, width) < 1:
            raise ValueError(f"input {input_size} is too small for LeNet's four conv/pool blocks")
        self.head = nn.Sequential(
            nn.Flatten(), nn.Linear(channels * height * width, 240), nn.Dropout(dropout), nn.ReLU(),
            nn.Linear(240, 168), nn.Dropout(dropout), nn.ReLU(), nn.Linear(168, num_classes))

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        return self.head(self.features(self.preprocess(images)))


@register_model("lenet")
def lenet(num_classes: int, input_size=(345, 230), dropout: float = 0.3, mean=None, std=None,
          **_) -> LeNet:
    """The report's LeNet; ``mean``/``std`` are the competition's training-split statistics."""
    return LeNet(num_classes, tuple(input_size), dropout, mean or (0.5,) * 3, std or (0.25,) * 3)
