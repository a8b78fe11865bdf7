"""Multi-label losses: BCE-with-logits (optionally weighted), asymmetric (Ridnik et al. 2021),
and sigmoid focal loss; all averaged over films and genres."""
from __future__ import annotations

import torch
from torch import nn

from kit.errors import KitError
from kit.train.config import LOSSES


class AsymmetricLoss(nn.Module):
    """timm's asymmetric loss, scaled to a mean per film-genre pair like the other losses."""

    def __init__(self, gamma_negative: float = 4.0, gamma_positive: float = 0.0,
                 clip: float = 0.05):
        super().__init__()
        from timm.loss import AsymmetricLossMultiLabel     # timm costs 2.5 s to import
        self.loss = AsymmetricLossMultiLabel(gamma_neg=gamma_negative, gamma_pos=gamma_positive,
                                             clip=clip)

    def forward(self, logits: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
        return self.loss(logits, targets) / logits.numel()


class FocalLoss(nn.Module):
    """torchvision's sigmoid focal loss (Lin et al. 2017), mean-reduced."""

    def __init__(self, gamma: float = 2.0, alpha: float = 0.25):
        super().__init__()
        self.gamma, self.alpha = gamma, alpha

    def forward(self, logits: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
        from torchvision.ops import sigmoid_focal_loss
        return sigmoid_focal_loss(logits, targets, alpha=self.alpha, gamma=self.gamma,
                                  reduction="mean")


def make_loss(name: str, pos_weight=None) -> nn.Module:
    """The loss ``name``; ``pos_weight`` (per genre) applies to BCE only."""
    if name == "bce":
        weight = None if pos_weight is None else torch.as_tensor(pos_weight, dtype=torch.float32)
        return nn.BCEWithLogitsLoss(pos_weight=weight)
    if pos_weight is not None:
        raise KitError(f"class-weight balancing needs --loss bce, not {name}")
    if name == "asl":
        return AsymmetricLoss()
    if name == "focal":
        return FocalLoss()
    raise KitError(f"unknown loss {name!r}; choose one of {', '.join(LOSSES)}")
