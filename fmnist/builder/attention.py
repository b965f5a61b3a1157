"""Attention kinds: multi-head self-attention over a token sequence (ViT), and inside windows of a map, shifted or
on a dilated grid, with a relative-position bias (Swin, Swin V2, MaxViT)."""
from __future__ import annotations

from dataclasses import dataclass
from typing import Callable, ClassVar

from .fields import LayerProblem, boolean, choice, integer, pair, positive, probability
from .layers import Layer, register, spatial
from .tokens import token_sequence

BIASES = ("none", "table", "mlp")  # no position bias; a learned table (Swin, MaxViT); Swin V2's MLP of log offsets


@dataclass
class _Attention(Layer):
    """What both attentions share: heads, their size, the projections' biases, dropout of the attention weights and
    the logits' scale."""

    heads: int = 0
    head_channels: int | None = None  # channels per head; default: the input's channels / heads
    qkv_bias: bool = True
    out_bias: bool = True
    dropout: float = 0.0
    scale: float | None = None  # the logits' factor; default 1 / sqrt(head channels)
    group: ClassVar[str] = "attention"
    aliases: ClassVar[dict[str, str]] = {"head_dim": "head_channels", "attn_drop": "dropout", "bias_qkv": "qkv_bias"}
    converters: ClassVar[dict[str, Callable]] = {
        "heads": integer, "head_channels": integer, "qkv_bias": boolean, "out_bias": boolean,
        "dropout": lambda v, what: probability(v, "attention dropout"), "scale": positive,
    }
    optional_value: ClassVar[str | None] = "heads"

    def head_size(self, channels: int) -> tuple[int, int]:
        """(heads, channels per head) for an input of `channels`."""
        if self.head_channels is not None:
            if self.heads:
                return self.heads, self.head_channels
            if channels % self.head_channels:
                raise LayerProblem(f"head_channels={self.head_channels} does not divide {channels} channels into heads")
            return channels // self.head_channels, self.head_channels
        if not self.heads:
            raise LayerProblem(f"give heads (or head_channels), expected '{self.usage}'")
        if channels % self.heads:
            raise LayerProblem(f"{self.heads} heads do not divide {channels} channels (give head_channels=N to choose "
                               f"their size)")
        return self.heads, channels // self.heads

    def weight_count(self, shape):
        channels = shape[-1] if len(shape) == 2 else shape[0]
        heads, size = self.head_size(channels)
        inner = heads * size
        return 3 * inner * channels + 3 * inner * self.qkv_bias + inner * channels + channels * self.out_bias


@register("attention", "self_attention", "mhsa")
@dataclass
class Attention(_Attention):
    usage: ClassVar[str] = ("attention H [head_channels=D] [qkv_bias=false] [out_bias=false] [dropout=P] [scale=S] "
                            "(multi-head self-attention over a token sequence), e.g. 'attention 12'")

    def output_shape(self, shape):
        _, channels = token_sequence(shape, self.kind)
        self.head_size(channels)
        return shape

    def build(self, shape):
        from .attention_modules import SelfAttention

        heads, size = self.head_size(shape[1])
        return SelfAttention(shape[1], heads, size, self.qkv_bias, self.out_bias, self.dropout, self.scale)


@register("window_attention", "windowed_attention")
@dataclass
class WindowAttention(_Attention):
    window: tuple[int, int] = (7, 7)
    shift: tuple[int, int] = (0, 0)
    grid: bool = False
    bias: str = "table"
    cosine: bool = False
    usage: ClassVar[str] = ("window_attention H [window=7] [shift=3] [grid=true] [bias=table|mlp|none] [cosine=true] "
                            "[head_channels=D] [qkv_bias=false] [scale=S] (self-attention inside windows of a map: Swin, "
                            "Swin V2, MaxViT), e.g. 'window_attention 3 window=7 shift=3'")
    converters: ClassVar[dict[str, Callable]] = {
        **_Attention.converters, "window": pair, "shift": lambda v, what: pair(v, what, minimum=0), "grid": boolean,
        "bias": lambda v, what: choice(v, what, BIASES), "cosine": boolean,
    }

    def output_shape(self, shape):
        channels, height, width = spatial(shape, self.kind)
        self.head_size(channels)
        if any(s >= w for s, w in zip(self.shift, self.window)):
            raise LayerProblem(f"shift={self.shift[0]}x{self.shift[1]} must be smaller than the window "
                               f"{self.window[0]}x{self.window[1]} (Swin shifts by half of it)")
        if self.grid:
            if height % self.window[0] or width % self.window[1]:
                raise LayerProblem(f"a {self.window[0]}x{self.window[1]} grid does not divide the {height}x{width} map "
                                   f"evenly (grid=true spreads the window's positions over it)")
            if any(self.shift):
                raise LayerProblem("grid=true and shift: a grid is not shifted; write one or the other")
        return shape

    def build(self, shape):
        from .attention_modules import WindowAttention as Module

        heads, size = self.head_size(shape[0])
        return Module(shape[0], heads, size, self.window, self.shift, self.grid, self.bias, self.cosine, self.qkv_bias,
                      self.out_bias, self.dropout, self.scale)

    def weight_count(self, shape):
        heads, _ = self.head_size(shape[0])
        table = (2 * self.window[0] - 1) * (2 * self.window[1] - 1) * heads if self.bias == "table" else \
            (2 * 512 + 512 + 512 * heads if self.bias == "mlp" else 0)
        return super().weight_count(shape) + table + heads * self.cosine
