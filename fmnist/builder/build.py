"""Spec -> shapes, parameter counts and mult-adds per layer (LayerRecords), the expect checks, and the model."""
from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from ..errors import ExpectationError, FmnistError, SpecError, did_you_mean, one_line
from .blocks import Block, Expansion
from .fields import LayerProblem
from .layers import KINDS, Flatten, fmt_shape
from .spec import Spec, load_spec

if TYPE_CHECKING:  # torch is imported where modules are made: a shapes walk (validate, draw) needs none
    from torch import nn

# A spec beyond these is refused before any memory is allocated (a typo like 'fc 10240000').
MAX_PARAMS = 1_000_000_000  # ViT-H/14 has 633 million
MAX_ACTIVATIONS = 50_000_000  # values per image in any one layer's output
MAX_ROWS = 20_000  # summary rows once repeats are unrolled: planning stays well under a second


@dataclass
class LayerRecord:
    """One row of the summary: a module of the built Sequential and what it does to the shape."""

    index: int | str | None  # 1-based position in the spec's `layers` ('5.2' inside block 5); None: implicit flatten
    text: str
    kind: str
    group: str
    input_shape: tuple[int, ...]
    output_shape: tuple[int, ...]
    params: int
    trainable: int
    macs: int
    note: str = ""
    line: int | None = None
    depth: int = 0  # nesting inside blocks
    block: bool = False  # a block row: its params and mult-adds are its children's, summed


@dataclass
class Check:
    """One `expect` figure against what the spec builds."""

    name: str
    expected: int
    actual: int
    tolerance: float = 0.0

    @property
    def ok(self) -> bool:
        return abs(self.actual - self.expected) <= self.tolerance * self.expected

    def describe(self) -> str:
        wanted = f"~{self.expected:,} (±{self.tolerance:.0%})" if self.tolerance else f"{self.expected:,}"
        return f"{self.name}: expected {wanted}, got {self.actual:,}"


@dataclass
class Plan:
    """Everything known about a spec before any real weights exist."""

    spec: Spec
    records: list[LayerRecord]

    @property
    def params(self) -> dict[str, int]:
        leaves = [r for r in self.records if not r.block]
        groups: dict[str, int] = {}
        for record in leaves:
            if record.group:
                groups[record.group] = groups.get(record.group, 0) + record.params
        return {"total": sum(r.params for r in leaves), "trainable": sum(r.trainable for r in leaves), **groups}

    @property
    def macs(self) -> int:
        return sum(record.macs for record in self.records if not record.block)

    @property
    def fc_input(self) -> int | None:
        return next((r.input_shape[0] for r in self.records if r.kind == "fc"), None)

    def checks(self) -> list[Check]:
        """The spec's `expect` figures, each compared with what the spec builds."""
        groups = self.params
        known = {"total", "trainable", *(kind.group for kind in KINDS.values() if kind.group)}
        checks = []
        for group, figure in self.spec.expect.get("params", {}).items():
            if group not in known:
                raise SpecError(f"expect.params.{group}: no such parameter group{did_you_mean(group, known)}; groups: {', '.join(sorted(known))}",
                                self.spec.file)
            checks.append(_check(f"params.{group}", figure, groups.get(group, 0)))
        for name, actual in (("fc_input", self.fc_input), ("macs", self.macs)):
            if name in self.spec.expect:
                checks.append(_check(name, self.spec.expect[name], actual or 0))
        return checks


def _check(name: str, figure, actual: int) -> Check:
    if isinstance(figure, dict):
        return Check(name, figure["approx"], actual, figure["tolerance"])
    return Check(name, figure, actual)


def is_plugin(layer) -> bool:
    """A kind registered from outside fmnist (--plugin, $FMNIST_PLUGINS, an installed entry point)."""
    from .kinds import PLUGIN_KINDS

    return type(layer) in PLUGIN_KINDS


