"""Layer kinds: each is one registered unit saying how it is written, what shape it returns, how it is built.

Adding a kind is adding one class with @register; nothing else changes.
"""
from __future__ import annotations

import math
from abc import ABC, abstractmethod
from dataclasses import dataclass
from dataclasses import fields as dataclass_fields
from typing import Callable, ClassVar

from torch import nn

from .fields import LayerProblem, boolean, choice, dims, integer, number, pair, probability

Shape = tuple[int, ...]
KINDS: dict[str, type["Layer"]] = {}


def register(*names: str):
    """Class decorator: make a layer kind available in specs under `names`; the first is its kind.

    A name is registered once: a second class for it (a plug-in shadowing a kind, two kinds sharing an alias) is
    refused at import, not left to whichever registered last.
    """

    def add(cls):
        for name in names:
            if name in KINDS:
                raise ValueError(f"layer kind name '{name}' is registered twice: by {KINDS[name].__name__} and {cls.__name__}")
        for name in names:
            KINDS[name] = cls
        cls.kind = names[0]
        return cls

    return add


def spatial(shape: Shape, kind: str) -> tuple[int, int, int]:
    """The (C, H, W) of a layer's input, or the problem that it is flat already."""
    if len(shape) != 3:
        raise LayerProblem(f"{kind} needs a (C, H, W) input, but gets {fmt_shape(shape)} (already flat)")
    return shape  # type: ignore[return-value]


def one_token(cls, tokens: list[str]) -> str:
    """The compact form's one size token ('conv 3x3x32' -> '3x3x32'), or the problem that there is not exactly one."""
    if len(tokens) != 1:
        raise LayerProblem(f"expected '{cls.usage}'")
    return tokens[0]


@dataclass
class LayerSpec:
    """One entry of a layer list, as written and as understood."""

    index: int | str  # 1-based position in the spec's list; '5.2' for the 2nd layer inside layer 5
    text: str  # as the user wrote it
    line: int | None
    layer: "Layer"


def fmt_shape(shape: Shape) -> str:
    return "(" + ", ".join(str(n) for n in shape) + ("," if len(shape) == 1 else "") + ")"


@dataclass
class Layer(ABC):
    """Base of all kinds. Subclasses are dataclasses whose fields are the layer's settings."""

    kind: ClassVar[str] = ""  # set by @register: the first name it is registered under
    usage: ClassVar[str] = ""  # how the compact form is written, quoted in error messages
    group: ClassVar[str] = ""  # parameter group in the summary ('' = holds no parameters)
    flat_input: ClassVar[bool] = False  # an implicit flatten is put before it on a (C, H, W) input
    converters: ClassVar[dict[str, Callable]] = {}
    aliases: ClassVar[dict[str, str]] = {}
    optional_value: ClassVar[str | None] = None  # the setting a lone value sets ('dropout 0.3' -> p)

    @classmethod
    def from_positional(cls, tokens: list[str]) -> dict:
        """Map the compact form's positional tokens ('3x3x32') to settings; default: at most the optional value."""
        if len(tokens) > (1 if cls.optional_value else 0):
            raise LayerProblem(f"expected '{cls.usage}'" if cls.optional_value else f"takes no size, expected '{cls.usage}'")
        return {cls.optional_value: tokens[0]} if tokens else {}

    @classmethod
    def from_settings(cls, settings: dict) -> "Layer":
        """Check and convert raw settings (from either form) into a layer."""
        known = {f.name for f in dataclass_fields(cls)}
        values = {}
        for key, raw in settings.items():
            name = cls.aliases.get(str(key), str(key))
            if name not in known:
                from ..errors import did_you_mean

                allowed = ", ".join(sorted(known)) or "none"
                raise LayerProblem(f"unknown setting '{key}' for {cls.kind}{did_you_mean(key, known)}; allowed: {allowed}")
            values[name] = cls.converters[name](raw, name) if name in cls.converters else raw
        try:
            return cls(**values)
        except TypeError:
            missing = sorted(known - set(values))
            raise LayerProblem(f"missing {', '.join(missing)}, expected '{cls.usage}'") from None

    def output_shape(self, shape: Shape) -> Shape:
        return shape

    @abstractmethod
    def build(self, shape: Shape) -> nn.Module:
        """The module for an input of `shape` (already checked by output_shape)."""

    def note(self, shape: Shape, out: Shape) -> str:
        """A remark shown in the summary (e.g. pooling that rounded an odd size up)."""
        return ""


