"""Layer kinds: each is one registered unit saying how it is written, what shape it returns, how it is built.

Adding a kind is adding one class with @register; nothing else changes.
"""
from __future__ import annotations

import math
from abc import ABC, abstractmethod
from dataclasses import dataclass
from dataclasses import fields as dataclass_fields
from typing import TYPE_CHECKING, Callable, ClassVar

if TYPE_CHECKING:
    import torch

from .fields import LayerProblem, boolean, choice, dims, fraction, integer, number, padding, pair, positive, probability


class _LazyTorchNN:
    """torch.nn, imported on first use: settings and shapes are checked without torch (validate, editors)."""

    def __getattr__(self, name: str):
        from torch import nn as real

        return getattr(real, name)


nn = _LazyTorchNN()

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
    """The (C, H, W) of a layer's input, or the problem that it is flat already, or a token sequence."""
    if len(shape) == 2:
        raise LayerProblem(f"{kind} needs a (C, H, W) map, but gets the token sequence {fmt_shape(shape)}: put "
                           f"'to_map HxW' before it")
    if len(shape) != 3:
        raise LayerProblem(f"{kind} needs a (C, H, W) input, but gets {fmt_shape(shape)} (already flat)")
    channels, height, width = shape
    return channels, height, width


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
    required: ClassVar[tuple[str, ...]] = ()  # settings with a placeholder default that must still be given

    @classmethod
    def from_positional(cls, tokens: list[str]) -> dict:
        """Map the compact form's positional tokens ('3x3x32') to settings; default: at most the optional value."""
        if len(tokens) > (1 if cls.optional_value else 0):
            raise LayerProblem(f"expected '{cls.usage}'" if cls.optional_value else f"takes no size, expected '{cls.usage}'")
        return {cls.optional_value: tokens[0]} if tokens else {}

    @classmethod
    def from_settings(cls, settings: dict) -> "Layer":
        """Check and convert raw settings (from either form) into a layer."""
        known = {f.name for f in dataclass_fields(cls) if not f.name.startswith("_")}  # _name: set by the kind itself
        values: dict = {}
        written: dict[str, str] = {}  # setting -> the key it was written as (an alias, or its own name)
        for key, raw in settings.items():
            name = cls.aliases.get(str(key), str(key))
            if name not in known:
                from ..errors import did_you_mean

                allowed = ", ".join(sorted(known)) or "none"
                raise LayerProblem(f"unknown setting '{key}' for {cls.kind}{did_you_mean(key, known)}; allowed: {allowed}")
            if name in written:  # 'pad=1 padding=2': one setting under two names is refused, not the last one taken
                raise LayerProblem(f"'{name}' is given twice ({written[name]}={settings[written[name]]} and {key}={raw})")
            written[name] = key
            values[name] = cls.converters[name](raw, name) if name in cls.converters else raw
        missing = [name for name in cls.required if name not in values]
        if missing:
            raise LayerProblem(f"missing {', '.join(missing)}, expected '{cls.usage}'")
        try:
            return cls(**values)
        except TypeError:
            missing = sorted(known - set(values))
            raise LayerProblem(f"missing {', '.join(missing)}, expected '{cls.usage}'") from None

    def output_shape(self, shape: Shape) -> Shape:
        return shape

    @abstractmethod
    def build(self, shape: Shape) -> "torch.nn.Module":
        """The module for an input of `shape` (already checked by output_shape)."""

    def note(self, shape: Shape, out: Shape) -> str:
        """A remark shown in the summary (e.g. pooling that rounded an odd size up)."""
        return ""

    def weight_count(self, shape: Shape) -> int:
        """This layer's parameters for an input of `shape`, worked out without torch by the kinds whose size can run
        away (conv, fc, linear, attention, ...): a shapes-only walk (validate) refuses an absurd model as planning does. 0: counted by torch."""
        return 0


def conv_extent(length: int, kernel: int, stride: int, pad: int, dilation: int) -> int:
    """Output length of a convolution along one axis (PyTorch's formula)."""
    return (length + 2 * pad - dilation * (kernel - 1) - 1) // stride + 1


