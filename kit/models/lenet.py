"""The course report's modified LeNet-5 on 3x345x230 posters."""
from __future__ import annotations

import torch
from torch import nn

from kit.models import register_model
from kit.models.preprocess import Preprocess


class LeNet(nn.Module):
    """conv 6@5x5 -> avgpool 2 -> conv 16@5x5 -> pool -> (conv 16@5x5 -> pool) x 2 ->
    FC 240 -> FC 168 -> genres; ReLU activations, dropout between each hidden FC layer and its
    activation; logits out."""

    def __init__(self, num_classes: int, input_size=(345, 230), dropout: float = 0.3,
                 mean=(0.5, 0.5, 0.5), std=(0.25, 0.25, 0.25)):
        super().__init__()
        self.preprocess = Preprocess(mean, std)
        layers, channels = [], 3
        for out_channels in (6, 16, 16, 16):
            layers += [nn.Conv2d(channels, out_channels, 5), nn.ReLU(), nn.AvgPool2d(2)]
            channels = out_channels
        self.features = nn.Sequential(*layers)
        with torch.no_grad():
            flat = self.features(torch.zeros(1, 3, *input_size)).numel()
        if flat == 0:
            raise ValueError(f"input {input_size} is too small for LeNet's four conv/pool blocks")
        self.head = nn.Sequential(
            nn.Flatten(), nn.Linear(flat, 240), nn.Dropout(dropout), nn.ReLU(),
            nn.Linear(240, 168), nn.Dropout(dropout), nn.ReLU(), nn.Linear(168, num_classes))

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        return self.head(self.features(self.preprocess(images)))


@register_model("lenet")
def lenet(num_classes: int, input_size=(345, 230), dropout: float = 0.3, mean=None, std=None,
          **_) -> LeNet:
    """The report's LeNet; ``mean``/``std`` are the competition's training-split statistics."""
    return LeNet(num_classes, tuple(input_size), dropout, mean or (0.5,) * 3, std or (0.25,) * 3)
