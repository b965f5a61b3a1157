"""Output layers of the study: 'softmax' (cross-entropy) and 'sigmoid' (one-vs-all binary cross-entropy)."""
from __future__ import annotations

from typing import Callable

import torch
import torch.nn.functional as F


def _softmax_loss(logits: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
    return F.cross_entropy(logits, labels)


def _sigmoid_loss(logits: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
    # each class is its own yes/no question; the mean is over images and classes
    return F.binary_cross_entropy_with_logits(logits, F.one_hot(labels, logits.shape[1]).to(logits.dtype))


LOSSES: dict[str, Callable[[torch.Tensor, torch.Tensor], torch.Tensor]] = {
    "softmax": _softmax_loss,
    "sigmoid": _sigmoid_loss,
}

PROBABILITIES: dict[str, Callable[[torch.Tensor], torch.Tensor]] = {
    "softmax": lambda logits: logits.softmax(dim=1),
    "sigmoid": torch.sigmoid,  # independent per class: they need not sum to 1
}
