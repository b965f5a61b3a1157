"""A spec as a picture: a Graphviz graph whose boxes are layers, with blocks as framed groups and residual, parallel,
split, add and gate blocks drawn as the branches they are (Keras' plot_model is the model). Shapes only: no torch."""
from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

from ..errors import UsageError
from .blocks import Add, Gate, NamedBlock, Parallel, Repeat, Residual, Split
from .build import SHAPES, Plan, plan
from .layers import fmt_shape

FORMATS = ("svg", "png", "pdf", "dot")
RENDER_TIMEOUT = 120  # seconds: dot lays out even the largest zoo model in a few


def _quote(text: str) -> str:
    return '"' + text.replace("\\", "\\\\").replace('"', '\\"') + '"'


class _Graph:
    """DOT text built while walking the spec's layer tree next to the plan's rows (for shapes)."""

    def __init__(self, built: Plan):
        self.rows = {str(record.index): record for record in built.records if record.index is not None}
        self.lines: list[str] = []  # nodes, inside the clusters they belong to
        self.edge_lines: list[str] = []  # edges, written at the top level: an edge inside a cluster pulls its ends in
        self.count = 0

    def node(self, label: str, **style) -> str:
        self.count += 1
        name = f"n{self.count}"
        attributes = ", ".join(f"{key}={_quote(str(value))}" for key, value in {"label": label, **style}.items())
        self.lines.append(f"{name} [{attributes}];")
        return name

    def edges(self, sources: list[str], target: str, **style) -> None:
        attributes = " [" + ", ".join(f"{k}={_quote(str(v))}" for k, v in style.items()) + "]" if style else ""
        self.edge_lines += [f"{source} -> {target}{attributes};" for source in sources]

    def leaf(self, index: str, text: str, sources: list[str]) -> list[str]:
        row = self.rows.get(index)
        label = text + (f"\n{fmt_shape(row.output_shape)}" if row else "")
        node = self.node(label)
        self.edges(sources, node)
        return [node]

    def sequence(self, entries: list, sources: list[str]) -> list[str]:
        for entry in entries:
            sources = self.entry(entry, sources)
        return sources

    def cluster(self, label: str, draw) -> list[str]:
        self.count += 1
        self.lines.append(f"subgraph cluster_{self.count} {{ label={_quote(label)}; style=rounded; color=gray50;")
        exits = draw()
        self.lines.append("}")
        return exits

    def joint(self, symbol: str, sources: list[str], index: str) -> str:
        row = self.rows.get(index)
        label = symbol + (f"\n{fmt_shape(row.output_shape)}" if row else "")
        node = self.node(label, shape="ellipse", style="filled", fillcolor="gray90")
        self.edges(sources, node)
        return node

    def entry(self, entry, sources: list[str]) -> list[str]:
        layer, index = entry.layer, str(entry.index)
        if isinstance(layer, Residual):
            return self.cluster(entry.text, lambda: self.residual(layer, index, sources))
        if isinstance(layer, Parallel):
            return self.cluster(entry.text, lambda: self.branches(layer, index, sources))
        if isinstance(layer, Gate):
            return self.cluster(entry.text, lambda: self.gate(layer, index, sources))
        if isinstance(layer, Repeat):  # drawn once, framed with its count: the first repetition, as it was walked
            return self.cluster(entry.text, lambda: self.sequence(layer.repetitions[0], sources))
        if isinstance(layer, NamedBlock):
            return self.cluster(entry.text, lambda: self.sequence(layer.layers, sources))
        return self.leaf(index, entry.text, sources)  # dense, transition, se: one box; the summary has their rows

    def residual(self, layer: Residual, index: str, sources: list[str]) -> list[str]:
        body = self.sequence(layer.body, sources)
        skip = getattr(layer, "skip", "identity")
        if skip == "none":
            return body
        add = self.joint("+", body, index)
        if skip == "project":
            shortcut = sources
            for number in (1, 2):
                key = f"{index}.shortcut.{number}"
                if key in self.rows:
                    shortcut = self.leaf(key, self.rows[key].text.removeprefix("shortcut: "), shortcut)
            self.edges(shortcut, add)
        else:
            self.edges(sources, add, style="dashed", label="identity")
        return [add]

    def branches(self, layer: Parallel, index: str, sources: list[str]) -> list[str]:
        if isinstance(layer, Split):  # each branch gets its share of the channels
            split = self.node(f"split in {len(layer.branches)}", shape="ellipse", style="filled", fillcolor="gray90")
            self.edges(sources, split)
            sources = [split]
        exits = [exit_ for branch in layer.branches for exit_ in self.sequence(branch, sources)]
        return [self.joint("+" if isinstance(layer, Add) else "concat", exits, index)]

    def gate(self, layer: Gate, index: str, sources: list[str]) -> list[str]:
        branch = self.sequence(layer.body, sources)
        node = self.joint("×", branch, index)
        self.edges(sources, node, style="dashed")
        return [node]


def dot_text(spec) -> str:
    """The spec's graph in Graphviz's DOT language (raises SpecError on an invalid spec, as validate)."""
    built = plan(spec, SHAPES)
    graph = _Graph(built)
    source = graph.node(f"input\n{fmt_shape(tuple(built.spec.input))}", shape="ellipse")
    exits = graph.sequence(built.spec.layers, [source])
    output = graph.node(f"output\n{fmt_shape(built.records[-1].output_shape)}", shape="ellipse")
    graph.edges(exits, output)
    header = [f"digraph {_quote(built.spec.name)} {{", "rankdir=TB;", 'node [shape=box, style="rounded", '
              'fontname="Helvetica", fontsize=10];', 'edge [fontname="Helvetica", fontsize=8];']
    return "\n".join([*header, *graph.lines, *graph.edge_lines, "}"]) + "\n"


def draw(spec, out: Path) -> Path:
    """Write the spec's picture to `out`, its format from the suffix (.svg, .png, .pdf, or .dot for the graph text)."""
    fmt = out.suffix.lstrip(".").lower()
    if fmt not in FORMATS:
        raise UsageError(f"--out {out}: the picture's format comes from its suffix: {', '.join('.' + f for f in FORMATS)}")
    text = dot_text(spec)
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
