"""A spec as a picture: a Graphviz graph whose boxes are layers, with blocks as framed groups and residual, parallel,
split, add and gate blocks drawn as the branches they are (Keras' plot_model is the model).

A deep net must fit a screen, and show its stages at a glance: by default the network is drawn as its uses of named
blocks, one box each (a block used N times in a row, `cnblock(384, ...) * 9`, is one box that says × 9 and the
arguments of its first and last use), and each block's layers are drawn once, beside it, in a frame of their own,
as its first use builds them. `expand` draws everything in place, every repetition. Boxes carry their output shapes
and, where torch is there to count them, their parameters. Each frame's edges start inside it, from one entry
point, so no edge runs through a frame's title.
"""
from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

from ..errors import UsageError
from .blocks import Add, Gate, NamedBlock, Parallel, Repeat, Residual, Split
from .build import PLAN, SHAPES, Plan, plan
from .layers import fmt_shape

FORMATS = ("svg", "png", "pdf", "dot")
RENDER_TIMEOUT = 120  # seconds: dot lays out even the largest zoo model in a few
JOINT = {"shape": "ellipse", "style": "filled", "fillcolor": "gray90"}


def _quote(text: str) -> str:
    return '"' + text.replace("\\", "\\\\").replace('"', '\\"') + '"'


def _params(count: int) -> str:
    return f"{count:,} params" if count < 10_000_000 else f"{count / 1e6:.1f}M params"


