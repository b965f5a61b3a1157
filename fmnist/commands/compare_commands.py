"""`fmnist compare`: several runs side by side — the settings that differ, the results, their validation curves."""
from __future__ import annotations

from pathlib import Path

import click

from ..console import make_console


def _differing(settings: list[dict]) -> list[str]:
    """The keys whose values are not the same in every run (the spec counts as one setting)."""
    keys = list(dict.fromkeys(key for entry in settings for key in entry))
    return [key for key in keys if len({repr(entry.get(key)) for entry in settings}) > 1]


@click.command()
@click.argument("run_paths", metavar="RUN", nargs=-1, required=True, type=click.Path(file_okay=False))
@click.option("--plot", "plot_path", help="Where the plot of the curves goes [compare.png beside the first RUN, in the "
              "folder that holds it].")
def compare(run_paths: tuple[str, ...], plot_path: str | None) -> int:
    """A table of RUNs: the settings that differ between them, and their results; their validation curves as a plot."""
    from rich.table import Table

    from ..errors import UsageError
    from ..runner.catalog import read_metrics, read_row
    from ..runner.plots import plot_comparison
    from ..runner.outputs import check_output
    from ..runner.rundir import RunDir

    if len(run_paths) < 2:
        raise UsageError("give at least two runs to compare")
    runs = [RunDir.existing(Path(path).resolve()) for path in run_paths]  # runs/latest shows as the run it names
    plot_path = plot_path or str(runs[0].path.parent / "compare.png")  # never a stray file in the current folder
    check_output(plot_path, "--plot")
    configs = [run.config() for run in runs]
    settings = [{"spec": config.name, **config.settings().as_dict(), "data": config.data.dataset,
                 "train images": config.data.train, "precision": config.precision, "processes": config.world_size}
                for config in configs]
    rows = [row for row in (read_row(run.path) for run in runs) if row is not None]  # each has its config.yaml
    histories = [read_metrics(run.path)[0] for run in runs]  # a damaged metrics.csv: its rows before the damage
    table = Table(title="Runs compared (settings that differ, then results)", title_justify="left")
    table.add_column("")
    for run in runs:
        table.add_column(run.path.name, justify="right")
    for key in _differing(settings):
        table.add_row(key, *(str(entry.get(key)) for entry in settings))
    table.add_row("epochs", *(row.epochs_text() for row in rows))
    table.add_row("best val", *(f"{100 * row.best_val_acc:.2f}%" if row.best_val_acc is not None else "–" for row in rows))
    table.add_row("test", *(f"{100 * row.test_acc:.2f}%" if row.test_acc is not None else "–" for row in rows))
    table.add_row("state", *(row.state for row in rows))
    console = make_console()
    console.print(table)
    plot_comparison([(run.path.name, history) for run, history in zip(runs, histories) if history], Path(plot_path))
    console.print(f"validation curves: {plot_path}")
    return 0