@register("conv")
@dataclass
class Conv(Layer):
    kernel: tuple[int, int]
    filters: int
    stride: int = 1
    pad: int | str = 0
    bias: bool = True
    usage: ClassVar[str] = "conv KxKxF [stride=N] [pad=N|same], e.g. 'conv 3x3x32'"
    group: ClassVar[str] = "conv"
    aliases: ClassVar[dict[str, str]] = {"padding": "pad", "size": "kernel", "channels": "filters", "out": "filters"}
    converters: ClassVar[dict[str, Callable]] = {
        "kernel": pair,
        "filters": integer,
        "stride": integer,
        "pad": lambda v, what: "same" if str(v).strip().lower() == "same" else integer(v, what, minimum=0),
        "bias": boolean,
    }

    @classmethod
    def from_positional(cls, tokens):
        kh, kw, filters = dims(one_token(cls, tokens), "conv size", 3, "KxKxF (kernel height x kernel width x filters)")
        return {"kernel": (kh, kw), "filters": filters}

    def output_shape(self, shape):
        channels, height, width = spatial(shape, "conv")
        if self.pad == "same":
            if self.stride != 1:
                raise LayerProblem("pad=same needs stride=1 (as in PyTorch); give pad=N for strided convs")
            return (self.filters, height, width)
        out_h = (height + 2 * self.pad - self.kernel[0]) // self.stride + 1
        out_w = (width + 2 * self.pad - self.kernel[1]) // self.stride + 1
        if out_h < 1 or out_w < 1:
            raise LayerProblem(
                f"shrinks the {height}x{width} input below 1x1: the {self.kernel[0]}x{self.kernel[1]} kernel is larger than the (padded) input")
        return (self.filters, out_h, out_w)

    def build(self, shape):
        return nn.Conv2d(shape[0], self.filters, self.kernel, stride=self.stride, padding=self.pad, bias=self.bias)


@dataclass
class _Pool(Layer):
    size: tuple[int, int]
    stride: int | None = None
    round: str = "ceil"
    pad: int = 0
    module: ClassVar[type] = nn.MaxPool2d
    converters: ClassVar[dict[str, Callable]] = {
        "size": pair,
        "stride": integer,
        "pad": lambda v, what: integer(v, what, minimum=0),
        "round": lambda v, what: choice(v, what, ("ceil", "floor")),
    }
    aliases: ClassVar[dict[str, str]] = {"kernel": "size"}

    @classmethod
    def from_positional(cls, tokens):
        return {"size": pair(one_token(cls, tokens), f"{cls.kind} size")}

    def _strides(self) -> tuple[int, int]:
        return (self.stride, self.stride) if self.stride else self.size

    def _extent(self, length: int, size: int, stride: int, ceil: bool) -> int:
        steps = (length + 2 * self.pad - size + (stride - 1 if ceil else 0)) // stride
        # PyTorch's rule: with ceil, the last window must start inside the input (or its left padding).
        if ceil and steps * stride >= length + self.pad:
            steps -= 1
        return steps + 1

    def output_shape(self, shape):
        channels, height, width = spatial(shape, self.kind)
        if 2 * self.pad > min(self.size):
            raise LayerProblem(f"pad={self.pad} is more than half the {self.size[0]}x{self.size[1]} window (PyTorch's limit)")
        if height + 2 * self.pad < self.size[0] or width + 2 * self.pad < self.size[1]:
            raise LayerProblem(f"shrinks the {height}x{width} input below 1x1: the window {self.size[0]}x{self.size[1]} is larger")
        stride_h, stride_w = self._strides()
        ceil = self.round == "ceil"
        return (channels, self._extent(height, self.size[0], stride_h, ceil),
                self._extent(width, self.size[1], stride_w, ceil))

    def note(self, shape, out):
        stride_h, stride_w = self._strides()
        floor = (self._extent(shape[1], self.size[0], stride_h, False), self._extent(shape[2], self.size[1], stride_w, False))
        if self.round == "ceil" and floor != tuple(out[1:]):
            return f"odd {shape[1]}x{shape[2]} rounded up to {out[1]}x{out[2]} (round=ceil)"
        return ""

    def build(self, shape):
        return self.module(self.size, stride=self._strides(), padding=self.pad, ceil_mode=self.round == "ceil")


@register("pool", "maxpool")
@dataclass
class MaxPool(_Pool):
    usage: ClassVar[str] = "pool KxK [stride=N] [pad=N] [round=ceil|floor], e.g. 'pool 2x2'"


@register("avgpool")
@dataclass
class AvgPool(_Pool):
    usage: ClassVar[str] = "avgpool KxK [stride=N] [pad=N] [round=ceil|floor], e.g. 'avgpool 2x2'"
    module: ClassVar[type] = nn.AvgPool2d


