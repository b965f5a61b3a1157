"""Spec -> shapes, parameter counts and mult-adds per layer (LayerRecords), the expect checks, and the model."""
from __future__ import annotations

import math
from dataclasses import dataclass, field
from pathlib import Path

import torch
from torch import nn

from ..errors import ExpectationError, SpecError, did_you_mean
from .fields import LayerProblem
from .layers import KINDS, Flatten, fmt_shape
from .spec import Spec, load_spec

# A spec beyond these is refused before any memory is allocated (a typo like 'fc 10240000').
MAX_PARAMS = 200_000_000
MAX_ACTIVATIONS = 50_000_000  # values per image in any one layer's output


@dataclass
class LayerRecord:
    """One row of the summary: a module of the built Sequential and what it does to the shape."""

    index: int | None  # 1-based position in the spec's `layers`; None for an implicit flatten
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
    modules: list = field(default_factory=list)  # (layer, input shape) per record, to build for real

    @property
    def params(self) -> dict[str, int]:
        groups: dict[str, int] = {}
        for record in self.records:
            if record.group:
                groups[record.group] = groups.get(record.group, 0) + record.params
        return {"total": sum(r.params for r in self.records), "trainable": sum(r.trainable for r in self.records), **groups}

    @property
    def macs(self) -> int:
        return sum(record.macs for record in self.records)

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


def plan(spec: Spec | str | Path) -> Plan:
    """Infer every layer's output shape, parameters and mult-adds; raises SpecError where a layer does not fit."""
    spec = spec if isinstance(spec, Spec) else load_spec(spec)
    shape: tuple[int, ...] = tuple(spec.input)
    records, modules = [], []
    total = 0
    for entry in spec.layers:
        layer = entry.layer
        if layer.flat_input and len(shape) != 1:
            flatten = Flatten()
            out = flatten.output_shape(shape)
            records.append(LayerRecord(None, "flatten (implicit)", "flatten", "", shape, out, 0, 0, 0,
                                       f"inserted before layer {entry.index}", entry.line))
            modules.append((flatten, shape))
            shape = out
        try:
            out = layer.output_shape(shape)
            with torch.device("meta"):  # count parameters without allocating them
                module = layer.build(shape)
        except LayerProblem as problem:
            raise SpecError(f"{problem} (input {fmt_shape(shape)})", spec.file, entry.line, entry.index, entry.text) from None
        params = sum(p.numel() for p in module.parameters())
        total += params
        if total > MAX_PARAMS or math.prod(out) > MAX_ACTIVATIONS:
            what = f"{total:,} parameters so far" if total > MAX_PARAMS else f"{math.prod(out):,} values per image"
            raise SpecError(f"absurd size: {what} (limits: {MAX_PARAMS:,} parameters, {MAX_ACTIVATIONS:,} values per layer)",
                            spec.file, entry.line, entry.index, entry.text)
        trainable = sum(p.numel() for p in module.parameters() if p.requires_grad)
        records.append(LayerRecord(entry.index, entry.text, layer.kind, layer.group if params else "", shape, out,
                                   params, trainable, layer.macs(shape, out), layer.note(shape, out), entry.line))
        modules.append((layer, shape))
        shape = out
    if shape != (spec.classes,):
        last = spec.layers[-1]
        raise SpecError(f"the last layer outputs {fmt_shape(shape)}, but the model must output {spec.classes} values (classes: {spec.classes}); end with 'fc {spec.classes}'",
                        spec.file, last.line, last.index, last.text)
    return Plan(spec, records, modules)


def check_expectations(built: Plan) -> None:
    """Raise ExpectationError naming every `expect` figure that does not come out."""
    failed = [check for check in built.checks() if not check.ok]
    if failed:
        errors = [ExpectationError(check.describe(), built.spec.file) for check in failed]
        errors[0].more = errors[1:]
        raise errors[0]


def build_model(spec: Spec | str | Path, check_expect: bool = True) -> nn.Sequential:
    """Build the spec as a torch.nn.Sequential; its `expect` figures are checked first unless told not to."""
    built = plan(spec)
    if check_expect:
        check_expectations(built)
    return nn.Sequential(*(layer.build(shape) for layer, shape in built.modules))