def plugin_source(layer) -> str:
    """Where a plug-in kind comes from, as its user knows it: 'layers.py: WideConv' or 'my_package.layers.WideConv'."""
    import sys

    module = sys.modules.get(type(layer).__module__)
    where = getattr(module, "__file__", None)
    return f"{Path(where).name}: {type(layer).__name__}" if where and type(layer).__module__.startswith("fmnist_plugin_") \
        else f"{type(layer).__module__}.{type(layer).__name__}"


SHAPES, PLAN, BUILD = "shapes", "plan", "build"  # what a walk makes: shapes only (no torch), meta modules, real ones


class _Walker:
    """Walks layer lists in order: shapes, implicit flattens, blocks and their lists, summary rows, modules.

    A shapes walk needs no torch (validate); planning builds every module on the meta device (parameter counts, no
    memory); building makes real ones.
    """

    def __init__(self, spec: Spec, mode: str):
        self.spec = spec
        self.mode = mode
        self.real = mode == BUILD
        self.records: list[LayerRecord] = []
        self.total = 0

    def module(self, layer, shape):
        """The layer's module: none on a shapes walk, on the meta device when planning."""
        if self.mode == SHAPES:
            return None
        if self.real:
            return layer.build(shape)
        import torch

        with torch.device("meta"):  # count parameters without allocating them
            return layer.build(shape)

    def walk(self, entries, shape: tuple[int, ...], depth: int = 0) -> tuple[tuple[int, ...], list[nn.Module]]:
        modules = []
        for entry in entries:
            layer = entry.layer
            if len(self.records) > MAX_ROWS:
                raise SpecError(f"expands to more than {MAX_ROWS:,} layers once repeats are unrolled",
                                self.spec.file, entry.line, entry.index, entry.text)
            if layer.flat_input and len(shape) != 1:
                flatten = Flatten()
                out = flatten.output_shape(shape)
                self.records.append(LayerRecord(None, "flatten (implicit)", "flatten", "", shape, out, 0, 0, 0,
                                                f"inserted before layer {entry.index}", entry.line, depth))
                modules.append(self.module(flatten, shape))
                shape = out
            module, shape = (self._block if isinstance(layer, Block) else self._leaf)(entry, shape, depth)
            modules.append(module)
        return shape, modules

    def _fail(self, entry, problem, shape) -> SpecError:
        return SpecError(f"{problem} (input {fmt_shape(shape)})", self.spec.file, entry.line, entry.index, entry.text)

    def _leaf(self, entry, shape, depth):
        layer = entry.layer
        if is_plugin(layer):
            return self._plugin_leaf(entry, shape, depth)
        try:
            out = layer.output_shape(shape)
            module = self.module(layer, shape)
        except LayerProblem as problem:
            raise self._fail(entry, problem, shape) from None
        return self._record(entry, shape, out, module, depth)

    def _plugin_leaf(self, entry, shape, depth):
        """A kind from a plug-in, held to what fmnist's own kinds are tested for: output_shape gives whole sizes >= 1,
        and the module build() makes turns an input of `shape` into exactly that (checked on the meta device, on
        every walk, validate's too). Whatever it raises, or a sys.exit() in it, is one line naming it and the layer."""
        layer = entry.layer
        who = f"plug-in kind '{layer.kind}' ({plugin_source(layer)})"
        step = "output_shape"
        try:
            out = layer.output_shape(shape)
            if not (isinstance(out, (tuple, list)) and out and all(type(size) is int and size >= 1 for size in out)):
                raise LayerProblem(f"{who}: output_shape gave {out!r}; every size must be a whole number >= 1")
            out = tuple(out)
            step = "build"
            import torch

            with torch.device("meta"):
                probe = layer.build(shape)
                step = "forward"
                got = tuple(probe(torch.empty(2, *shape)).shape[1:])
            if got != out:
                raise LayerProblem(f"{who}: output_shape says {fmt_shape(out)} but the module build() makes gives "
                                   f"{fmt_shape(got)}")
            step = "build"
            module = probe if self.mode == PLAN else self.module(layer, shape)
        except LayerProblem as problem:
            raise self._fail(entry, problem, shape) from None
        except (Exception, SystemExit) as error:  # the plug-in's own bug: never a traceback, never a silent exit
            raise self._fail(entry, f"{who}: its {step} failed ({type(error).__name__}: {one_line(error, 120)})", shape) from None
        return self._record(entry, shape, out, module, depth)

    def _record(self, entry, shape, out, module, depth):
        layer = entry.layer
        params = sum(p.numel() for p in module.parameters()) if module is not None else 0
        self.total += params if module is not None else layer.weight_count(shape)  # shapes only: what it can tell
        if self.total > MAX_PARAMS or math.prod(out) > MAX_ACTIVATIONS:
            what = f"{self.total:,} parameters so far" if self.total > MAX_PARAMS else f"{math.prod(out):,} values per image"
            raise SpecError(f"absurd size: {what} (limits: {MAX_PARAMS:,} parameters, {MAX_ACTIVATIONS:,} values per layer)",
                            self.spec.file, entry.line, entry.index, entry.text)
        trainable = sum(p.numel() for p in module.parameters() if p.requires_grad) if module is not None else 0
        self.records.append(LayerRecord(entry.index, entry.text, layer.kind, layer.group if params else "", shape, out,
                                        params, trainable, self.macs(module, shape),
                                        layer.note(shape, out), entry.line, depth))
        return module, out

    def macs(self, module, shape) -> int:
        if self.mode != PLAN:
            return 0
        from .counting import count_macs

        return count_macs(module, shape)

    def _block(self, entry, shape, depth):
        record = LayerRecord(entry.index, entry.text, entry.layer.kind, "", shape, shape, 0, 0, 0, "", entry.line, depth,
                             block=True)
        self.records.append(record)
        first_child = len(self.records)
        parts = []

        def walk_list(entries, list_shape):
            out, modules = self.walk(entries, list_shape, depth + 1)
            parts.append(modules)
            return out

        try:
            out = entry.layer.expand(shape, Expansion(walk_list, self.spec.defaults), entry)
        except LayerProblem as problem:
            raise self._fail(entry, problem, shape) from None
        children = [r for r in self.records[first_child:] if r.depth == depth + 1]
        record.output_shape = out
        record.params = sum(r.params for r in children)
        record.trainable = sum(r.trainable for r in children)
        record.macs = sum(r.macs for r in children)
        if self.mode == SHAPES:
            return None, out
        from torch import nn

        return entry.layer.assemble(shape, [nn.Sequential(*modules) for modules in parts]), out


