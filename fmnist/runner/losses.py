"""Output layers of the study: 'softmax' (cross-entropy) and 'sigmoid' (one-vs-all binary cross-entropy)."""
from __future__ import annotations

from typing import Callable

import torch
import torch.nn.functional as F


def _softmax_loss(logits: torch.Tensor, labels: torch.Tensor, smoothing: float = 0.0) -> torch.Tensor:
    return F.cross_entropy(logits, labels, label_smoothing=smoothing)


def _sigmoid_loss(logits: torch.Tensor, labels: torch.Tensor, smoothing: float = 0.0) -> torch.Tensor:
    # each class is its own yes/no question; the mean is over images and classes
    targets = F.one_hot(labels, logits.shape[1]).to(logits.dtype)
    if smoothing:
        targets = targets * (1 - smoothing) + smoothing / logits.shape[1]
    return F.binary_cross_entropy_with_logits(logits, targets)


LOSSES: dict[str, Callable[..., torch.Tensor]] = {
    "softmax": _softmax_loss,
    "sigmoid": _sigmoid_loss,
}

PROBABILITIES: dict[str, Callable[[torch.Tensor], torch.Tensor]] = {
    "softmax": lambda logits: logits.softmax(dim=1),
    "sigmoid": torch.sigmoid,  # independent per class: they need not sum to 1
}
