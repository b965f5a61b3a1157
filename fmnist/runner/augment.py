"""Augmentation, vectorised: the study's random crop (pad, then crop back) and horizontal flip, and random erasing; per image."""
from __future__ import annotations

import math

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


ERASE_AREA = (0.02, 0.33)  # the erased rectangle's share of the image (torchvision's RandomErasing, Zhong et al. 2017)
ERASE_LOG_RATIO = (math.log(0.3), math.log(1 / 0.3))  # its height : width, log-uniform


def random_erase(images: torch.Tensor, generator: torch.Generator, p: float) -> torch.Tensor:
    """(N, C, H, W) uint8 -> same; with probability p per image, one random rectangle is filled with random pixels.

    Vectorised like crop_and_flip: every image draws its own rectangle, one masked fill for the batch.
    """
    n, _, height, width = images.shape
    device = images.device
    area = torch.empty(n, device=device).uniform_(*ERASE_AREA, generator=generator) * height * width
    ratio = torch.empty(n, device=device).uniform_(*ERASE_LOG_RATIO, generator=generator).exp()
    h = (area * ratio).sqrt().round().clamp(1, height).long()
    w = (area / ratio).sqrt().round().clamp(1, width).long()
    top = (torch.rand(n, generator=generator, device=device) * (height - h + 1)).long()
    left = (torch.rand(n, generator=generator, device=device) * (width - w + 1)).long()
    chosen = torch.rand(n, generator=generator, device=device) < p
    rows, columns = torch.arange(height, device=device), torch.arange(width, device=device)
    inside_rows = (rows >= top[:, None]) & (rows < (top + h)[:, None])  # (N, H)
    inside_columns = (columns >= left[:, None]) & (columns < (left + w)[:, None])  # (N, W)
    mask = (inside_rows[:, :, None] & inside_columns[:, None, :] & chosen[:, None, None])[:, None]  # (N, 1, H, W)
    noise = torch.randint(0, 256, images.shape, generator=generator, device=device, dtype=torch.uint8)
    return torch.where(mask, noise.to(images.dtype), images)
