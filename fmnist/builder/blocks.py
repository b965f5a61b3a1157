"""Block kinds: layers made of layer lists (residual, parallel, add, split, gate, se, dense, transition, repeat,
named blocks).

A block says how its lists are walked (`expand`: which input shape each list gets, what comes out) and how the
built lists combine into one module (`assemble`). The builder's walker does the rest, so every layer inside a
block gets the same shape checks, parameter counts and summary rows as a top-level one.
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field, fields, replace
from typing import Callable, ClassVar

from .fields import LayerProblem, boolean, choice, dims, integer, number, probability
from .layers import (ACTIVATIONS, KINDS, AdaptiveAvgPool, AvgPool, BatchNorm, Conv, Layer, LayerSpec, Shape, fmt_shape,
                     one_token, register, spatial)

Walk = Callable[[list, Shape], Shape]  # walk(layer specs, input shape) -> output shape


@dataclass
class Expansion:
    """What a block's expand() gets from the builder: `walk` for its layer lists, and the spec's `defaults:` (owned
    by the Spec) for the layers it makes itself (a projection's bn, a transition's pool)."""

    walk: Walk
    defaults: dict = field(default_factory=dict)

    def make(self, kind: type[Layer], **settings) -> Layer:
        """A layer the block makes, with the spec's defaults for its kind under the settings given."""
        return kind.from_settings({**self.defaults.get(kind.kind, {}), **settings})
MAX_REPEAT = 1_000  # a repeat past this is a typo (and the builder's row budget would stop it anyway)


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
            more = {name: reindexed(getattr(layer, name), old, new) for name in layer.more_lists
                    if isinstance(getattr(layer, name), list)}
            layer = replace(layer, **{layer.children_field: nested}, **more)
        copies.append(replace(entry, index=new + index[len(old):] if index.startswith(old) else index, layer=layer))
    return copies


@dataclass
class Block(Layer):
    """Base of the kinds made of layer lists."""

    children_key: ClassVar[str | None] = None  # mapping form {kind: [...]} holds layer lists (else settings)
    children_field: ClassVar[str | None] = None  # the field that holds parsed layer lists, if any
    more_lists: ClassVar[tuple[str, ...]] = ()  # settings that may hold a layer list too (a residual's shortcut)

    @classmethod
    def from_mapping(cls, value, parse_list: ParseList, path: list, index: str, defaults: dict | None = None) -> "Block":
        """{kind: [layers]} or {kind: {children_key: [layers], setting: ...}} -> the block, its lists parsed; the
        spec's `defaults:` for this kind go under the settings written."""
        settings = dict(value) if isinstance(value, dict) else {cls.children_key: value}
        written = {cls.aliases.get(str(key), str(key)) for key in settings}
        settings = {**{key: item for key, item in (defaults or {}).items() if key not in written}, **settings}
        lists = settings.pop(cls.children_key, None)
        list_path = [*path, cls.children_key] if isinstance(value, dict) else path
        if lists is None and isinstance(value, dict) and cls.children_key == "branches" and value and \
                all(isinstance(item, list) for item in value.values()):  # {add: {a: [...], b: [...]}}
            raise LayerProblem(f"{cls.kind} takes a list of branches, not a mapping: write {{{cls.kind}: "
                               f"{flow_text(list(value.values()), 120)}}}")
        if lists is None and isinstance(value, dict):  # {residual: {layers: [...]}}: name the key that is wrong
            from ..errors import did_you_mean

            known = {f.name for f in fields(cls)} | set(cls.aliases)
            wrong = [str(key) for key in value if cls.aliases.get(str(key), str(key)) not in known]
            if wrong:
                raise LayerProblem(f"unknown key '{wrong[0]}' for {cls.kind}{did_you_mean(wrong[0], known)}: its "
                                   f"layers go under '{cls.children_key}', expected {cls.usage}")
        if not isinstance(lists, list) or not lists:
            raise LayerProblem(f"expected {cls.usage}")
        block = cls.from_settings({**settings, cls.children_field: cls.parse_children(lists, parse_list, list_path, index)})
        assert isinstance(block, Block)
        return block

    @classmethod
    def parse_children(cls, lists: list, parse_list: ParseList, path: list, index: str) -> list:
        """The block's written lists as LayerSpecs; one list of layers unless a kind says otherwise."""
        return parse_list(lists, path, index)

    def expand(self, shape: Shape, context: Expansion, entry) -> Shape:
        """Walk the block's lists with the shapes they get; return the block's output shape."""
        raise LayerProblem(f"{self.kind} has no layers")

    def assemble(self, shape: Shape, parts: list):
        """The module made of the built lists, in the order expand() walked them."""
        return parts[0]

    def build(self, shape: Shape):
        raise TypeError("blocks are built by the builder's walker through expand() and assemble()")

    def label(self) -> str | None:
        """How the block's row reads in the summary (its layers follow, indented); None: as written."""
        return None


