"""The torch modules that kinds and blocks build into; with attention_modules.py (the token and attention kinds'),
the only files of builder/ that need torch at import.

Kinds (layers.py, blocks.py) state shapes and settings without torch, so `fmnist validate` answers without it.
"""
from __future__ import annotations

import torch
from torch import nn
from torch.nn import functional


def drop_path(x: torch.Tensor, rate: float, training: bool) -> torch.Tensor:
    """Stochastic depth: a whole sample's branch dropped with probability `rate`, the rest scaled up (training only)."""
    if not training or rate == 0.0:
        return x
    keep = 1.0 - rate
    mask = torch.empty((x.shape[0],) + (1,) * (x.dim() - 1), dtype=x.dtype, device=x.device).bernoulli_(keep)
    return x * mask.div_(keep)


class ResidualModule(nn.Module):
    """body(x) + shortcut(x): the shortcut a projection, its own layers, or the input itself (nn.Identity); made and
    run shortcut first where the spec writes it first (a weights file's order follows)."""

    def __init__(self, body: nn.Module, shortcut: nn.Module | None, drop_rate: float = 0.0, shortcut_first: bool = False):
        super().__init__()
        if shortcut_first:  # registered before the body, so the state dict lists it first (assigned again below)
            self.shortcut = shortcut if shortcut is not None else nn.Identity()
        self.body = body
        self.shortcut = shortcut if shortcut is not None else nn.Identity()
        self.drop_rate = drop_rate
        self.shortcut_first = shortcut_first

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.shortcut_first:
            skip = self.shortcut(x)
            return skip + drop_path(self.body(x), self.drop_rate, self.training)
        return drop_path(self.body(x), self.drop_rate, self.training) + self.shortcut(x)

    def extra_repr(self) -> str:
        return f"drop_path={self.drop_rate}" if self.drop_rate else ""


class ConcatModule(nn.Module):
    """Branches side by side on the same input, outputs concatenated along channels."""

    def __init__(self, branches: list[nn.Module]):
        super().__init__()
        self.branches = nn.ModuleList(branches)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.cat([branch(x) for branch in self.branches], dim=1)


class SumModule(ConcatModule):
    """Branches side by side on the same input, outputs added."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        total = self.branches[0](x)
        for branch in self.branches[1:]:
            total = total + branch(x)
        return total


class SplitModule(ConcatModule):
    """The input's channels cut into equal parts, one per branch, outputs concatenated (ShuffleNetV2's split)."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        parts = x.chunk(len(self.branches), dim=1)
        return torch.cat([branch(part) for branch, part in zip(self.branches, parts)], dim=1)


class GateModule(nn.Module):
    """The input multiplied by what its branch makes of it (squeeze-and-excitation and other attention gates)."""

    def __init__(self, body: nn.Module):
        super().__init__()
        self.body = body

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.body(x) * x


class DenseModule(nn.Module):
    """Each layer sees the concatenation of the block's input and every earlier layer's output."""

    def __init__(self, layers: list[nn.Module]):
        super().__init__()
        self.layers = nn.ModuleList(layers)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        for layer in self.layers:
            x = torch.cat([x, layer(x)], dim=1)
        return x


class ChannelLayerNorm(nn.LayerNorm):
    """LayerNorm over the channels at each position of an (N, C, H, W) batch (ConvNeXt's LayerNorm2d)."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = x.permute(0, 2, 3, 1)
        x = functional.layer_norm(x, self.normalized_shape, self.weight, self.bias, self.eps)
        return x.permute(0, 3, 1, 2)


class LayerScale(nn.Module):
    """A learnable factor per channel (CaiT's and ConvNeXt's layer scale)."""

    def __init__(self, shape: tuple[int, ...], init: float):
        super().__init__()
        self.weight = nn.Parameter(torch.full(shape, float(init)))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.weight * x


class ChannelShuffle(nn.Module):
    """Channels regrouped so each group of the next grouped conv sees every group of the last (ShuffleNet)."""

    def __init__(self, groups: int):
        super().__init__()
        self.groups = groups

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        batch, channels, height, width = x.shape
        x = x.view(batch, self.groups, channels // self.groups, height, width).transpose(1, 2).contiguous()
        return x.view(batch, channels, height, width)

    def extra_repr(self) -> str:
        return f"groups={self.groups}"
