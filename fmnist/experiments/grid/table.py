"""A grid's table in the study's layout (rows the models, columns augmentation x output layer, test accuracy in %,
the best of each column in bold), printed and written as table.md and table.csv."""
from __future__ import annotations

import csv
import io
from pathlib import Path

from ...runner.rundir import atomic_write
from .cells import COLUMNS, Cell


def _machines(cells: list[Cell]) -> dict[str, int]:
    """How many of the finished cells ran on each kind of machine (known for cells with a result file)."""
    counts: dict[str, int] = {}
    for summary in filter(None, (cell.read_summary() for cell in cells)):
        machine = summary.get("machine")
        if isinstance(machine, dict):
            device = summary.get("device", "cpu")
            label = f"{machine.get('cpu', machine.get('processor', '?'))} ({machine.get('cpu_class', '?')}), " \
                    f"{machine.get('threads', '?')} threads" if str(device).startswith("cpu") else str(device)
            counts[label] = counts.get(label, 0) + 1
    return counts


def table(cells: list[Cell]) -> tuple[str, str]:
    """(markdown, csv) in the study's layout: test accuracy in %, best of each column in bold, mean epoch seconds."""
    columns = [(title, augment, loss) for title, augment, loss in COLUMNS
               if any(c.augment == augment and c.loss == loss for c in cells)]
    models = list(dict.fromkeys(c.model for c in cells))
    found = {(c.model, c.augment, c.loss): c.read_summary() for c in cells}
    best = {}
    for title, augment, loss in columns:
        scores = [s["test_acc"] for m in models if (s := found.get((m, augment, loss)))]
        best[title] = max(scores) if scores else None
    md = [f"| Model | {' | '.join(title for title, _, _ in columns)} | Epoch s |", "|---" * (len(columns) + 2) + "|"]
    rows = [["model", *(title for title, _, _ in columns), "epoch_seconds"]]
    for model in models:
        cells_md, cells_csv, seconds = [], [], []
        for title, augment, loss in columns:
            summary = found.get((model, augment, loss))
            if summary is None:
                cells_md.append("–")
                cells_csv.append("")
                continue
            text = f"{100 * summary['test_acc']:.2f}%"
            cells_md.append(f"**{text}**" if summary["test_acc"] == best[title] else text)
            cells_csv.append(f"{100 * summary['test_acc']:.2f}")
            seconds += [e["seconds"] for e in summary["epochs"]]
        mean = f"{sum(seconds) / len(seconds):.2f}" if seconds else ""
        md.append(f"| {model} | {' | '.join(cells_md)} | {mean or '–'} |")
        rows.append([model, *cells_csv, mean])
    machines = _machines(cells)
    if machines:
        md += ["", "Ran on: " + "; ".join(f"{label} ({count} cell{'s' * (count > 1)})" for label, count in machines.items())]
    written = io.StringIO()
    csv.writer(written, lineterminator="\n").writerows(rows)
    return "\n".join(md) + "\n", written.getvalue()


def write_table(cells: list[Cell], out: Path) -> str:
    markdown, comma_separated = table(cells)
    atomic_write(out / "table.md", markdown.encode())
    atomic_write(out / "table.csv", comma_separated.encode())
    return markdown


# --- cells shared by grids on several machines, through one Optuna study in a database ---
