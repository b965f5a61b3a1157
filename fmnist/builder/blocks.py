"""Block kinds: layers made of layer lists (residual, parallel, dense, transition, repeat, named blocks).

A block says how its lists are walked (`expand`: which input shape each list gets, what comes out) and how the
built lists combine into one module (`assemble`). The builder's walker does the rest, so every layer inside a
block gets the same shape checks, parameter counts and summary rows as a top-level one.
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field, replace
from typing import Callable, ClassVar

import torch
from torch import nn

from .fields import LayerProblem, boolean, dims, integer, number
from .layers import (AvgPool, BatchNorm, Conv, Layer, LayerSpec, Shape, activation_kind, fmt_shape, one_token, register,
                     spatial)

Walk = Callable[[list, Shape], Shape]
MAX_REPEAT = 1_000  # a repeat past this is a typo (and the builder's row budget would stop it anyway)  # walk(layer specs, input shape) -> output shape


ParseList = Callable[[list, list, str], list]  # parse_list(items, path in the document, index prefix) -> LayerSpecs


def generated(entry: LayerSpec, suffix: str, text: str, layer: Layer) -> LayerSpec:
    """A LayerSpec a block makes itself (a projection, a dense layer), placed at the block's own line."""
    return LayerSpec(f"{entry.index}.{suffix}", text, entry.line, layer)


def reindexed(entries: list, old: str, new: str) -> list:
    """Copies of layer entries (and the lists inside their blocks) whose index starts `new` instead of `old`."""
    copies = []
    for entry in entries:
        index = str(entry.index)
        layer = entry.layer
        if isinstance(layer, Block) and layer.children_field:
            children = getattr(layer, layer.children_field)
            nested = [reindexed(branch, old, new) for branch in children] if layer.children_field == "branches" \
                else reindexed(children, old, new)
            layer = replace(layer, **{layer.children_field: nested})
        copies.append(replace(entry, index=new + index[len(old):] if index.startswith(old) else index, layer=layer))
    return copies


@dataclass
class Block(Layer):
    """Base of the kinds made of layer lists."""

    children_key: ClassVar[str | None] = None  # mapping form {kind: [...]} holds layer lists (else settings)
    children_field: ClassVar[str | None] = None  # the field that holds parsed layer lists, if any

    @classmethod
    def from_mapping(cls, value, parse_list: ParseList, path: list, index: str) -> "Block":
        """{kind: [layers]} or {kind: {children_key: [layers], setting: ...}} -> the block, its lists parsed."""
        settings = dict(value) if isinstance(value, dict) else {cls.children_key: value}
        lists = settings.pop(cls.children_key, None)
        list_path = [*path, cls.children_key] if isinstance(value, dict) else path
        if not isinstance(lists, list) or not lists:
            raise LayerProblem(f"expected {cls.usage}")
        return cls.from_settings({**settings, cls.children_field: cls.parse_children(lists, parse_list, list_path, index)})

    @classmethod
    def parse_children(cls, lists: list, parse_list: ParseList, path: list, index: str) -> list:
        """The block's written lists as LayerSpecs; one list of layers unless a kind says otherwise."""
        return parse_list(lists, path, index)

    def expand(self, shape: Shape, walk: Walk, entry) -> Shape:
        """Walk the block's lists with the shapes they get; return the block's output shape."""
        raise LayerProblem(f"{self.kind} has no layers")

    def assemble(self, shape: Shape, parts: list[nn.Sequential]) -> nn.Module:
        """The module made of the built lists, in the order expand() walked them."""
        return parts[0]

    def build(self, shape: Shape) -> nn.Module:
        raise TypeError("blocks are built by the builder's walker through expand() and assemble()")

    def label(self) -> str | None:
        """How the block's row reads in the summary (its layers follow, indented); None: as written."""
        return None


class ResidualModule(nn.Module):
    def __init__(self, body: nn.Module, shortcut: nn.Module | None):
        super().__init__()
        self.body = body
        self.shortcut = shortcut if shortcut is not None else nn.Identity()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.body(x) + self.shortcut(x)


class ConcatModule(nn.Module):
    def __init__(self, branches: list[nn.Module]):
        super().__init__()
        self.branches = nn.ModuleList(branches)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.cat([branch(x) for branch in self.branches], dim=1)


class DenseModule(nn.Module):
    """Each layer sees the concatenation of the block's input and every earlier layer's output."""

    def __init__(self, layers: list[nn.Module]):
        super().__init__()
        self.layers = nn.ModuleList(layers)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        for layer in self.layers:
            x = torch.cat([x, layer(x)], dim=1)
        return x


@register("residual")
@dataclass
class Residual(Block):
    body: list = field(default_factory=list)
    usage: ClassVar[str] = "{residual: [layers...]}: the body's output is added to its input"
    children_key: ClassVar[str | None] = "body"
    children_field: ClassVar[str | None] = "body"

    def expand(self, shape, walk, entry):
        out = walk(self.body, shape)
        if out == shape:
            return out
        if len(out) != 3 or len(shape) != 3:
            raise LayerProblem(f"the body turns {fmt_shape(shape)} into {fmt_shape(out)}: a residual body must keep (C, H, W)")
        stride = shape[1] // out[1] if out[1] else 0
        if not stride or shape[1] % out[1] or shape[2] % out[2] or shape[2] // out[2] != stride:
            raise LayerProblem(f"the body turns {fmt_shape(shape)} into {fmt_shape(out)}: no 1x1 projection can match "
                               f"these sizes (the body may only shrink H and W by one whole factor)")
        conv = Conv(kernel=(1, 1), filters=out[0], stride=stride, bias=False)
        projection = [generated(entry, "shortcut.1", f"shortcut: conv 1x1x{out[0]} stride={stride}", conv),
                      generated(entry, "shortcut.2", "shortcut: bn", BatchNorm())]
        walk(projection, shape)
        return out

    def label(self):
        return "residual"

    def assemble(self, shape, parts):
        return ResidualModule(parts[0], parts[1] if len(parts) > 1 else None)


