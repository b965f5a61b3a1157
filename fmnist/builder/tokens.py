"""Token-sequence kinds: a map to tokens and back, a class token, a learned position embedding, reading one token
out, a linear map over channels, and space-to-depth (Swin's patch merging).

A token sequence is the shape (L, C): L tokens of C channels, beside maps (C, H, W) and flat vectors (N,).
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Callable, ClassVar

from .fields import LayerProblem, boolean, integer, pair
from .layers import Layer, Shape, fmt_shape, register, spatial


def token_sequence(shape: Shape, kind: str) -> tuple[int, int]:
    """The (L, C) of a layer's input, or the problem that it is not a token sequence (and how to make one)."""
    if len(shape) == 3:
        raise LayerProblem(f"{kind} needs a token sequence (L, C), but gets the map {fmt_shape(shape)}: put "
                           f"'to_tokens' before it")
    if len(shape) != 2:
        raise LayerProblem(f"{kind} needs a token sequence (L, C), but gets the flat vector {fmt_shape(shape)}")
    length, channels = shape
    return length, channels


def channels_of(shape: Shape) -> int:
    """The channels of any shape: C of a map (C, H, W) and of tokens (L, C); the length of a flat vector."""
    return shape[-1] if len(shape) == 2 else shape[0]


@register("to_tokens", "tokens", "flatten_tokens")
@dataclass
class ToTokens(Layer):
    usage: ClassVar[str] = "to_tokens (a (C, H, W) map to H*W tokens of C channels, row by row)"

    def output_shape(self, shape):
        channels, height, width = spatial(shape, self.kind)
        return (height * width, channels)

    def build(self, shape):
        from .attention_modules import ToTokens as Module

        return Module()


@register("to_map")
@dataclass
class ToMap(Layer):
    size: tuple[int, int] | None = None
    usage: ClassVar[str] = "to_map [HxW] (H*W tokens back to a (C, H, W) map; square when no size is given), e.g. 'to_map 14x14'"
    converters: ClassVar[dict[str, Callable]] = {"size": pair}
    optional_value: ClassVar[str | None] = "size"

    def output_shape(self, shape):
        length, channels = token_sequence(shape, self.kind)
        if self.size is None:
            side = math.isqrt(length)
            if side * side != length:
                raise LayerProblem(f"{length} tokens are not a square: give the map's size, 'to_map HxW' with H*W = {length}")
            return (channels, side, side)
        if self.size[0] * self.size[1] != length:
            raise LayerProblem(f"{self.size[0]}x{self.size[1]} is {self.size[0] * self.size[1]} positions, but there are "
                               f"{length} tokens (a class token still in the sequence?)")
        return (channels, *self.size)

    def build(self, shape):
        from .attention_modules import ToMap as Module

        out = self.output_shape(shape)
        return Module(out[1], out[2])


@register("class_token", "cls_token")
@dataclass
class ClassToken(Layer):
    count: int = 1
    usage: ClassVar[str] = "class_token [N] (N learned tokens put before the sequence, a ViT's class token), e.g. 'class_token'"
    group: ClassVar[str] = "token"
    converters: ClassVar[dict[str, Callable]] = {"count": integer}
    optional_value: ClassVar[str | None] = "count"

    def output_shape(self, shape):
        length, channels = token_sequence(shape, self.kind)
        return (length + self.count, channels)

    def build(self, shape):
        from .attention_modules import ClassToken as Module

        return Module(self.count, shape[1])

    def weight_count(self, shape):
        return self.count * shape[-1]


@register("position", "pos_embed", "position_embedding")
@dataclass
class Position(Layer):
    usage: ClassVar[str] = "position (a learned embedding per token position, added: a ViT's position embedding)"
    group: ClassVar[str] = "token"

    def output_shape(self, shape):
        token_sequence(shape, self.kind)
        return shape

    def build(self, shape):
        from .attention_modules import Position as Module

        return Module(*shape)

    def weight_count(self, shape):
        return math.prod(shape)


@register("readout")
@dataclass
class Readout(Layer):
    token: int = 0
    usage: ClassVar[str] = "readout [N] (token N of the sequence, 0: the class token, as the model's features), e.g. 'readout'"
    converters: ClassVar[dict[str, Callable]] = {"token": lambda v, what: integer(v, what, minimum=0)}
    optional_value: ClassVar[str | None] = "token"

    def output_shape(self, shape):
        length, channels = token_sequence(shape, self.kind)
        if self.token >= length:
            raise LayerProblem(f"token {self.token} of a sequence of {length} (they count from 0)")
        return (channels,)

    def build(self, shape):
        from .attention_modules import Readout as Module

        return Module(self.token)


@register("linear")
@dataclass
class Linear(Layer):
    """A linear map over channels: of every token, of every position of a map, or of a flat vector."""

    units: int
    bias: bool = True
    usage: ClassVar[str] = ("linear N [bias=false] (a linear map of the channels to N, at every token or map position; "
                            "'fc N' flattens first), e.g. 'linear 3072'")
    group: ClassVar[str] = "linear"
    aliases: ClassVar[dict[str, str]] = {"out": "units", "features": "units"}
    converters: ClassVar[dict[str, Callable]] = {"units": integer, "bias": boolean}
    optional_value: ClassVar[str | None] = "units"
    required: ClassVar[tuple[str, ...]] = ("units",)

    def output_shape(self, shape):
        if len(shape) == 2:
            return (shape[0], self.units)
        return (self.units, *shape[1:])

    def build(self, shape):
        from torch import nn

        if len(shape) == 3:
            from .attention_modules import ChannelLinear

            return ChannelLinear(shape[0], self.units, bias=self.bias)
        return nn.Linear(channels_of(shape), self.units, bias=self.bias)

    def weight_count(self, shape):
        return (channels_of(shape) + self.bias) * self.units


@register("space_to_depth", "patch_merge")
@dataclass
class SpaceToDepth(Layer):
    block: int = 2
    usage: ClassVar[str] = ("space_to_depth [B] (each BxB block of positions stacked along channels: (C, H, W) to "
                            "(B*B*C, H/B, W/B), Swin's patch merging; odd sizes padded), e.g. 'space_to_depth 2'")
    converters: ClassVar[dict[str, Callable]] = {"block": integer}
    optional_value: ClassVar[str | None] = "block"

    def output_shape(self, shape):
        channels, height, width = spatial(shape, self.kind)
        b = self.block
        return (b * b * channels, -(-height // b), -(-width // b))

    def build(self, shape):
        from .attention_modules import SpaceToDepth as Module

        return Module(self.block)
