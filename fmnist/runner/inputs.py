"""How images become model inputs: the one place that knows it, used by training, eval, predict and export."""
from __future__ import annotations

import torch

PIXEL_MAX = 255  # uint8 pixels are scaled to [0, 1], not centred: the study's choice


def model_input(images: torch.Tensor, channels_last: bool = False) -> torch.Tensor:
    """uint8 (N, C, H, W) -> float32 in [0, 1], channels_last where the convolution kernels want it."""
    x = images.float().div_(PIXEL_MAX)
    return x.contiguous(memory_format=torch.channels_last) if channels_last else x


def describe_input(input_shape, light_on_black: bool = True, normalized: bool = False) -> str:
    """What a model exported by fmnist expects, in words (its metadata and the export line say this)."""
    text = f"float32 images (N, {', '.join(str(n) for n in input_shape)}), pixels in [0, 1] (uint8 / {PIXEL_MAX})"
    if normalized:
        text += ", normalised inside the model"
    return text + (", light object on black" if light_on_black else "")
