"""Running a trained network over a loader: what `kit predict` and the training loop share."""
from __future__ import annotations

import numpy as np
import torch
from torch import nn
from torch.utils.data import DataLoader

from kit.memory import keep_freed_memory


def as_model_input(inputs: torch.Tensor) -> torch.Tensor:
    """uint8 posters go to the model as they are (it normalises them); float16 embeddings
    become float32."""
    return inputs if inputs.dtype == torch.uint8 else inputs.float()


@torch.no_grad()
def predict_probabilities(model: nn.Module, loader: DataLoader
                          ) -> tuple[np.ndarray, torch.Tensor]:
    """Sigmoid probabilities over a loader, and the logits they came from."""
    keep_freed_memory()
    model.eval()
    outputs = [model(as_model_input(inputs)) for inputs, _ in loader]
    logits = torch.cat(outputs) if outputs else torch.zeros(0)
    return torch.sigmoid(logits).numpy(), logits