@register("parallel")
@dataclass
class Parallel(Block):
    branches: list = field(default_factory=list)
    usage: ClassVar[str] = "{parallel: [[layers...], [layers...]]}: branch outputs concatenated along channels"
    children_key: ClassVar[str | None] = "branches"
    children_field: ClassVar[str | None] = "branches"

    @classmethod
    def parse_children(cls, lists, parse_list, path, index):
        """A list of branches, each a non-empty list of layers, numbered N.b.k."""
        if not all(isinstance(branch, list) and branch for branch in lists):
            raise LayerProblem(f"expected {cls.usage}")
        return [parse_list(branch, [*path, b], f"{index}.{b + 1}") for b, branch in enumerate(lists)]

    def expand(self, shape, walk, entry):
        if len(self.branches) < 2:
            raise LayerProblem("needs at least two branches, each a list of layers")
        outs = [walk(branch, shape) for branch in self.branches]
        for number_, out in enumerate(outs, 1):
            if len(out) != 3 or out[1:] != outs[0][1:]:
                raise LayerProblem(f"branches 1 and {number_} give {fmt_shape(outs[0])} and {fmt_shape(out)}: "
                                   f"branches must agree in everything but channels")
        return (sum(out[0] for out in outs), *outs[0][1:])

    def label(self):
        return f"parallel ({len(self.branches)} branches, concatenated)"

    def assemble(self, shape, parts):
        return ConcatModule(parts)


@register("repeat")
@dataclass
class Repeat(Block):
    times: int = 1
    layers: list = field(default_factory=list)
    usage: ClassVar[str] = "{repeat: {times: N, layers: [layers...]}}"
    children_key: ClassVar[str | None] = "layers"
    children_field: ClassVar[str | None] = "layers"
    converters: ClassVar[dict[str, Callable]] = {"times": lambda v, what: integer(v, what, maximum=MAX_REPEAT)}

    def expand(self, shape, walk, entry):
        for time in range(1, self.times + 1):  # rows of the r-th repetition read N.r.k, so every row has its own index
            shape = walk(reindexed(self.layers, f"{entry.index}.", f"{entry.index}.{time}."), shape)
        return shape

    def label(self):
        return f"repeat {self.times}x"

    def assemble(self, shape, parts):
        return nn.Sequential(*parts)


@dataclass
class NamedBlock(Block):
    """A use of a block defined in the spec's `blocks:` section, e.g. basic(64)."""

    layers: list = field(default_factory=list)
    kind: ClassVar[str] = "block"
    children_field: ClassVar[str | None] = "layers"

    def expand(self, shape, walk, entry):
        return walk(self.layers, shape)


@register("dense")
@dataclass
class Dense(Block):
    layers: int = 4
    growth: int = 12
    bottleneck: bool = False
    usage: ClassVar[str] = "dense NxG (N layers, growth rate G), e.g. 'dense 6x12' or {dense: {layers: 6, growth: 12}}"
    converters: ClassVar[dict[str, Callable]] = {"layers": integer, "growth": integer, "bottleneck": boolean}

    @classmethod
    def from_positional(cls, tokens):
        layers, growth = dims(one_token(cls, tokens), "dense size", 2, "NxG (layers x growth rate)")
        return {"layers": layers, "growth": growth}

    def expand(self, shape, walk, entry):
        channels, height, width = spatial(shape, self.kind)
        for number_ in range(1, self.layers + 1):
            relu = activation_kind("relu")
            steps = [("bn", BatchNorm()), ("relu", relu())]
            if self.bottleneck:  # DenseNet-B: a 1x1 conv to 4G channels first
                steps += [(f"conv 1x1x{4 * self.growth}", Conv(kernel=(1, 1), filters=4 * self.growth, bias=False)),
                          ("bn", BatchNorm()), ("relu", relu())]
            steps.append((f"conv 3x3x{self.growth} pad=1", Conv(kernel=(3, 3), filters=self.growth, pad=1, bias=False)))
            walk([generated(entry, f"{number_}.{k}", f"layer {number_}: {text}", step)
                  for k, (text, step) in enumerate(steps, 1)],
                 (channels, height, width))
            channels += self.growth
        return (channels, height, width)

    def assemble(self, shape, parts):
        return DenseModule(parts)


@register("transition")
@dataclass
class Transition(Block):
    compression: float = 0.5
    usage: ClassVar[str] = "transition [THETA], THETA in (0, 1], e.g. 'transition 0.5': bn, relu, 1x1 conv, 2x2 avgpool"
    converters: ClassVar[dict[str, Callable]] = {"compression": number}
    optional_value: ClassVar[str | None] = "compression"

    def expand(self, shape, walk, entry):
        if not 0 < self.compression <= 1:
            raise LayerProblem(f"compression must be in (0, 1], got {self.compression}")
        channels, _, _ = spatial(shape, self.kind)
        filters = max(1, math.floor(channels * self.compression))
        steps = [("bn", BatchNorm()), ("relu", activation_kind("relu")()),
                 (f"conv 1x1x{filters}", Conv(kernel=(1, 1), filters=filters, bias=False)),
                 ("avgpool 2x2", AvgPool(size=(2, 2)))]
        return walk([generated(entry, f"t.{k}", text, step) for k, (text, step) in enumerate(steps, 1)], shape)