class _Graph:
    """DOT text built while walking the spec's layer tree next to the plan's rows (for shapes and parameters)."""

    def __init__(self, built: Plan, expand: bool, counted: bool):
        self.rows = {str(record.index): record for record in built.records if record.index is not None}
        self.expand, self.counted = expand, counted
        self.definitions = built.spec.document.get("blocks", {}) if isinstance(built.spec.document, dict) else {}
        self.lines: list[str] = []  # nodes, inside the clusters they belong to
        self.edge_lines: list[str] = []  # edges, written at the top level: an edge inside a cluster pulls its ends in
        self.count = 0
        self.uses: dict[str, tuple[str, NamedBlock]] = {}  # block name -> its first use (text, block), drawn once beside

    def node(self, label: str, **style) -> str:
        self.count += 1
        name = f"n{self.count}"
        attributes = ", ".join(f"{key}={_quote(str(value))}" for key, value in {"label": label, **style}.items())
        self.lines.append(f"{name} [{attributes}];")
        return name

    def edges(self, sources: list[str], target: str, **style) -> None:
        attributes = " [" + ", ".join(f"{k}={_quote(str(v))}" for k, v in style.items()) + "]" if style else ""
        self.edge_lines += [f"{source} -> {target}{attributes};" for source in sources]

    def described(self, text: str, index: str) -> str:
        """A box's or frame's label: what it is, its output shape, its parameters (where counted and any)."""
        row = self.rows.get(index)
        if row is None:
            return text
        count = f"\n{_params(row.params)}" if self.counted and row.params else ""
        return f"{text}\n{fmt_shape(row.output_shape)}{count}"

    def leaf(self, index: str, text: str, sources: list[str]) -> list[str]:
        node = self.node(self.described(text, index))
        self.edges(sources, node)
        return [node]

    def sequence(self, entries: list, sources: list[str]) -> list[str]:
        for entry in entries:
            sources = self.entry(entry, sources)
        return sources

    def cluster(self, label: str, sources: list[str], draw) -> list[str]:
        """A frame titled `label` (left, out of the way of the edges); `draw(entry)` fills it from one entry point."""
        self.count += 1
        self.lines.append(f"subgraph cluster_{self.count} {{ style=rounded; color=gray50;")
        # the title is a node beside the entry point, on its rank: edges are routed around it, never through it
        title = self.node(label, shape="plaintext", fontsize="10")
        entry = self.node("", shape="point", width="0.04")
        self.lines.append(f"{{ rank=same; {title}; {entry}; }}")
        self.edges(sources, entry)  # none for a block's definition, drawn on its own
        exits = draw([entry])
        self.lines.append("}")
        return exits

    def joint(self, symbol: str, sources: list[str], index: str) -> str:
        row = self.rows.get(index)
        node = self.node(symbol + (f"\n{fmt_shape(row.output_shape)}" if row else ""), **JOINT)
        self.edges(sources, node)
        return node

    def entry(self, entry, sources: list[str]) -> list[str]:
        layer, index = entry.layer, str(entry.index)
        title = self.described(entry.text, index).replace("\n", "  ·  ")
        if isinstance(layer, Residual):
            return self.cluster(title, sources, lambda inside: self.residual(layer, index, inside))
        if isinstance(layer, Parallel):
            return self.cluster(title, sources, lambda inside: self.branches(layer, index, inside))
        if isinstance(layer, Gate):
            return self.cluster(title, sources, lambda inside: self.gate(layer, index, inside))
        if isinstance(layer, Repeat):
            return self.repeated(layer.repetitions, f"repeat × {layer.times}", index, sources)
        if isinstance(layer, NamedBlock) and layer.repeated:
            return self.repeated([[use] for use in layer.layers], "", index, sources)
        if isinstance(layer, NamedBlock):
            if not self.expand and layer.name:
                return self.use(entry, entry.text, index, sources)
            return self.cluster(title, sources, lambda inside: self.sequence(layer.layers, inside))
        return self.leaf(index, entry.text, sources)  # dense, transition, se: one box; the summary has their rows

    def use(self, first, text: str, index: str, sources: list[str]) -> list[str]:
        """A use of a named block as one box (its layers are drawn once, beside the network)."""
        self.uses.setdefault(first.layer.name, (first.text, first.layer))
        node = self.node(self.described(text, index), style="rounded,filled", fillcolor="aliceblue")
        self.edges(sources, node)
        return [node]

    def definitions_drawn(self) -> None:
        """Each named block used, drawn once as its first use builds it (blocks it uses in turn as well)."""
        drawn: set[str] = set()
        while len(drawn) < len(self.uses):
            name, (text, block) = next((name, first) for name, first in self.uses.items() if name not in drawn)
            drawn.add(name)
            definition = self.definitions.get(name, {})
            params = definition.get("params", []) if isinstance(definition, dict) else []
            title = f"{name}({', '.join(params)})  ·  as in {text}" if params else name
            self.cluster(title, [], lambda inside: self.sequence(block.layers, inside))

    def repeated(self, repetitions: list[list], title: str, index: str, sources: list[str]) -> list[str]:
        """A block used N times in a row: its first use drawn in a frame that says × N and the first and last use's
        arguments (every use drawn, with `expand`)."""
        if self.expand:
            for repetition in repetitions:
                sources = self.sequence(repetition, sources)
            return sources
        first, last = repetitions[0], repetitions[-1]
        if not title:  # 'cnblock(384, 0.0353) … cnblock(384, 0.0824) × 9'
            ends = first[0].text if len(repetitions) == 1 or last[0].text == first[0].text \
                else f"{first[0].text} … {last[0].text}"
            title = f"{ends} × {len(repetitions)}"
        named = len(first) == 1 and isinstance(first[0].layer, NamedBlock) and first[0].layer.name
        if named:
            return self.use(first[0], title, index, sources)
        label = self.described(title, index).replace("\n", "  ·  ")
        return self.cluster(label, sources, lambda inside: self.sequence(first, inside))

    def residual(self, layer: Residual, index: str, sources: list[str]) -> list[str]:
        skip = getattr(layer, "skip", "identity")
        written = layer.shortcut if isinstance(layer.shortcut, list) else None  # the shortcut's own layers
        if written is not None and layer._shortcut_first:
            shortcut = self.sequence(written, sources)
            body = self.sequence(layer.body, sources)
        else:
            body = self.sequence(layer.body, sources)
            shortcut = self.sequence(written, sources) if written is not None else sources
        if skip == "none":
            return body
        add = self.joint("+", body, index)
        if skip == "project":
            for number in (1, 2):
                key = f"{index}.shortcut.{number}"
                if key in self.rows:
                    shortcut = self.leaf(key, self.rows[key].text.removeprefix("shortcut: "), shortcut)
        if skip == "identity":
            self.edges(sources, add, style="dashed", label="identity")
        else:
            self.edges(shortcut, add)
        return [add]

    def branches(self, layer: Parallel, index: str, sources: list[str]) -> list[str]:
        if isinstance(layer, Split):  # each branch gets its share of the channels
            split = self.node(f"split in {len(layer.branches)}", **JOINT)
            self.edges(sources, split)
            sources = [split]
        exits = [exit_ for branch in layer.branches for exit_ in self.sequence(branch, sources)]
        return [self.joint("+" if isinstance(layer, Add) else "concat", exits, index)]

    def gate(self, layer: Gate, index: str, sources: list[str]) -> list[str]:
        branch = self.sequence(layer.body, sources)
        node = self.joint("×", branch, index)
        self.edges(sources, node, style="dashed")
        return [node]