def plan(spec: Spec | str | Path, mode: str = PLAN) -> Plan:
    """Infer every layer's output shape, parameters and mult-adds; raises SpecError where a layer does not fit.
    mode=SHAPES checks shapes alone, without torch (parameters and mult-adds read 0)."""
    spec = spec if isinstance(spec, Spec) else load_spec(spec)
    walker = _Walker(spec, mode)
    shape, _ = walker.walk(spec.layers, tuple(spec.input))
    if shape != (spec.classes,):
        last = spec.layers[-1]
        raise SpecError(f"the last layer outputs {fmt_shape(shape)}, but the model must output {spec.classes} values (classes: {spec.classes}); end with 'fc {spec.classes}'",
                        spec.file, last.line, last.index, last.text)
    return Plan(spec, walker.records)


def check_expectations(built: Plan) -> None:
    """Raise ExpectationError naming every `expect` figure that does not come out."""
    failed = [check for check in built.checks() if not check.ok]
    if failed:
        errors: list[FmnistError] = [ExpectationError(check.describe(), built.spec.file) for check in failed]
        errors[0].more = errors[1:]
        raise errors[0]


def build_model(spec: Spec | str | Path, check_expect: bool = True) -> nn.Sequential:
    """Build the spec as a torch.nn.Sequential (blocks are modules inside it); `expect` is checked first unless told not to."""
    built = plan(spec)  # sizes are checked before any real memory is taken
    if check_expect:
        check_expectations(built)
    _, modules = _Walker(built.spec, BUILD).walk(built.spec.layers, tuple(built.spec.input))
    from torch import nn

    return nn.Sequential(*modules)
