"""A built plan as a Keras/torchinfo-style table, or as one JSON object."""
from __future__ import annotations

import math

from rich import box
from rich.console import Console
from rich.table import Table
from rich.text import Text

from .build import Plan
from .layers import fmt_shape

BYTES_PER_PARAM = 4  # float32
BYTES_PER_VALUE = 4  # float32 activations


def activation_bytes(built: Plan) -> dict[str, int]:
    """Per image: the layers' outputs kept for one forward pass, and twice that for training (as torchinfo's
    'forward/backward pass size': the backward pass holds a gradient of the same size for each)."""
    forward = sum(math.prod(r.output_shape) for r in built.records if not r.block) * BYTES_PER_VALUE
    return {"forward": forward, "forward_backward": 2 * forward}


def summary_dict(built: Plan) -> dict:
    """The summary as plain data (what `fmnist summary --json` prints)."""
    checks = built.checks()
    params = built.params
    return {
        "name": built.spec.name,
        "file": built.spec.file,
        "input": list(built.spec.input),
        "classes": built.spec.classes,
        "layers": [
            {"index": r.index, "layer": r.text, "kind": r.kind, "output_shape": list(r.output_shape),
             "params": r.params, "macs": r.macs, "activation_bytes": math.prod(r.output_shape) * BYTES_PER_VALUE,
             "note": r.note, "line": r.line, "depth": r.depth, "block": r.block}
            for r in built.records
        ],
        "params": params,
        "size_mb": round(params["total"] * BYTES_PER_PARAM / 1e6, 3),
        "macs": built.macs,
        "activation_bytes": activation_bytes(built),
        "fc_input": built.fc_input,
        "expect": {
            "ok": all(c.ok for c in checks),
            "checks": [{"name": c.name, "expected": c.expected, "actual": c.actual, "tolerance": c.tolerance, "ok": c.ok}
                       for c in checks],
        },
    }


def print_summary(built: Plan, console: Console) -> None:
    """The per-layer table, parameter groups, totals and expect checks."""
    data = summary_dict(built)
    title = data["name"] + (f"  ({data['file']})" if data["file"] else "")
    table = Table(title=title, box=box.SIMPLE_HEAD, title_justify="left")
    for header, right in (("#", True), ("Layer", False), ("Output shape", False), ("Params", True),
                          ("Mult-adds", True), ("Note", False)):
        table.add_column(header, justify="right" if right else "left")
    table.add_row("", "input", fmt_shape(tuple(data["input"])), "", "", "")
    for row in data["layers"]:
        # rows inside a block are indented under it; a block's params and mult-adds are its rows' sums
        table.add_row("·" if row["index"] is None else str(row["index"]), "  " * row["depth"] + row["layer"],
                      fmt_shape(tuple(row["output_shape"])),
                      f"{row['params']:,}", f"{row['macs']:,}", row["note"])
    console.print(table)
    params = data["params"]
    groups = [f"{name} {count:,}" for name, count in params.items() if name not in ("total", "trainable")]
    console.print(f"Params by group: {' · '.join(groups) or 'none'}")
    console.print(f"Total params: {params['total']:,}   Trainable: {params['trainable']:,}   "
                  f"Size: {data['size_mb']:.2f} MB (float32)")
    console.print(f"Mult-adds per image: {data['macs']:,} ({data['macs'] / 1e6:.2f} M)")
    memory = data["activation_bytes"]
    console.print(f"Activations per image: forward {memory['forward'] / 1e6:.2f} MB, forward + backward "
                  f"{memory['forward_backward'] / 1e6:.2f} MB (float32; x batch size for a step)")
    for check in built.checks():
        mark = ("✓", "green") if check.ok else ("✗", "red")
        console.print(Text.assemble("Expect ", mark, f" {check.describe()}"))