@dataclass
class _Convolution(Layer):
    """What plain and depthwise convolutions share: kernel, stride, pad, dilation, bias, and the output size."""

    kernel: tuple[int, int] = (1, 1)
    stride: tuple[int, int] = (1, 1)
    pad: tuple[int, int] | str = (0, 0)
    dilation: tuple[int, int] = (1, 1)
    bias: bool = True
    group: ClassVar[str] = "conv"
    aliases: ClassVar[dict[str, str]] = {"padding": "pad", "size": "kernel"}
    converters: ClassVar[dict[str, Callable]] = {
        "kernel": pair,
        "stride": pair,
        "pad": padding,
        "dilation": pair,
        "bias": boolean,
    }

    def out_size(self, height: int, width: int) -> tuple[int, int]:
        if self.pad == "same":
            if self.stride != (1, 1):
                raise LayerProblem("pad=same needs stride=1 (as in PyTorch); give pad=N for strided convs")
            return height, width
        pad = self.pad if isinstance(self.pad, tuple) else (0, 0)  # 'same' returned above
        out = (conv_extent(height, self.kernel[0], self.stride[0], pad[0], self.dilation[0]),
               conv_extent(width, self.kernel[1], self.stride[1], pad[1], self.dilation[1]))
        if min(out) < 1:
            raise LayerProblem(
                f"shrinks the {height}x{width} input below 1x1: the {self.kernel[0]}x{self.kernel[1]} kernel is larger than the (padded) input")
        return out

    def conv2d(self, channels: int, filters: int, groups: int):
        return nn.Conv2d(channels, filters, self.kernel, stride=self.stride, padding=self.pad, dilation=self.dilation,
                         groups=groups, bias=self.bias)