@register("bn", "batchnorm")
@dataclass
class BatchNorm(Layer):
    usage: ClassVar[str] = "bn"
    group: ClassVar[str] = "bn"

    def build(self, shape):
        return nn.BatchNorm2d(shape[0]) if len(shape) == 3 else nn.BatchNorm1d(shape[0])


@register("dropout")
@dataclass
class Dropout(Layer):
    p: float = 0.5
    usage: ClassVar[str] = "dropout [P], P in [0, 1), e.g. 'dropout 0.5'"
    converters: ClassVar[dict[str, Callable]] = {"p": lambda v, what: probability(v, "dropout p")}
    optional_value: ClassVar[str | None] = "p"

    def build(self, shape):
        return nn.Dropout(self.p)


@register("flatten")
@dataclass
class Flatten(Layer):
    usage: ClassVar[str] = "flatten"

    def output_shape(self, shape):
        return (math.prod(shape),)

    def build(self, shape):
        return nn.Flatten()


@register("fc", "linear")
@dataclass
class FullyConnected(Layer):
    units: int
    inputs: int | None = None
    bias: bool = True
    usage: ClassVar[str] = "fc N or fc INxN, e.g. 'fc 1024' or 'fc 3200x1024'"
    group: ClassVar[str] = "fc"
    flat_input: ClassVar[bool] = True
    aliases: ClassVar[dict[str, str]] = {"out": "units", "in": "inputs", "features": "units"}
    converters: ClassVar[dict[str, Callable]] = {"units": integer, "inputs": integer, "bias": boolean}

    @classmethod
    def from_positional(cls, tokens):
        text = str(one_token(cls, tokens))
        if "x" in text.lower():
            inputs, units = dims(text, "fc size", 2, "IN x N")
            return {"inputs": inputs, "units": units}
        return {"units": text}

    def output_shape(self, shape):
        if self.inputs is not None and self.inputs != shape[0]:
            raise LayerProblem(f"is written with {self.inputs} inputs, but the layer before gives {shape[0]}")
        return (self.units,)

    def build(self, shape):
        return nn.Linear(shape[0], self.units, bias=self.bias)


@dataclass
class _Activation(Layer):
    """An element-wise activation; `factory` makes its module."""

    factory: ClassVar[Callable[..., nn.Module]] = nn.ReLU

    def build(self, shape):
        return self.factory()


def _activation(name: str, factory: Callable[..., nn.Module]) -> None:
    register(name)(type(name, (_Activation,), {"usage": name, "factory": staticmethod(factory)}))


def activation_kind(name: str) -> type[Layer]:
    """The registered class of an activation (blocks use relu inside them)."""
    return KINDS[name]


for _name, _factory in {
    "relu": nn.ReLU, "relu6": nn.ReLU6, "gelu": nn.GELU, "silu": nn.SiLU, "mish": nn.Mish,
    "tanh": nn.Tanh, "sigmoid": nn.Sigmoid, "elu": nn.ELU, "softplus": nn.Softplus, "hardswish": nn.Hardswish,
}.items():
    _activation(_name, _factory)


@register("leaky_relu", "leakyrelu")
@dataclass
class LeakyReLU(Layer):
    slope: float = 0.01
    usage: ClassVar[str] = "leaky_relu [SLOPE], e.g. 'leaky_relu 0.1'"
    converters: ClassVar[dict[str, Callable]] = {"slope": number}
    optional_value: ClassVar[str | None] = "slope"

    def build(self, shape):
        return nn.LeakyReLU(self.slope)


@register("gap")
@dataclass
class GlobalAvgPool(Layer):
    usage: ClassVar[str] = "gap (global average pooling: (C, H, W) -> (C,))"

    def output_shape(self, shape):
        return (spatial(shape, "gap")[0],)

    def build(self, shape):
        return nn.Sequential(nn.AdaptiveAvgPool2d(1), nn.Flatten())


@register("gn", "groupnorm")
@dataclass
class GroupNorm(Layer):
    groups: int = 32
    usage: ClassVar[str] = "gn G (group norm with G groups; G must divide the channels), e.g. 'gn 8'"
    group: ClassVar[str] = "norm"
    converters: ClassVar[dict[str, Callable]] = {"groups": integer}
    optional_value: ClassVar[str | None] = "groups"

    def output_shape(self, shape):
        if shape[0] % self.groups:
            raise LayerProblem(f"{self.groups} groups do not divide {shape[0]} channels")
        return shape

    def build(self, shape):
        return nn.GroupNorm(self.groups, shape[0])
