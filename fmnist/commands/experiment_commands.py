"""`fmnist grid` (the study's Table 1) and `fmnist search` (Optuna hyper-parameter search)."""
from __future__ import annotations

import json
import os
import shutil
from pathlib import Path

import click

from ..builder.build import plan
from ..builder.spec import load_spec
from ..console import make_console
from ..errors import TrainingError, UsageError
from ..experiments import grid as grid_cells
from ..experiments import search as searching
from ..hparams import DEFAULT_SPACE, HPARAMS, LOSSES, resolve
from ..runner.data import load_splits, locate
from ..runner.device import resolve_device
from ..runner.session import RunInterrupted, RunOptions, start
from ..runner.speedups import check_precision, speed_settings
from .run_commands import hparam_options, where_options

BOTH = {"both": [False, True], "on": [True], "off": [False]}


def _passthrough(flags: dict) -> list[str]:
    """The options given to grid, as `fmnist run` flags for every cell."""
    args = []
    for name, value in flags.items():
        if value is None:
            continue
        if name == "fast":
            args.append("--fast" if value else "--plain")
        elif isinstance(value, bool):
            args.append(f"--{'' if value else 'no-'}{name.replace('_', '-')}")
        else:
            args += [f"--{name.replace('_', '-')}", str(value)]
    return args


@click.command()
@click.argument("specs", nargs=-1, required=True, type=click.Path(dir_okay=False))
@click.option("--augment", "augment", type=click.Choice(list(BOTH)), default="both", show_default=True)
@click.option("--loss", type=click.Choice(["both", *LOSSES]), default="both", show_default=True)
@click.option("--jobs", type=int, default=1, show_default=True, help="Cells run at once (separate processes).")
@click.option("--out", default="runs/table1", show_default=True, help="Folder of the cells, table.md and table.csv.")
@hparam_options
@where_options
def grid(specs, augment, loss, jobs, out, device, **flags) -> int:
    """The study's Table 1: every SPEC x augmentation x softmax/sigmoid, each cell a normal run.

    Finished cells are skipped when the command is run again; a killed cell resumes from its last epoch.
    """
    console = make_console()
    if jobs < 1:
        raise UsageError(f"--jobs {jobs}: must be at least 1")
    loaded = [load_spec(path) for path in specs]
    for spec in loaded:
        plan(spec)  # every spec is checked before the first cell starts
    resolve({}, {k: v for k, v in flags.items() if k in HPARAMS})  # bad values fail here, not in every cell
    torch_device = resolve_device(device)
    check_precision(flags["precision"], torch_device)
    locate(flags["data_dir"], download=True)  # fail before launching cells, not in each of them
    out_path = Path(out)
    cells = grid_cells.make_cells([(spec.file, spec.name) for spec in loaded], BOTH[augment],
                                  list(LOSSES) if loss == "both" else [loss], out_path)
    finished = sum(cell.summary is not None for cell in cells)
    console.print(f"{len(cells)} cells ({finished} finished already) · {jobs} at a time · {torch_device} · {out_path}")
    threads = max(1, (os.cpu_count() or 1) // jobs) if torch_device.type == "cpu" else None
    failures = grid_cells.run_cells(cells, _passthrough({"device": device, **flags}), jobs, threads, out_path / "logs",
                                    console.print)
    console.print(grid_cells.write_table(cells, out_path))
    console.print(f"written: {out_path / 'table.md'}, {out_path / 'table.csv'}")
    if failures:
        raise TrainingError(f"{len(failures)} cell(s) failed (logs in {out_path / 'logs'}): {', '.join(failures)}")
    return 0


@click.command()
@click.argument("spec", type=click.Path(dir_okay=False))
@click.option("--trials", type=int, default=40, show_default=True, help="Finished trials the study should hold (all workers together).")
@click.option("--storage", help="Database URL shared by several workers (e.g. postgresql://user@host/db). Default: SQLite in --out.")
@click.option("--study", "study_name", help="Study name [<spec name>-search].")
@click.option("--space", multiple=True, help="Override the search space: NAME=LOW:HIGH or NAME=A,B,C (repeatable).")
@click.option("--loss", type=click.Choice(LOSSES), default=None, help="Output layer for every trial [softmax].")
@click.option("--augment/--no-augment", default=None, help="Augmentation for every trial [off].")
@click.option("--out", default=None, help="Folder for the SQLite study, plots and the best retrain [runs/<study>].")
@click.option("--retrain/--no-retrain", default=True, help="At the end, retrain the best trial and test it. [retrain]")
@hparam_options
@where_options
def search(spec, trials, storage, study_name, space, loss, augment, out, retrain, device, data_dir, train_limit, fast,
           precision, **flags) -> int:
    """Optuna search over SPEC's hyper-parameters; the objective is the best validation accuracy.

    Resumes from its SQLite file; with --storage, several workers on several machines share one study.
    """
    import optuna

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    console = make_console()
    if trials < 1:
        raise UsageError(f"--trials {trials}: must be at least 1")
    loaded = load_spec(spec)
    plan(loaded)
    base = resolve(loaded.train, {**flags, "loss": loss, "augment": augment})
    chosen_space = dict(DEFAULT_SPACE)
    chosen_space.update(loaded.document.get("search", {}))
    chosen_space.update(dict(searching.parse_space_flag(text) for text in space))
    torch_device = resolve_device(device)
    speed = speed_settings(fast, precision, torch_device)
    name = study_name or f"{loaded.name}-search"
    out_path = Path(out or Path("runs") / name)
    out_path.mkdir(parents=True, exist_ok=True)
    study = searching.open_study(storage, name, out_path, base["seed"])
    console.print(f"study {name} · {searching.finished_trials(study)} of {trials} trials finished · "
                  f"storage {storage or out_path / 'search.db'} · space {json.dumps(chosen_space)}")
    splits = load_splits(locate(data_dir, download=True), train_limit).to(torch_device)
    objective = searching.make_objective(loaded, base, chosen_space, splits, torch_device, speed, console.print)
    try:
        searching.optimise(study, objective, trials)
    except KeyboardInterrupt:
        raise RunInterrupted("interrupted; the finished trials are stored: run the same command again to continue") from None
    best = study.best_trial
    console.print(f"best: trial {best.number}, val {100 * best.value:.2f}%, {best.params}")
    result = {"study": name, "trials": searching.finished_trials(study), "best_trial": best.number,
              "best_val_acc": best.value, "best_params": best.params, "plots": searching.plot_search(study, out_path)}
    if retrain:
        best_dir = out_path / f"best-trial-{best.number}"
        if not (best_dir / "summary.json").is_file():
            shutil.rmtree(best_dir, ignore_errors=True)  # a retrain killed half-way starts over
            options = RunOptions(device=device, data_dir=data_dir, train_limit=train_limit, fast=fast, precision=precision,
                                 run_dir=str(best_dir))
            start(loaded, {**base, **best.params}, options, console)
        result["retrain"] = {"run": str(best_dir), "test_acc": json.loads((best_dir / "summary.json").read_text())["test_acc"]}
        console.print(f"best trial retrained: test accuracy {100 * result['retrain']['test_acc']:.2f}% · {best_dir}")
    (out_path / "search.json").write_text(json.dumps(result, indent=2) + "\n")
    console.print(f"written: {out_path / 'search.json'}" + "".join(f", {out_path / p}" for p in result["plots"]))
    return 0