def _planned(spec) -> tuple[Plan, bool]:
    """The spec's plan, with parameters counted where torch is installed (shapes alone where it is not)."""
    try:
        import torch  # noqa: F401
    except ImportError:
        return plan(spec, SHAPES), False
    return plan(spec, PLAN), True


def dot_text(spec, expand: bool = False) -> str:
    """The spec's graph in Graphviz's DOT language (raises SpecError on an invalid spec, as validate); `expand`
    draws every repetition of a repeated block."""
    built, counted = _planned(spec)
    graph = _Graph(built, expand, counted)
    source = graph.node(f"input\n{fmt_shape(tuple(built.spec.input))}", shape="ellipse")
    exits = graph.sequence(built.spec.layers, [source])
    total = f"\n{_params(built.params['total'])}" if counted else ""
    output = graph.node(f"output\n{fmt_shape(built.records[-1].output_shape)}{total}", shape="ellipse")
    graph.edges(exits, output)
    graph.definitions_drawn()
    header = [f"digraph {_quote(built.spec.name)} {{", "rankdir=TB;", "ranksep=0.3;", "nodesep=0.3;",
              'pack=true; packmode="graph";',  # the blocks' frames packed around the network, not in one long row
              'node [shape=box, style="rounded", fontname="Helvetica", fontsize=10];',
              'edge [fontname="Helvetica", fontsize=8, arrowsize=0.6];', 'graph [fontname="Helvetica"];']
    return "\n".join([*header, *graph.lines, *graph.edge_lines, "}"]) + "\n"


def draw(spec, out: Path, expand: bool = False) -> Path:
    """Write the spec's picture to `out`, its format from the suffix (.svg, .png, .pdf, or .dot for the graph text)."""
    fmt = out.suffix.lstrip(".").lower()
    if fmt not in FORMATS:
        raise UsageError(f"--out {out}: the picture's format comes from its suffix: {', '.join('.' + f for f in FORMATS)}")
    text = dot_text(spec, expand)
    if fmt == "dot":
        out.write_text(text, encoding="utf-8")
        return out
    dot = shutil.which("dot")
    if dot is None:
        raise UsageError("drawing needs Graphviz's 'dot' program (Debian/Ubuntu: apt-get install graphviz; macOS: "
                         "brew install graphviz), or write the graph text with --out FILE.dot")
    try:
        subprocess.run([dot, f"-T{fmt}", "-o", str(out)], input=text.encode(), check=True, capture_output=True,
                       timeout=RENDER_TIMEOUT)
    except subprocess.CalledProcessError as error:
        reason = " ".join(error.stderr.decode(errors="replace").split())[:160]
        raise UsageError(f"Graphviz could not draw it: {reason}", str(out)) from None
    except subprocess.TimeoutExpired:
        raise UsageError(f"Graphviz took more than {RENDER_TIMEOUT} s", str(out)) from None
    return out
