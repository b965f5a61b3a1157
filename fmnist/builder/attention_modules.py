"""The torch modules of the token and attention kinds (tokens.py, attention.py): token sequences, learned tokens and
positions, linear maps over channels, space-to-depth, global and windowed multi-head self-attention.

A token sequence is an (N, L, C) batch: L tokens of C channels. Attention goes through
torch.nn.functional.scaled_dot_product_attention, so the fused kernels serve it on CPU and GPU.
"""
from __future__ import annotations

import math

import torch
from torch import nn
from torch.nn import functional


class ToTokens(nn.Module):
    """(N, C, H, W) -> (N, H*W, C): one token per position, row by row (a ViT's patches after its patch conv)."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x.flatten(2).transpose(1, 2)


class ToMap(nn.Module):
    """(N, H*W, C) -> (N, C, H, W): tokens back to a map, row by row."""

    def __init__(self, height: int, width: int):
        super().__init__()
        self.height, self.width = height, width

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x.transpose(1, 2).reshape(x.shape[0], x.shape[2], self.height, self.width)

    def extra_repr(self) -> str:
        return f"{self.height}x{self.width}"


class ClassToken(nn.Module):
    """Learned tokens put before the sequence (a ViT's class token), the same for every image."""

    def __init__(self, count: int, channels: int):
        super().__init__()
        self.token = nn.Parameter(torch.zeros(1, count, channels))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.cat([self.token.expand(x.shape[0], -1, -1), x], dim=1)


class Position(nn.Module):
    """A learned embedding per position, added to the sequence (normal, std 0.02, as BERT and ViT start it)."""

    def __init__(self, length: int, channels: int):
        super().__init__()
        self.embedding = nn.Parameter(torch.empty(1, length, channels).normal_(std=0.02))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + self.embedding


class Readout(nn.Module):
    """(N, L, C) -> (N, C): one token (a ViT's class token) read out."""

    def __init__(self, token: int):
        super().__init__()
        self.token = token

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x[:, self.token]

    def extra_repr(self) -> str:
        return f"token={self.token}"


class TokenMean(nn.Module):
    """(N, L, C) -> (N, C): the mean over tokens."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x.mean(1)


class ChannelLinear(nn.Linear):
    """A Linear over the channels at each position of an (N, C, H, W) map (torchvision's Swin and ConvNeXt apply
    theirs to channels-last maps): the same weights and sums as a 1x1 conv."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return super().forward(x.permute(0, 2, 3, 1)).permute(0, 3, 1, 2)


class SpaceToDepth(nn.Module):
    """(N, C, H, W) -> (N, b*b*C, ceil(H/b), ceil(W/b)): each b x b block of positions stacked along channels, in Swin's
    patch-merging order (columns of the block outermost: x[0::2, 0::2], x[1::2, 0::2], x[0::2, 1::2], x[1::2, 1::2]);
    odd sizes padded with zeros at the bottom and right first."""

    def __init__(self, block: int):
        super().__init__()
        self.block = block

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        b = self.block
        x = functional.pad(x, (0, (-x.shape[3]) % b, 0, (-x.shape[2]) % b))
        return torch.cat([x[:, :, dy::b, dx::b] for dx in range(b) for dy in range(b)], dim=1)

    def extra_repr(self) -> str:
        return f"block={self.block}"


class SelfAttention(nn.Module):
    """Multi-head self-attention over (..., L, C) tokens: a packed q, k, v projection (torchvision's in_proj order:
    all of q, then k, then v), scaled dot-product attention per head, and an output projection."""

    def __init__(self, channels: int, heads: int, head_channels: int, qkv_bias: bool = True, out_bias: bool = True,
                 dropout: float = 0.0, scale: float | None = None):
        super().__init__()
        inner = heads * head_channels
        self.heads, self.head_channels, self.dropout = heads, head_channels, dropout
        self.scale = scale if scale is not None else head_channels ** -0.5
        self.qkv = nn.Linear(channels, 3 * inner, bias=qkv_bias)
        self.out = nn.Linear(inner, channels, bias=out_bias)

    def split_heads(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """(..., L, C) -> q, k, v, each (..., heads, L, head_channels)."""
        qkv = self.project(x).unflatten(-1, (3, self.heads, self.head_channels))
        q, k, v = (qkv.select(-3, part).transpose(-3, -2) for part in range(3))
        return q, k, v

    def project(self, x: torch.Tensor) -> torch.Tensor:
        return self.qkv(x)

    def attend(self, q, k, v, bias: torch.Tensor | None) -> torch.Tensor:
        """Attention of (..., heads, L, d) queries over keys and values, an additive `bias` broadcast over the logits;
        back to (..., L, heads * d) and through the output projection."""
        out = functional.scaled_dot_product_attention(q, k, v, attn_mask=bias, scale=self.scale,
                                                      dropout_p=self.dropout if self.training else 0.0)
        return self.out(out.transpose(-3, -2).flatten(-2))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.attend(*self.split_heads(x), None)

    def extra_repr(self) -> str:
        return f"heads={self.heads}, head_channels={self.head_channels}, scale={self.scale:.4g}"


def relative_index(height: int, width: int) -> torch.Tensor:
    """(h*w, h*w) indices into a (2h-1)*(2w-1) table of the offset between every two positions of an h x w window
    (Swin's and MaxViT's layout)."""
    coords = torch.stack(torch.meshgrid(torch.arange(height), torch.arange(width), indexing="ij")).flatten(1)
    offsets = (coords[:, :, None] - coords[:, None, :]).permute(1, 2, 0)
    return (offsets[..., 0] + height - 1) * (2 * width - 1) + offsets[..., 1] + width - 1


def log_spaced_offsets(height: int, width: int) -> torch.Tensor:
    """(2h-1, 2w-1, 2) relative offsets, normalised to +-8 and log-spaced (Swin V2's continuous position bias input)."""
    rows = torch.arange(-(height - 1), height, dtype=torch.float32) / max(height - 1, 1)
    columns = torch.arange(-(width - 1), width, dtype=torch.float32) / max(width - 1, 1)
    table = torch.stack(torch.meshgrid(rows, columns, indexing="ij"), dim=-1) * 8
    return torch.sign(table) * torch.log2(table.abs() + 1.0) / 3.0


class WindowAttention(SelfAttention):
    """Self-attention inside windows of an (N, C, H, W) map: non-overlapping `window` blocks (Swin, MaxViT's block
    attention), or, with `grid`, a window-sized grid of positions spread evenly over the map (MaxViT's grid
    attention); a cyclic `shift` with the mask that keeps wrapped-around regions apart (Swin's shifted windows); a
    relative-position bias from a learned table (`bias='table'`) or from a small MLP of log-spaced offsets
    (`bias='mlp'`, Swin V2), and V2's scaled cosine attention (`cosine`). A map not a whole number of windows is
    padded with zeros at the bottom and right (as Swin does), and cropped back after."""

    index: torch.Tensor  # a buffer: each pair of window positions' row in the bias table

    def __init__(self, channels: int, heads: int, head_channels: int, window: tuple[int, int], shift: tuple[int, int],
                 grid: bool, bias: str, cosine: bool, qkv_bias: bool = True, out_bias: bool = True,
                 dropout: float = 0.0, scale: float | None = None, bias_hidden: int = 512):
        super().__init__(channels, heads, head_channels, qkv_bias, out_bias, dropout, scale)
        self.window, self.shift, self.grid, self.cosine, self.bias_kind = window, shift, grid, cosine, bias
        rows, columns = 2 * window[0] - 1, 2 * window[1] - 1
        if cosine:  # a learned temperature per head, capped at 100 (log 10 to start, as Swin V2)
            self.logit_scale = nn.Parameter(torch.full((heads, 1, 1), math.log(10.0)))
        if bias == "table":
            self.table = nn.Parameter(torch.empty(rows * columns, heads))
            nn.init.trunc_normal_(self.table, std=0.02)
        elif bias == "mlp":
            self.bias_mlp = nn.Sequential(nn.Linear(2, bias_hidden), nn.ReLU(inplace=True),
                                          nn.Linear(bias_hidden, heads, bias=False))
            self.register_buffer("offsets", log_spaced_offsets(*window), persistent=False)
        if bias != "none":
            self.register_buffer("index", relative_index(*window).flatten(), persistent=False)

    def project(self, x: torch.Tensor) -> torch.Tensor:
        if self.cosine and self.qkv.bias is not None:  # V2 keeps the key bias at zero (its q and v biases learn)
            inner = self.heads * self.head_channels
            keep = torch.ones(3 * inner, dtype=x.dtype, device=x.device)
            keep[inner:2 * inner] = 0
            return functional.linear(x, self.qkv.weight, self.qkv.bias * keep)
        return self.qkv(x)

    def position_bias(self) -> torch.Tensor | None:
        """(heads, n, n) added to the logits of every window, n = window height * width."""
        if self.bias_kind == "none":
            return None
        n = self.window[0] * self.window[1]
        table = self.table if self.bias_kind == "table" else self.bias_mlp(self.offsets).flatten(0, 1)
        bias = table[self.index].view(n, n, self.heads).permute(2, 0, 1)
        return 16 * torch.sigmoid(bias) if self.bias_kind == "mlp" else bias

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        batch, channels, height, width = x.shape
        wh, ww = self.window
        x = x.permute(0, 2, 3, 1)
        if self.grid:
            windows, rows, columns = self._grid_windows(x)
        else:
            x = functional.pad(x, (0, 0, 0, (-width) % ww, 0, (-height) % wh))
            rows, columns = x.shape[1] // wh, x.shape[2] // ww
            shift = [s if w < size else 0 for s, w, size in zip(self.shift, self.window, x.shape[1:3])]
            if any(shift):
                x = torch.roll(x, shifts=(-shift[0], -shift[1]), dims=(1, 2))
            windows = x.reshape(batch, rows, wh, columns, ww, channels).transpose(2, 3).reshape(batch, rows * columns,
                                                                                             wh * ww, channels)
        q, k, v = self.split_heads(windows)  # each (N, windows, heads, n, d)
        bias = self.position_bias()
        if self.cosine:
            q = functional.normalize(q, dim=-1) * torch.clamp(self.logit_scale, max=math.log(100.0)).exp()
            k = functional.normalize(k, dim=-1)
        if not self.grid and any(shift):
            mask = self._shift_mask(x.shape[1], x.shape[2], shift, x)  # (windows, 1, n, n)
            bias = mask if bias is None else bias + mask
        out = self.attend(q, k, v, bias)
        if self.grid:
            return self._grid_back(out, rows, columns, height, width)
        out = out.reshape(batch, rows, columns, wh, ww, channels).transpose(2, 3).reshape(batch, rows * wh, columns * ww,
                                                                                         channels)
        if any(shift):
            out = torch.roll(out, shifts=(shift[0], shift[1]), dims=(1, 2))
        return out[:, :height, :width].permute(0, 3, 1, 2)

    def attend(self, q, k, v, bias):
        if self.cosine:  # the temperature is already in q
            out = functional.scaled_dot_product_attention(q, k, v, attn_mask=bias, scale=1.0,
                                                          dropout_p=self.dropout if self.training else 0.0)
            return self.out(out.transpose(-3, -2).flatten(-2))
        return super().attend(q, k, v, bias)

    def _grid_windows(self, x: torch.Tensor) -> tuple[torch.Tensor, int, int]:
        """(N, H, W, C) -> (N, sh*sw, window positions, C): position (i*sh + a, j*sw + b) goes to group (a, b) as its
        token (i, j); sh = H / window height (MaxViT's grid partition)."""
        batch, height, width, channels = x.shape
        wh, ww = self.window
        sh, sw = height // wh, width // ww
        groups = x.reshape(batch, wh, sh, ww, sw, channels).permute(0, 2, 4, 1, 3, 5)
        return groups.reshape(batch, sh * sw, wh * ww, channels), sh, sw

    def _grid_back(self, out: torch.Tensor, sh: int, sw: int, height: int, width: int) -> torch.Tensor:
        batch, channels = out.shape[0], out.shape[-1]
        wh, ww = self.window
        x = out.reshape(batch, sh, sw, wh, ww, channels).permute(0, 5, 3, 1, 4, 2)
        return x.reshape(batch, channels, height, width)

    def _shift_mask(self, height: int, width: int, shift: list[int], like: torch.Tensor) -> torch.Tensor:
        """-100 between positions that a cyclic shift brought into one window from different regions (Swin's mask)."""
        wh, ww = self.window
        regions = like.new_zeros((height, width))
        count = 0
        for rows in ((0, -wh), (-wh, -shift[0]), (-shift[0], None)):
            for columns in ((0, -ww), (-ww, -shift[1]), (-shift[1], None)):
                regions[rows[0]:rows[1], columns[0]:columns[1]] = count
                count += 1
        regions = regions.view(height // wh, wh, width // ww, ww).transpose(1, 2).reshape(-1, wh * ww)
        different = regions.unsqueeze(1) != regions.unsqueeze(2)
        return torch.zeros_like(different, dtype=like.dtype).masked_fill(different, -100.0).unsqueeze(1)

    def extra_repr(self) -> str:
        words = [super().extra_repr(), f"window={self.window[0]}x{self.window[1]}"]
        words += ["grid"] if self.grid else [f"shift={self.shift[0]}x{self.shift[1]}"] if any(self.shift) else []
        return ", ".join(words + ([f"bias={self.bias_kind}"] if self.bias_kind != "none" else [])
                         + (["cosine"] if self.cosine else []))
