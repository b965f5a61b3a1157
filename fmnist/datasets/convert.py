"""Explicit conversions of uint8 (N, C, H, W) images: size and channels; and the optional normalisation layer."""
from __future__ import annotations

import math
from typing import TYPE_CHECKING

import torch
import torch.nn.functional as F
from torch import nn

if TYPE_CHECKING:
    from .splits import Images

GREY_WEIGHTS = (0.299, 0.587, 0.114)  # ITU-R 601 luma, what Pillow's convert("L") uses
CHUNK = 4096  # images converted at a time: a float copy of the whole set would double its memory
CHUNK_VALUES = 2**23  # and at most this many pixel values: a chunk of large images stays tens of MB as floats


def chunk_length(images: Images, most: int = CHUNK, values: int = CHUNK_VALUES) -> int:
    """Images per chunk of a pass over `images`: `most`, fewer where each is large (a 3x256x256 image is 250 MNISTs)."""
    per_image = math.prod(images.shape[1:])
    return max(1, min(most, values // max(1, per_image)))


def convert_images(images: torch.Tensor, channels: int | None, size: tuple[int, int] | None) -> torch.Tensor:
    """uint8 (N, C, H, W) -> uint8 (N, channels, *size); grey <-> RGB and an antialiased bilinear resize."""
    same_channels = channels is None or channels == images.shape[1]
    same_size = size is None or tuple(size) == tuple(images.shape[2:])
    if same_channels and same_size:
        return images
    step = chunk_length(images)
    parts = [_convert_chunk(images[start:start + step], channels, size) for start in range(0, len(images), step)]
    return torch.cat(parts) if parts else images


def _convert_chunk(images: torch.Tensor, channels: int | None, size: tuple[int, int] | None) -> torch.Tensor:
    x = images.float()
    if channels == 3 and x.shape[1] == 1:
        x = x.expand(-1, 3, -1, -1)
    elif channels == 1 and x.shape[1] == 3:
        weights = torch.tensor(GREY_WEIGHTS, device=x.device).view(1, 3, 1, 1)
        x = (x * weights).sum(1, keepdim=True)
    if size is not None and tuple(size) != tuple(x.shape[2:]):
        x = F.interpolate(x, size=tuple(size), mode="bilinear", antialias=True, align_corners=False)
    return x.round_().clamp_(0, 255).to(torch.uint8)


def channel_statistics(images: Images) -> tuple[list[float], list[float]]:
    """Per-channel mean and standard deviation of uint8 images scaled to [0, 1], in float64 sums (no overflow)."""
    channels = images.shape[1]
    total = torch.zeros(channels, dtype=torch.float64)
    squares = torch.zeros(channels, dtype=torch.float64)
    step = chunk_length(images)
    for start in range(0, len(images), step):
        x = images[start:start + step].double().div_(255)
        total += x.sum((0, 2, 3))
        squares += x.pow(2).sum((0, 2, 3))
    count = images.shape[0] * images.shape[2] * images.shape[3]
    mean = total / count
    std = (squares / count - mean.pow(2)).clamp_min(0).sqrt().clamp_min(1e-6)  # a constant channel must not divide by 0
    return [round(float(m), 6) for m in mean], [round(float(s), 6) for s in std]


class Normalize(nn.Module):
    """(x - mean) / std per channel, on inputs in [0, 1]: the training split's statistics, saved with the weights."""

    mean: torch.Tensor
    std: torch.Tensor

    def __init__(self, mean: list[float], std: list[float]):
        super().__init__()
        self.register_buffer("mean", torch.tensor(mean, dtype=torch.float32).view(1, -1, 1, 1))
        self.register_buffer("std", torch.tensor(std, dtype=torch.float32).view(1, -1, 1, 1))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return (x - self.mean) / self.std
