"""Several trained models as one: the mean of their probabilities."""
from __future__ import annotations

import torch
from torch import nn


class Ensemble(nn.Module):
    """Averages the members' probabilities; returns them as logits like any other model."""

    def __init__(self, members: list[nn.Module]):
        super().__init__()
        self.members = nn.ModuleList(members)

    def forward(self, inputs: torch.Tensor) -> torch.Tensor:
        probabilities = torch.stack([m(inputs).float().sigmoid() for m in self.members]).mean(0)
        return torch.logit(probabilities, eps=1e-6)
