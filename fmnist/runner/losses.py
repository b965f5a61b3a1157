"""Output layers: 'softmax' (cross-entropy), 'sigmoid' (one-vs-all binary cross-entropy) and 'sigmoid-ce'
(a sigmoid in front of the cross-entropy: the study's sigmoid column, read from its lower accuracies)."""
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


def _sigmoid_ce_loss(logits: torch.Tensor, labels: torch.Tensor, smoothing: float = 0.0) -> torch.Tensor:
    # squashing to (0, 1) before the softmax caps how sure the model can be: the study's lower sigmoid column
    return F.cross_entropy(torch.sigmoid(logits), labels, label_smoothing=smoothing)


LOSSES: dict[str, Callable[..., torch.Tensor]] = {
    "softmax": _softmax_loss,
    "sigmoid": _sigmoid_loss,
    "sigmoid-ce": _sigmoid_ce_loss,
}

PROBABILITIES: dict[str, Callable[[torch.Tensor], torch.Tensor]] = {
    "softmax": lambda logits: logits.softmax(dim=1),
    "sigmoid": torch.sigmoid,  # independent per class: they need not sum to 1
    "sigmoid-ce": torch.sigmoid,  # the model's output layer; a softmax over (0, 1) would flatten every answer
}
