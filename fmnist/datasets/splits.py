"""The trainer's only view of data: train, validation and test images as uint8 (N, C, H, W) tensors (or read from
disk by index, for a folder too big for memory) with int64 labels, and the fixed-seed stratified split that holds
validation images out of the training split."""
from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Union

import torch

from .disk_images import DiskImages

Images = Union[torch.Tensor, DiskImages]  # indexing either gives a tensor; narrow() gives a view of either

SPLIT_SEED = 0  # fixed, so every run, grid cell and search trial is judged on the same validation images
VALIDATION_SHARE_CAP = 6  # validation takes at most 1/6 of each class


@dataclass
class Splits:
    """Images as uint8 (N, C, H, W) and labels as int64, per split; the trainer's only view of data."""

    train_x: Images
    train_y: torch.Tensor
    val_x: Images
    val_y: torch.Tensor
    test_x: Images
    test_y: torch.Tensor
    class_names: tuple[str, ...]
    normalization: dict | None = None  # {"mean": [...], "std": [...]} per channel of the training split, when asked for
    view: tuple[int, int] | None = None  # images stored larger than the model's input: the (H, W) it is cropped to

    def training_subset(self, images: int) -> "Splits":
        """The same splits training on the first `images` training images only (a search's lower fidelity)."""
        if images >= len(self.train_y):
            return self
        return dataclasses.replace(self, train_x=self.train_x.narrow(0, 0, images), train_y=self.train_y[:images])

    def to(self, device: torch.device) -> "Splits":
        moved = {name: getattr(self, name).to(device) for name in ("train_x", "train_y", "val_x", "val_y", "test_x", "test_y")}
        return Splits(**moved, class_names=self.class_names, normalization=self.normalization, view=self.view)


def stratified_split(labels: torch.Tensor, per_class: int, seed: int = SPLIT_SEED) -> tuple[torch.Tensor, torch.Tensor]:
    """(train indices, validation indices): `per_class` images of each class, drawn with a fixed seed, go to validation."""
    generator = torch.Generator().manual_seed(seed)
    order = torch.randperm(len(labels), generator=generator)
    members = [order[labels[order] == c] for c in range(int(labels.max()) + 1)]
    # at most a sixth of a class (Fashion-MNIST: exactly 1,000 of 6,000), so a small dataset keeps images to train on
    val_parts = [m[:min(per_class, len(m) // VALIDATION_SHARE_CAP)] for m in members]
    val = torch.cat(val_parts).sort().values
    keep = torch.ones(len(labels), dtype=torch.bool)
    keep[val] = False
    rest = keep.nonzero().squeeze(1)
    train = rest[torch.randperm(len(rest), generator=generator)]  # shuffled anew, so --train-limit takes a mix of all classes
    return train, val