def flow_text(item, limit: int = 40) -> str:
    """A layer, list or mapping as a flow-style YAML text, for a message that shows how to write it."""
    if isinstance(item, list):
        text = "[" + ", ".join(flow_text(part, limit) for part in item) + "]"
    elif isinstance(item, dict):
        text = "{" + ", ".join(f"{key}: {flow_text(value, limit) if not isinstance(value, (dict, list)) else '...'}"
                               for key, value in item.items()) + "}"
    else:
        text = str(item)
    return text if len(text) <= limit else text[:limit - 3] + "..."


def projection_stride(length: int, out: int) -> int | None:
    """The stride of a 1x1 conv (no pad) that maps `length` to `out` along one axis, or None."""
    return next((stride for stride in range(1, length + 1) if (length - 1) // stride + 1 == out), None)


SHORTCUTS = ("project", "identity", "none")


@register("residual")
@dataclass
class Residual(Block):
    body: list = field(default_factory=list)
    shortcut: str | list = "project"  # a rule, or the shortcut's own layers
    drop_path: float = 0.0
    _shortcut_first: bool = False  # the shortcut's layers written before the body: made and run first
    usage: ClassVar[str] = ("{residual: [layers...]} or {residual: {body: [...], shortcut: project|identity|none|"
                            "[layers...], drop_path: P}}: the body's output is added to its input (or to the "
                            "shortcut's)")
    children_key: ClassVar[str | None] = "body"
    children_field: ClassVar[str | None] = "body"
    more_lists: ClassVar[tuple[str, ...]] = ("shortcut",)
    converters: ClassVar[dict[str, Callable]] = {
        "shortcut": lambda v, what: v if isinstance(v, list) else choice(v, what, SHORTCUTS),
        "drop_path": lambda v, what: probability(v, "drop_path"),
    }
    aliases: ClassVar[dict[str, str]] = {"stochastic_depth": "drop_path", "droppath": "drop_path"}

    @classmethod
    def from_mapping(cls, value, parse_list, path, index, defaults=None):
        """A shortcut written as a list of layers is parsed as one (numbered N.shortcut.k); written before the body,
        its layers are made and run first (torchvision's MaxViT registers its projection first)."""
        if isinstance(value, dict) and isinstance(value.get("shortcut"), list):
            written = value["shortcut"]
            if not written:
                raise LayerProblem(f"shortcut is an empty list: give its layers, or a rule; expected {cls.usage}")
            keys = [cls.aliases.get(str(key), str(key)) for key in value]
            first = "body" in keys and keys.index("shortcut") < keys.index("body")
            rest = {key: item for key, item in value.items() if key != "shortcut"}
            block = super().from_mapping(rest, parse_list, path, index, defaults)
            assert isinstance(block, Residual)
            block.shortcut = parse_list(written, [*path, "shortcut"], f"{index}.shortcut")
            block._shortcut_first = first
            return block
        return super().from_mapping(value, parse_list, path, index, defaults)

    def expand(self, shape, context, entry):
        if isinstance(self.shortcut, list):
            return self._written_shortcut(shape, context, self.shortcut)
        out = context.walk(self.body, shape)
        # the skip this use of the block gets: 'project' makes a projection when the shape changes; 'identity' adds
        # the input only where the shape is kept (MobileNet's rule); 'none' is the body alone
        self.skip = "identity" if out == shape and self.shortcut != "none" else self.shortcut
        if self.skip != "project":
            self.skip = "none" if out != shape else self.skip
            return out
        if len(out) != 3 or len(shape) != 3:
            raise LayerProblem(f"the body turns {fmt_shape(shape)} into {fmt_shape(out)}: a residual body must keep (C, H, W)")
        strides = [projection_stride(length, size) for length, size in zip(shape[1:], out[1:])]
        if None in strides:
            raise LayerProblem(f"the body turns {fmt_shape(shape)} into {fmt_shape(out)}: no 1x1 projection can match "
                               f"these sizes (a 1x1 conv with stride S maps N to ceil(N / S)); write shortcut=none "
                               f"or an explicit {{add: [[...], [...]]}}")
        stride = "x".join(str(s) for s in strides) if strides[0] != strides[1] else strides[0]
        projection = [generated(entry, "shortcut.1", f"shortcut: conv 1x1x{out[0]} stride={stride}",
                                context.make(Conv, kernel=1, filters=out[0], stride=stride, bias=False)),
                      generated(entry, "shortcut.2", "shortcut: bn", context.make(BatchNorm))]
        context.walk(projection, shape)
        return out

    def _written_shortcut(self, shape: Shape, context: Expansion, shortcut: list) -> Shape:
        """The body and the shortcut's own layers, walked in the order they are written; their outputs are added."""
        self.skip = "written"
        lists = [shortcut, self.body] if self._shortcut_first else [self.body, shortcut]
        first, second = (context.walk(layers, shape) for layers in lists)
        if first != second:
            body_gives, shortcut_gives = (second, first) if self._shortcut_first else (first, second)
            raise LayerProblem(f"the body gives {fmt_shape(body_gives)} and the shortcut {fmt_shape(shortcut_gives)}: "
                               f"they are added, so they must give the same shape")
        return first

    def label(self):
        return "residual" + (f" (drop_path {self.drop_path:g})" if self.drop_path else "")

    def assemble(self, shape, parts):
        from .modules import ResidualModule

        if self.skip == "none":
            return parts[0]
        if self.skip == "written":
            body, shortcut = (parts[1], parts[0]) if self._shortcut_first else (parts[0], parts[1])
            return ResidualModule(body, shortcut, self.drop_path, shortcut_first=self._shortcut_first)
        return ResidualModule(parts[0], parts[1] if self.skip == "project" else None, self.drop_path)


@register("parallel")
@dataclass
class Parallel(Block):
    branches: list = field(default_factory=list)
    usage: ClassVar[str] = "{parallel: [[layers...], [layers...]]}: branch outputs concatenated along channels"
    children_key: ClassVar[str | None] = "branches"
    children_field: ClassVar[str | None] = "branches"
    joined: ClassVar[str] = "concatenated"

    @classmethod
    def parse_children(cls, lists, parse_list, path, index):
        """A list of branches, each a non-empty list of layers, numbered N.b.k."""
        for number_, branch in enumerate(lists, 1):
            if branch == []:
                raise LayerProblem(f"branch {number_} is an empty list: give it its layers ('identity' for a branch "
                                   f"that passes its input on)")
            if isinstance(branch, (str, dict)):  # one layer where a list of them was meant: write it as one
                what = f"a mapping ({flow_text(branch)})" if isinstance(branch, dict) else f"one layer ('{branch}')"
                fixed = [part if isinstance(part, list) else [part] for part in lists]
                raise LayerProblem(f"branch {number_} is {what}, not a list of layers: every branch is a list, so "
                                   f"write {{{cls.kind}: {flow_text(fixed, 120)}}}")
            if not isinstance(branch, list):
                raise LayerProblem(f"branch {number_} is {flow_text(branch)}, not a list of layers; expected {cls.usage}")
        return [parse_list(branch, [*path, b], f"{index}.{b + 1}") for b, branch in enumerate(lists)]

    def branch_inputs(self, shape: Shape) -> list[Shape]:
        """The shape each branch is given: all the block's input."""
        return [shape] * len(self.branches)

    def expand(self, shape, context, entry):
        if len(self.branches) < 2:
            raise LayerProblem("needs at least two branches, each a list of layers")
        outs = [context.walk(branch, given) for branch, given in zip(self.branches, self.branch_inputs(shape))]
        return self.join(outs)

    def join(self, outs: list[Shape]) -> Shape:
        for number_, out in enumerate(outs, 1):
            if len(out) != 3:
                what = "a token sequence" if len(out) == 2 else "a flat vector"
                raise LayerProblem(f"branch {number_} gives {fmt_shape(out)}, {what}: concatenated branches "
                                   f"must give (C, H, W) maps")
            if out[1:] != outs[0][1:]:
                raise LayerProblem(f"branches 1 and {number_} give {fmt_shape(outs[0])} and {fmt_shape(out)}: "
                                   f"branches must agree in everything but channels")
        return (sum(out[0] for out in outs), *outs[0][1:])

    def label(self):
        return f"{self.kind} ({len(self.branches)} branches, {self.joined})"

    def assemble(self, shape, parts):
        from .modules import ConcatModule

        return ConcatModule(parts)


@register("add", "sum")
@dataclass
class Add(Parallel):
    usage: ClassVar[str] = "{add: [[layers...], [layers...]]}: branch outputs added (shapes must match)"
    joined: ClassVar[str] = "added"

    def join(self, outs):
        for number_, out in enumerate(outs, 1):
            if out != outs[0]:
                raise LayerProblem(f"branches 1 and {number_} give {fmt_shape(outs[0])} and {fmt_shape(out)}: "
                                   f"added branches must give the same shape")
        return outs[0]

    def assemble(self, shape, parts):
        from .modules import SumModule

        return SumModule(parts)


@register("split")
@dataclass
class Split(Parallel):
    usage: ClassVar[str] = ("{split: [[layers...], [layers...]]}: the input's channels cut into equal parts, one per "
                            "branch, outputs concatenated (ShuffleNetV2)")
    joined: ClassVar[str] = "channels split, concatenated"

    def branch_inputs(self, shape):
        channels, height, width = spatial(shape, self.kind)
        if channels % len(self.branches):
            raise LayerProblem(f"{len(self.branches)} branches do not split {channels} channels evenly")
        return [(channels // len(self.branches), height, width)] * len(self.branches)

    def assemble(self, shape, parts):
        from .modules import SplitModule

        return SplitModule(parts)


def _gate_shape(shape: Shape, out: Shape) -> Shape:
    """A gate's output: its input's shape, where the branch's output multiplies into it channel by channel."""
    fits = len(out) == len(shape) and out[0] == shape[0] and all(o in (1, s) for o, s in zip(out[1:], shape[1:]))
    if not fits:
        raise LayerProblem(f"the gate's branch gives {fmt_shape(out)}, which does not multiply into its input "
                           f"{fmt_shape(shape)}: it must keep the channels, with H and W equal or 1")
    return shape


@register("gate")
@dataclass
class Gate(Block):
    body: list = field(default_factory=list)
    usage: ClassVar[str] = "{gate: [layers...]}: the input multiplied by the branch's output (attention, e.g. squeeze-excitation)"
    children_key: ClassVar[str | None] = "body"
    children_field: ClassVar[str | None] = "body"

    def expand(self, shape, context, entry):
        return _gate_shape(shape, context.walk(self.body, shape))

    def label(self):
        return "gate (input x branch)"

    def assemble(self, shape, parts):
        from .modules import GateModule

        return GateModule(parts[0])


@register("se", "squeeze_excitation")
@dataclass
class SqueezeExcitation(Block):
    squeeze: int = 0
    act: str = "relu"
    gate: str = "sigmoid"
    usage: ClassVar[str] = ("se S [act=relu] [gate=sigmoid|hardsigmoid]: squeeze-and-excitation to S channels "
                            "(pool, 1x1 conv to S, act, 1x1 conv back, gate, times the input), e.g. 'se 16'")
    converters: ClassVar[dict[str, Callable]] = {
        "squeeze": integer,
        "act": lambda v, what: choice(v, what, tuple(ACTIVATIONS)),
        "gate": lambda v, what: choice(v, what, tuple(ACTIVATIONS)),
    }
    optional_value: ClassVar[str | None] = "squeeze"
    required: ClassVar[tuple[str, ...]] = ("squeeze",)

    def expand(self, shape, context, entry):
        channels, _, _ = spatial(shape, self.kind)
        steps = [("adaptive_avgpool 1x1", context.make(AdaptiveAvgPool, size=1)),
                 (f"conv 1x1x{self.squeeze}", context.make(Conv, kernel=1, filters=self.squeeze, bias=True)),
                 (self.act, KINDS[self.act]()),
                 (f"conv 1x1x{channels}", context.make(Conv, kernel=1, filters=channels, bias=True)),
                 (self.gate, KINDS[self.gate]())]
        out = context.walk([generated(entry, f"se.{k}", text, step) for k, (text, step) in enumerate(steps, 1)], shape)
        return _gate_shape(shape, out)

    def label(self):
        return f"se {self.squeeze} (squeeze-excitation, {self.act}, {self.gate} gate)"

    def assemble(self, shape, parts):
        from .modules import GateModule

        return GateModule(parts[0])


@register("repeat")
@dataclass
class Repeat(Block):
    times: int = 1
    layers: list = field(default_factory=list)
    usage: ClassVar[str] = "{repeat: {times: N, layers: [layers...]}}"
    children_key: ClassVar[str | None] = "layers"
    children_field: ClassVar[str | None] = "layers"
    converters: ClassVar[dict[str, Callable]] = {"times": lambda v, what: integer(v, what, maximum=MAX_REPEAT)}

    def expand(self, shape, context, entry):
        self.repetitions = []  # the entries each repetition walked (their shortcuts decided): what a picture draws
        for time in range(1, self.times + 1):  # rows of the r-th repetition read N.r.k, so every row has its own index
            self.repetitions.append(reindexed(self.layers, f"{entry.index}.", f"{entry.index}.{time}."))
            shape = context.walk(self.repetitions[-1], shape)
        return shape

    def label(self):
        return f"repeat {self.times}x"

    def assemble(self, shape, parts):
        from torch import nn

        return nn.Sequential(*parts)


@dataclass
class NamedBlock(Block):
    """A use of a block defined in the spec's `blocks:` section, e.g. basic(64)."""

    layers: list = field(default_factory=list)
    title: str = ""  # the row's text where it is not the use as written ('basic(64, 1) x 3')
    repeated: bool = False  # 'basic(64, 1) * 3': its layers are the uses, one per repetition
    name: str = ""  # the block's name in `blocks:` (a use of it; '' for a repetition group)
    kind: ClassVar[str] = "block"
    children_field: ClassVar[str | None] = "layers"

    def expand(self, shape, context, entry):
        return context.walk(self.layers, shape)

    def label(self):
        return self.title or None


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
        if len(tokens) == 1 and str(tokens[0]).strip().isdigit():
            raise LayerProblem(f"'dense' is DenseNet's block, written 'dense NxG'; a fully connected layer (Keras' "
                               f"Dense) is 'fc {tokens[0]}'")
        layers, growth = dims(one_token(cls, tokens), "dense size", 2, "NxG (layers x growth rate)")
        return {"layers": layers, "growth": growth}

    def expand(self, shape, context, entry):
        channels, height, width = spatial(shape, self.kind)
        for number_ in range(1, self.layers + 1):
            relu = KINDS["relu"]
            steps = [("bn", context.make(BatchNorm)), ("relu", relu())]
            if self.bottleneck:  # DenseNet-B: a 1x1 conv to 4G channels first
                steps += [(f"conv 1x1x{4 * self.growth}", context.make(Conv, kernel=1, filters=4 * self.growth, bias=False)),
                          ("bn", context.make(BatchNorm)), ("relu", relu())]
            steps.append((f"conv 3x3x{self.growth} pad=1", context.make(Conv, kernel=3, filters=self.growth, pad=1, bias=False)))
            context.walk([generated(entry, f"{number_}.{k}", f"layer {number_}: {text}", step)
                  for k, (text, step) in enumerate(steps, 1)],
                 (channels, height, width))
            channels += self.growth
        return (channels, height, width)

    def assemble(self, shape, parts):
        from .modules import DenseModule

        return DenseModule(parts)


@register("transition")
@dataclass
class Transition(Block):
    compression: float = 0.5
    usage: ClassVar[str] = "transition [THETA], THETA in (0, 1], e.g. 'transition 0.5': bn, relu, 1x1 conv, 2x2 avgpool"
    converters: ClassVar[dict[str, Callable]] = {"compression": number}
    optional_value: ClassVar[str | None] = "compression"

    def expand(self, shape, context, entry):
        if not 0 < self.compression <= 1:
            raise LayerProblem(f"compression must be in (0, 1], got {self.compression}")
        channels, _, _ = spatial(shape, self.kind)
        filters = max(1, math.floor(channels * self.compression))
        steps = [("bn", context.make(BatchNorm)), ("relu", KINDS["relu"]()),
                 (f"conv 1x1x{filters}", context.make(Conv, kernel=1, filters=filters, bias=False)),
                 ("avgpool 2x2", context.make(AvgPool, size=2))]
        return context.walk([generated(entry, f"t.{k}", text, step) for k, (text, step) in enumerate(steps, 1)], shape)
