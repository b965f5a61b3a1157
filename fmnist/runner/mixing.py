"""Mixup and CutMix: each training batch blended with a shuffled copy of itself, the loss blended in the same share.

Mixup (Zhang et al. 2018) blends whole images; CutMix (Yun et al. 2019) pastes a rectangle of the other image. The
share λ is drawn from Beta(α, α) per batch, from the run's own generator, which a checkpoint keeps (so a resumed run
draws what an uninterrupted one would) and every rank of a data-parallel run shares (so each mixes the same pairs). With both set, each batch uses one of them, chosen with equal odds.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch


@dataclass(frozen=True)
class Mixed:
    """A mixed batch: the inputs, the partner of each image's label, and the share λ of its own label."""

    inputs: torch.Tensor
    partner_labels: torch.Tensor
    share: float


def _mixup(inputs: torch.Tensor, partner: torch.Tensor, share: float, _centre: torch.Tensor) -> tuple[torch.Tensor, float]:
    return inputs * share + inputs[partner] * (1 - share), share


def _cutmix(inputs: torch.Tensor, partner: torch.Tensor, share: float, centre: torch.Tensor) -> tuple[torch.Tensor, float]:
    """A rectangle of 1 - λ of the area, at a random centre (`centre`: two numbers in [0, 1)), cut from the partner;
    λ becomes the share actually kept."""
    height, width = inputs.shape[-2:]
    cut = (1 - share) ** 0.5
    h, w = round(height * cut), round(width * cut)
    cy, cx = int(centre[0] * height), int(centre[1] * width)
    top, bottom = max(cy - h // 2, 0), min(cy + h - h // 2, height)
    left, right = max(cx - w // 2, 0), min(cx + w - w // 2, width)
    mixed = inputs.clone()
    mixed[..., top:bottom, left:right] = inputs[partner, :, top:bottom, left:right]  # only the box is gathered
    return mixed, 1 - (bottom - top) * (right - left) / (height * width)


MIXERS = {"mixup": _mixup, "cutmix": _cutmix}  # each also the name of its setting (its α)


def mixing_alphas(hparams) -> dict[str, float]:
    """The mixers a run's settings turn on, name -> α (empty: no mixing)."""
    return {name: getattr(hparams, name) for name in MIXERS if getattr(hparams, name) is not None}


def mix_batch(inputs: torch.Tensor, labels: torch.Tensor, alphas: dict[str, float], generator: torch.Generator) -> Mixed:
    """`inputs` (float, N first) mixed by one of the mixers with an α in `alphas` (name -> α > 0); every draw comes
    from `generator` (the run's, which a checkpoint keeps and every rank of a data-parallel run shares)."""
    names = sorted(alphas)
    draws = torch.rand(4, generator=generator, device=generator.device).cpu()
    name = names[int(draws[0] * len(names))] if len(names) > 1 else names[0]
    share = float(np.random.default_rng(int(draws[1] * 2**31)).beta(alphas[name], alphas[name]))  # Beta(α, α)
    partner = torch.randperm(len(labels), generator=generator, device=generator.device).to(labels.device)
    mixed, share = MIXERS[name](inputs, partner, share, draws[2:])
    return Mixed(mixed, labels[partner], share)