@register("conv")
@dataclass
class Conv(_Convolution):
    filters: int = 0
    groups: int = 1
    usage: ClassVar[str] = ("conv KxKxF [stride=S] [pad=P|same] [groups=G] [dilation=D] [bias=false] (K, S, P, D may be "
                            "HxW), e.g. 'conv 3x3x32' or 'conv 1x7x192 pad=0x3'")
    aliases: ClassVar[dict[str, str]] = {**_Convolution.aliases, "channels": "filters", "out": "filters", "group": "groups"}
    converters: ClassVar[dict[str, Callable]] = {**_Convolution.converters, "filters": integer, "groups": integer}
    required: ClassVar[tuple[str, ...]] = ("kernel", "filters")

    @classmethod
    def from_positional(cls, tokens):
        kh, kw, filters = dims(one_token(cls, tokens), "conv size", 3, "KxKxF (kernel height x kernel width x filters)")
        return {"kernel": (kh, kw), "filters": filters}

    def output_shape(self, shape):
        channels, height, width = spatial(shape, "conv")
        for what, count in (("input channels", channels), ("filters", self.filters)):
            if count % self.groups:
                raise LayerProblem(f"groups={self.groups} does not divide the {count} {what} (for a depthwise conv "
                                   f"write 'dwconv {self.kernel[0]}x{self.kernel[1]}')")
        return (self.filters, *self.out_size(height, width))

    def build(self, shape):
        return self.conv2d(shape[0], self.filters, self.groups)

    def weight_count(self, shape):
        return self.filters * (shape[0] // self.groups) * self.kernel[0] * self.kernel[1] + self.filters * self.bias


@register("dwconv", "depthwise")
@dataclass
class DepthwiseConv(_Convolution):
    """A conv with one filter group per input channel (groups = channels), `multiplier` filters each."""

    multiplier: int = 1
    usage: ClassVar[str] = "dwconv KxK [stride=S] [pad=P|same] [dilation=D] [multiplier=M] [bias=false], e.g. 'dwconv 3x3 pad=1'"
    converters: ClassVar[dict[str, Callable]] = {**_Convolution.converters, "multiplier": integer}
    required: ClassVar[tuple[str, ...]] = ("kernel",)

    @classmethod
    def from_positional(cls, tokens):
        return {"kernel": pair(one_token(cls, tokens), "dwconv size")}

    def output_shape(self, shape):
        channels, height, width = spatial(shape, self.kind)
        return (channels * self.multiplier, *self.out_size(height, width))

    def build(self, shape):
        return self.conv2d(shape[0], shape[0] * self.multiplier, shape[0])

    def weight_count(self, shape):
        filters = shape[0] * self.multiplier
        return filters * self.kernel[0] * self.kernel[1] + filters * self.bias


@dataclass
class _Pool(Layer):
    size: tuple[int, int]
    stride: int | None = None
    round: str = "ceil"
    pad: int = 0
    module: ClassVar[str] = "MaxPool2d"  # its class in torch.nn
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
        return getattr(nn, self.module)(self.size, stride=self._strides(), padding=self.pad, ceil_mode=self.round == "ceil")


@register("pool", "maxpool")
@dataclass
class MaxPool(_Pool):
    usage: ClassVar[str] = "pool KxK [stride=N] [pad=N] [round=ceil|floor], e.g. 'pool 2x2'"


@register("avgpool")
@dataclass
class AvgPool(_Pool):
    usage: ClassVar[str] = "avgpool KxK [stride=N] [pad=N] [round=ceil|floor], e.g. 'avgpool 2x2'"
    module: ClassVar[str] = "AvgPool2d"


@register("bn", "batchnorm")
@dataclass
class BatchNorm(Layer):
    eps: float = 1e-5
    momentum: float = 0.1
    usage: ClassVar[str] = "bn [eps=E] [momentum=M], e.g. 'bn' or 'bn eps=0.001 momentum=0.01'"
    group: ClassVar[str] = "bn"
    converters: ClassVar[dict[str, Callable]] = {"eps": positive, "momentum": fraction}

    def output_shape(self, shape):
        if len(shape) == 2:
            raise LayerProblem(f"bn on the token sequence {fmt_shape(shape)}: normalise tokens with 'ln' (layer norm)")
        return shape

    def build(self, shape):
        norm = nn.BatchNorm2d if len(shape) == 3 else nn.BatchNorm1d
        return norm(shape[0], eps=self.eps, momentum=self.momentum)


@register("ln", "layernorm2d")
@dataclass
class LayerNorm(Layer):
    """LayerNorm over the channels at each position of a (C, H, W) input (ConvNeXt's LayerNorm2d), of each token, or over
    a flat vector."""

    eps: float = 1e-5
    usage: ClassVar[str] = "ln [eps=E] (layer norm over the channels at each position or token), e.g. 'ln eps=1e-6'"
    group: ClassVar[str] = "norm"
    converters: ClassVar[dict[str, Callable]] = {"eps": positive}

    def build(self, shape):
        if len(shape) == 3:
            from .modules import ChannelLayerNorm

            return ChannelLayerNorm(shape[0], eps=self.eps)
        return nn.LayerNorm(shape[-1], eps=self.eps)


@register("scale", "layer_scale", "layerscale")
@dataclass
class Scale(Layer):
    """A learnable factor per channel, starting at `init` (layer scale)."""

    init: float = 1e-6
    usage: ClassVar[str] = "scale [INIT] (a learnable factor per channel, layer scale), e.g. 'scale 1e-6'"
    group: ClassVar[str] = "scale"
    converters: ClassVar[dict[str, Callable]] = {"init": number}
    optional_value: ClassVar[str | None] = "init"

    def build(self, shape):
        from .modules import LayerScale

        return LayerScale((shape[0], 1, 1) if len(shape) == 3 else (shape[-1],), self.init)


@register("shuffle", "channel_shuffle")
@dataclass
class Shuffle(Layer):
    groups: int = 2
    usage: ClassVar[str] = "shuffle G (channel shuffle over G groups, ShuffleNet), e.g. 'shuffle 2'"
    converters: ClassVar[dict[str, Callable]] = {"groups": integer}
    optional_value: ClassVar[str | None] = "groups"

    def output_shape(self, shape):
        channels, _, _ = spatial(shape, self.kind)
        if channels % self.groups:
            raise LayerProblem(f"{self.groups} groups do not divide {channels} channels")
        return shape

    def build(self, shape):
        from .modules import ChannelShuffle

        return ChannelShuffle(self.groups)


@register("identity")
@dataclass
class Identity(Layer):
    usage: ClassVar[str] = "identity (passes its input on; a branch that does nothing)"

    def build(self, shape):
        return nn.Identity()


@register("adaptive_avgpool", "adaptiveavgpool")
@dataclass
class AdaptiveAvgPool(Layer):
    size: tuple[int, int] = (1, 1)
    usage: ClassVar[str] = "adaptive_avgpool NxN (average pooling to an NxN output whatever the input), e.g. 'adaptive_avgpool 7x7'"
    converters: ClassVar[dict[str, Callable]] = {"size": pair}
    optional_value: ClassVar[str | None] = "size"

    def output_shape(self, shape):
        return (spatial(shape, self.kind)[0], *self.size)

    def build(self, shape):
        return nn.AdaptiveAvgPool2d(self.size)


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


@register("fc")
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

    def weight_count(self, shape):
        return shape[0] * self.units + self.units * self.bias


@dataclass
class _Activation(Layer):
    """An element-wise activation: `module` names its torch.nn class."""

    module: ClassVar[str] = "ReLU"  # its class in torch.nn

    def build(self, shape):
        return getattr(nn, self.module)()


def _activation(name: str, module: str) -> None:
    register(name)(type(name, (_Activation,), {"usage": name, "module": module}))


ACTIVATIONS = {
    "relu": "ReLU", "relu6": "ReLU6", "gelu": "GELU", "silu": "SiLU", "mish": "Mish", "tanh": "Tanh",
    "sigmoid": "Sigmoid", "elu": "ELU", "softplus": "Softplus", "hardswish": "Hardswish", "hardsigmoid": "Hardsigmoid",
}
for _name, _module in ACTIVATIONS.items():
    _activation(_name, _module)


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
    usage: ClassVar[str] = "gap (global average pooling: (C, H, W) -> (C,); the mean of a token sequence (L, C) -> (C,))"

    def output_shape(self, shape):
        return (shape[1],) if len(shape) == 2 else (spatial(shape, "gap")[0],)

    def build(self, shape):
        if len(shape) == 2:
            from .attention_modules import TokenMean

            return TokenMean()
        return nn.Sequential(nn.AdaptiveAvgPool2d(1), nn.Flatten())


@register("gn", "groupnorm")
@dataclass
class GroupNorm(Layer):
    """Group norm over (C, H, W), or over a flat vector's features in G groups."""

    groups: int = 32
    eps: float = 1e-5
    usage: ClassVar[str] = "gn G [eps=E] (group norm with G groups; G must divide the channels or features), e.g. 'gn 8'"
    group: ClassVar[str] = "norm"
    converters: ClassVar[dict[str, Callable]] = {"groups": integer, "eps": positive}
    optional_value: ClassVar[str | None] = "groups"

    def output_shape(self, shape):
        if len(shape) == 2:
            raise LayerProblem(f"gn on the token sequence {fmt_shape(shape)}: normalise tokens with 'ln' (layer norm)")
        if shape[0] % self.groups:
            raise LayerProblem(f"{self.groups} groups do not divide {shape[0]} channels")
        if math.prod(shape) // self.groups < 2:  # one value per group: no spread to normalise (torch refuses it)
            fix = "use fewer groups" if self.groups > 1 else "a norm needs at least 2 values"
            raise LayerProblem(f"each of the {self.groups} group(s) holds one value of the {fmt_shape(shape)} input: "
                               f"nothing to normalise; {fix}")
        return shape

    def build(self, shape):
        return nn.GroupNorm(self.groups, shape[0], eps=self.eps)
