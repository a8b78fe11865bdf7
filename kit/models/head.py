"""The head trained in frozen mode, on cached embeddings or (partial fine-tuning) on cached
maps through the backbone's last stages."""
from __future__ import annotations

import torch
from torch import nn


class FeatureSlice(nn.Module):
    """Columns ``start`` to ``stop`` of each row: one backbone's features of joined ones."""

    def __init__(self, start: int, stop: int):
        super().__init__()
        self.start, self.stop = start, stop

    def forward(self, inputs: torch.Tensor) -> torch.Tensor:
        return inputs[:, self.start:self.stop]


class EmbeddingHead(nn.Module):
    """Standardised features into a logistic (``hidden=0``) or one-hidden-layer head.

    ``encoder`` turns each input row into the features first (a StageEncoder over cached maps;
    by default the rows are the features). ``mirror``: each input row holds a film's inputs and
    then those of its mirror image. In training the head sees one of the two at random per film
    and step, a horizontal flip at the cost of none; in evaluation it returns the mean of the two
    probabilities as a logit (test-time views). ``columns`` (start, stop): the head reads only
    those columns of each (film or mirror) input, one backbone's features of several joined."""

    def __init__(self, in_features: int, num_classes: int, hidden: int = 0, dropout: float = 0.3,
                 mean=None, std=None, mirror: bool = False, encoder: nn.Module | None = None,
                 columns: tuple[int, int] | None = None):
        super().__init__()
        self.mirror = mirror
        self.encoder = encoder or (FeatureSlice(*columns) if columns else nn.Identity())
        self.register_buffer("mean", torch.zeros(in_features) if mean is None
                             else torch.as_tensor(mean, dtype=torch.float32))
        self.register_buffer("std", torch.ones(in_features) if std is None
                             else torch.as_tensor(std, dtype=torch.float32))
        if hidden:
            self.layers = nn.Sequential(nn.Dropout(dropout), nn.Linear(in_features, hidden),
                                        nn.ReLU(), nn.Dropout(dropout),
                                        nn.Linear(hidden, num_classes))
        else:
            self.layers = nn.Sequential(nn.Dropout(dropout), nn.Linear(in_features, num_classes))

    def _logits(self, inputs: torch.Tensor) -> torch.Tensor:
        return self.layers((self.encoder(inputs) - self.mean) / self.std)

    def forward(self, inputs: torch.Tensor) -> torch.Tensor:
        if not self.mirror:
            return self._logits(inputs)
        pair = inputs.unflatten(1, (2, -1))                     # (films, [film, mirror], ...)
        films = len(pair)
        if self.training:
            chosen = torch.randint(0, 2, (films,), device=pair.device)
            return self._logits(pair[torch.arange(films), chosen])
        probabilities = self._logits(pair.flatten(0, 1)).float().sigmoid()
        return torch.logit(probabilities.unflatten(0, (films, 2)).mean(1), eps=1e-6)
