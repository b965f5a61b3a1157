"""Augmentation, vectorised: the study's random crop (pad, then crop back) and horizontal flip, random erasing, and
for images stored larger than the model's input, the ImageNet recipe (a random-resized crop and flip to train, a
resize and centre crop to evaluate); per image, one gather or one resampling for the whole batch.

Each draws its random numbers for the whole global batch from the run's generator and applies them to the images it
is given: in a data-parallel run a process passes its share of the batch (`share`: its slice and the batch's size),
so it reads only those images and still augments each exactly as one process would.
"""
from __future__ import annotations

import math

import torch
import torch.nn.functional as F

Share = tuple[slice, int]  # (this process's slice of the global batch, the global batch's size)


def _drawn_for(images: torch.Tensor, share: Share | None) -> tuple[int, slice]:
    """(how many images the random numbers are drawn for, which of them these images are)."""
    return (share[1], share[0]) if share is not None else (len(images), slice(None))


def crop_and_flip(images: torch.Tensor, generator: torch.Generator, pad: int, flip: bool = True,
                  share: Share | None = None) -> torch.Tensor:
    """(N, C, H, W) -> same shape; each image shifted by its own random offset of up to ±pad pixels and, with
    `flip`, mirrored with p = 0.5.

    One gather for the whole batch (no per-image Python), on whatever device the images are.
    """
    total, mine = _drawn_for(images, share)
    n, _, height, width = images.shape
    padded = F.pad(images, (pad, pad, pad, pad))
    device = images.device
    dy = torch.randint(0, 2 * pad + 1, (total, 1), generator=generator, device=device)[mine]
    dx = torch.randint(0, 2 * pad + 1, (total, 1), generator=generator, device=device)[mine]
    flipped = torch.rand((total, 1), generator=generator, device=device)[mine] < 0.5  # drawn even when unused
    flipped &= flip
    rows = dy + torch.arange(height, device=device)
    columns = torch.arange(width, device=device)
    columns = dx + torch.where(flipped, columns.flip(0), columns)  # a flipped image reads its columns backwards
    batch = torch.arange(n, device=device)[:, None, None]
    # (N, H, W, C) gather, then back to (N, C, H, W)
    return padded.permute(0, 2, 3, 1)[batch, rows[:, :, None], columns[:, None, :]].permute(0, 3, 1, 2)


ERASE_AREA = (0.02, 0.33)  # the erased rectangle's share of the image (torchvision's RandomErasing, Zhong et al. 2017)
ERASE_LOG_RATIO = (math.log(0.3), math.log(1 / 0.3))  # its height : width, log-uniform


def random_erase(images: torch.Tensor, generator: torch.Generator, p: float, share: Share | None = None) -> torch.Tensor:
    """(N, C, H, W) uint8 -> same; with probability p per image, one random rectangle is filled with random pixels.

    Vectorised like crop_and_flip: every image draws its own rectangle, one masked fill for the batch.
    """
    total, mine = _drawn_for(images, share)
    _, channels, height, width = images.shape
    device = images.device
    area = torch.empty(total, device=device).uniform_(*ERASE_AREA, generator=generator)[mine] * height * width
    ratio = torch.empty(total, device=device).uniform_(*ERASE_LOG_RATIO, generator=generator)[mine].exp()
    h = (area * ratio).sqrt().round().clamp(1, height).long()
    w = (area / ratio).sqrt().round().clamp(1, width).long()
    top = (torch.rand(total, generator=generator, device=device)[mine] * (height - h + 1)).long()
    left = (torch.rand(total, generator=generator, device=device)[mine] * (width - w + 1)).long()
    chosen = torch.rand(total, generator=generator, device=device)[mine] < p
    rows, columns = torch.arange(height, device=device), torch.arange(width, device=device)
    inside_rows = (rows >= top[:, None]) & (rows < (top + h)[:, None])  # (N, H)
    inside_columns = (columns >= left[:, None]) & (columns < (left + w)[:, None])  # (N, W)
    mask = (inside_rows[:, :, None] & inside_columns[:, None, :] & chosen[:, None, None])[:, None]  # (N, 1, H, W)
    noise = torch.randint(0, 256, (total, channels, height, width), generator=generator, device=device,
                          dtype=torch.uint8)[mine]
    return torch.where(mask, noise.to(images.dtype), images)


CROP_SCALE = (0.08, 1.0)  # the crop's share of the stored image's area (torchvision's RandomResizedCrop)
CROP_LOG_RATIO = (math.log(3 / 4), math.log(4 / 3))  # its width : height, log-uniform
CENTRE_SHARE = 0.875  # evaluation resizes so the view is this share of the image, then crops its centre (224 of 256)


def random_resized_crop(images: torch.Tensor, generator: torch.Generator, view: tuple[int, int], flip: bool = True,
                        share: Share | None = None) -> torch.Tensor:
    """uint8 (N, C, S, S) stored images -> uint8 (N, C, h, w): from each image a random box of 8-100% of its area
    and an aspect ratio of 3:4 to 4:3, resampled to `view` (averaging over the box, so a large box is not aliased),
    mirrored with p = 0.5 with `flip`. The ImageNet recipe's training crop, for a batch in one call."""
    from torchvision.ops import roi_align

    total, mine = _drawn_for(images, share)
    n, _, height, width = images.shape
    device = images.device
    area = torch.empty(total, device=device).uniform_(*CROP_SCALE, generator=generator)[mine] * height * width
    ratio = torch.empty(total, device=device).uniform_(*CROP_LOG_RATIO, generator=generator)[mine].exp()
    w = (area * ratio).sqrt().clamp(1, width)
    h = (area / ratio).sqrt().clamp(1, height)
    left = torch.rand(total, generator=generator, device=device)[mine] * (width - w)
    top = torch.rand(total, generator=generator, device=device)[mine] * (height - h)
    flipped = torch.rand(total, generator=generator, device=device)[mine] < 0.5
    boxes = torch.stack([torch.arange(n, device=device, dtype=w.dtype), left, top, left + w, top + h], dim=1)
    crops = roi_align(images.float(), boxes, output_size=view, spatial_scale=1.0, sampling_ratio=-1, aligned=True)
    if flip:
        crops = torch.where(flipped[:, None, None, None], crops.flip(3), crops)
    return crops.round_().clamp_(0, 255).to(torch.uint8)


def centre_view(images: torch.Tensor, view: tuple[int, int]) -> torch.Tensor:
    """uint8 (N, C, S, S) stored images -> uint8 (N, C, h, w): resized so the view is CENTRE_SHARE of the image's side,
    then its centre cropped. The ImageNet recipe's evaluation, and the training view without augmentation."""
    height, width = images.shape[2:]
    side = max(1, round(max(view) / CENTRE_SHARE))
    scale = side / min(height, width)
    size = (max(view[0], round(height * scale)), max(view[1], round(width * scale)))
    if size != (height, width):
        images = F.interpolate(images.float(), size=size, mode="bilinear", antialias=True, align_corners=False)
        images = images.round_().clamp_(0, 255).to(torch.uint8)
    top, left = (size[0] - view[0]) // 2, (size[1] - view[1]) // 2
    return images[:, :, top:top + view[0], left:left + view[1]]
