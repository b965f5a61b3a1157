"""Mixup and CutMix: each training batch blended with a shuffled copy of itself, the loss blended in the same share.

Mixup (Zhang et al. 2018) blends whole images; CutMix (Yun et al. 2019) pastes a rectangle of the other image. The
share λ is drawn from Beta(α, α) per batch on torch's global generator, which a checkpoint keeps, so a resumed run
draws what an uninterrupted one would. With both set, each batch uses one of them, chosen with equal odds.
"""
from __future__ import annotations

from dataclasses import dataclass

import torch


@dataclass(frozen=True)
class Mixed:
    """A mixed batch: the inputs, the partner of each image's label, and the share λ of its own label."""

    inputs: torch.Tensor
    partner_labels: torch.Tensor
    share: float


def _mixup(inputs: torch.Tensor, partner: torch.Tensor, share: float) -> tuple[torch.Tensor, float]:
    return inputs * share + inputs[partner] * (1 - share), share


def _cutmix(inputs: torch.Tensor, partner: torch.Tensor, share: float) -> tuple[torch.Tensor, float]:
    """A rectangle of 1 - λ of the area, at a random centre, cut from the partner; λ becomes the share actually kept."""
    height, width = inputs.shape[-2:]
    cut = (1 - share) ** 0.5
    h, w = round(height * cut), round(width * cut)
    cy, cx = (int(torch.randint(size, (1,))) for size in (height, width))
    top, bottom = max(cy - h // 2, 0), min(cy + h - h // 2, height)
    left, right = max(cx - w // 2, 0), min(cx + w - w // 2, width)
    mixed = inputs.clone()
    mixed[..., top:bottom, left:right] = inputs[partner, :, top:bottom, left:right]  # only the box is gathered
    return mixed, 1 - (bottom - top) * (right - left) / (height * width)


MIXERS = {"mixup": _mixup, "cutmix": _cutmix}  # each also the name of its setting (its α)


def mixing_alphas(hparams) -> dict[str, float]:
    """The mixers a run's settings turn on, name -> α (empty: no mixing)."""
    return {name: getattr(hparams, name) for name in MIXERS if getattr(hparams, name) is not None}


def mix_batch(inputs: torch.Tensor, labels: torch.Tensor, alphas: dict[str, float]) -> Mixed:
    """`inputs` (float, N first) mixed by one of the mixers with an α in `alphas` (name -> α > 0)."""
    names = sorted(alphas)
    name = names[int(torch.randint(len(names), (1,)))] if len(names) > 1 else names[0]
    alpha = torch.tensor(float(alphas[name]))
    share = float(torch.distributions.Beta(alpha, alpha).sample())
    partner = torch.randperm(len(labels)).to(labels.device)
    mixed, share = MIXERS[name](inputs, partner, share)
    return Mixed(mixed, labels[partner], share)
