"""The study's augmentation, vectorised: random crop (pad, then crop back) and random horizontal flip, per image."""
from __future__ import annotations

import torch
import torch.nn.functional as F

def crop_and_flip(images: torch.Tensor, generator: torch.Generator, pad: int, flip: bool = True) -> torch.Tensor:
    """(N, C, H, W) -> same shape; each image shifted by its own random offset of up to ±pad pixels and, with
    `flip`, mirrored with p = 0.5.

    One gather for the whole batch (no per-image Python), on whatever device the images are.
    """
    n, _, height, width = images.shape
    padded = F.pad(images, (pad, pad, pad, pad))
    device = images.device
    dy = torch.randint(0, 2 * pad + 1, (n, 1), generator=generator, device=device)
    dx = torch.randint(0, 2 * pad + 1, (n, 1), generator=generator, device=device)
    flipped = torch.rand((n, 1), generator=generator, device=device) < 0.5  # drawn even when unused: same RNG stream
    flipped &= flip
    rows = dy + torch.arange(height, device=device)
    columns = torch.arange(width, device=device)
    columns = dx + torch.where(flipped, columns.flip(0), columns)  # a flipped image reads its columns backwards
    batch = torch.arange(n, device=device)[:, None, None]
    # (N, H, W, C) gather, then back to (N, C, H, W)
    return padded.permute(0, 2, 3, 1)[batch, rows[:, :, None], columns[:, None, :]].permute(0, 3, 1, 2)
