"""`fmnist runs`: the runs under a folder, one line each, to find and compare what was run."""
from __future__ import annotations

import json
from pathlib import Path

import click

from ..errors import UsageError


def _percent(value) -> str:
    return f"{100 * value:.2f}%" if value is not None else "–"


@click.command()
@click.argument("folder", default="runs", required=False)
@click.option("--json", "as_json", is_flag=True, help="Print one JSON list instead of the table.")
def runs(folder: str, as_json: bool) -> int:
    """One line per run under FOLDER [runs] (and one level below: grid cells, search retrains): name, started,
    the data it trained on, epochs done/planned, best validation and test accuracy, and state (finished, running,
    interrupted, failed, damaged: what is damaged is in the note)."""
    from ..runner.catalog import find_runs

    root = Path(folder)
    if not root.is_dir():
        raise UsageError("no such folder", folder)
    rows = find_runs(root)
    if as_json:
        click.echo(json.dumps([row.as_dict() for row in rows], indent=2))
        return 0
    headers = ("run", "name", "started", "data", "epochs", "best val", "test", "state", "note")
    lines = [[str(Path(row.run).relative_to(root)) if Path(row.run).is_relative_to(root) else row.run, row.name,
              row.started.replace("T", " ")[:16], row.data, row.epochs_text(), _percent(row.best_val_acc),
              _percent(row.test_acc), row.state, row.note] for row in rows]
    widths = [max([len(header), *(len(line[n]) for line in lines)]) for n, header in enumerate(headers)]
    right = {"epochs", "best val", "test"}

    def text(cells) -> str:  # one line per run, the note last and whole
        return "  ".join(cell.rjust(width) if header in right else cell.ljust(width)
                         for header, cell, width in zip(headers, cells, widths)).rstrip()

    click.echo(f"{len(rows)} run(s) in {root}")
    click.echo(text(headers))
    for line in lines:
        click.echo(text(line))
    return 0
