"""`fmnist grid` (the study's Table 1) and `fmnist search` (Optuna hyper-parameter search)."""
from __future__ import annotations

import os
from pathlib import Path

import click

from ..console import make_console
from ..durations import MAX_MINUTES
from ..errors import TrainingError, UsageError
from ..choices import FIDELITY_HELP, KEEP, PRUNERS
from ..hparams import HPARAMS, LOSSES, MAX_SEED, STUDY_SIGMOID
from ..runner.options import RunOptions
from .declared import hparam_options, loaded_plugins, run_options
from .run_commands import check_out_folder, override_option


MAX_SEEDS = 100  # retrains of the best trial; more is a typo
MAX_TRIALS = 100_000  # far past any search that finishes; a larger count is a typo
BOTH = {"both": [False, True], "on": [True], "off": [False]}
GRID_LOSSES = {"both": ["softmax", STUDY_SIGMOID], "all": list(LOSSES)}  # the study's Table 1 columns, or every loss


def _secret_url(_context, _parameter, url: str | None) -> str | None:
    """--storage: its password is masked in every line printed or written from here on."""
    from ..redact import remember

    remember(url)
    return url


def single_process(command: str) -> None:
    """Grid cells and search trials are single processes that scale out through the database, not data-parallel."""
    from ..world import world_from_environment

    if world_from_environment().launched:
        raise UsageError(f"fmnist {command} runs its {'cells' if command == 'grid' else 'trials'} as single processes "
                         f"and scales out through --storage (several machines, one database); start it without "
                         f"torchrun (docs/distributed.md says how to combine them)")


def _distinct(paths: tuple[str, ...], overrides: tuple[str, ...] = ()) -> list:
    """The specs once each (the same file twice is one), refusing two files that share a name: they would share cells."""
    from ..builder.spec import load_spec

    loaded: list = []
    seen_files: set[Path] = set()
    seen_names: dict[str, str] = {}
    for path in paths:
        resolved = Path(path).resolve()
        if resolved in seen_files:
            continue
        spec = load_spec(path, overrides)
        if spec.name in seen_names:
            raise UsageError(f"{path} and {seen_names[spec.name]} are both named '{spec.name}': grid cells are named "
                             f"after the spec, so rename one")
        seen_files.add(resolved)
        seen_names[spec.name] = path
        loaded.append(spec)
    return loaded


@click.command()
@click.argument("specs", nargs=-1, required=True, type=click.Path(dir_okay=False))
@click.option("--augment", "augment", type=click.Choice(list(BOTH)), default="both", show_default=True)
@click.option("--loss", type=click.Choice(["both", "all", *LOSSES]), default="both", show_default=True,
              help=f"both: softmax and the study's sigmoid ({STUDY_SIGMOID}); all: every output layer.")
@click.option("--jobs", type=int, default=1, show_default=True, help="Cells run at once (separate processes).")
@click.option("--out", default="runs/table1", show_default=True, help="Folder of the cells, table.md and table.csv.")
@click.option("--results", "results_dir", help="Folder of one result JSON per finished cell (to commit); a cell whose "
              "file is there counts as finished, so a table can be completed in pieces, on any machine.")
@click.option("--keep", type=click.Choice(KEEP), default="all", show_default=True,
              help="Checkpoints a finished cell keeps: all (best.pt, last.pt), best, or none (results only).")
@click.option("--storage", callback=_secret_url, help="Database URL shared by grids on several machines: each takes cells nobody has taken.")
@click.option("--study", "study_name", help="The grid's study name in --storage [<out folder name>-grid].")
@hparam_options
@run_options("grid")
@override_option
def grid(specs, augment, loss, jobs, out, results_dir, keep, storage, study_name, options: RunOptions, overrides,
         **flags) -> int:
    """The study's Table 1: every SPEC x augmentation x softmax/sigmoid, each cell a normal run.

    Finished cells are skipped when the command is run again; a killed cell resumes from its last epoch.
    """
    from ..experiments import grid as grid_cells
    from ..experiments.storage import database_lost
    from ..runner.preflight import prepare
    from ..runner.session import RunInterrupted

    single_process("grid")
    console = make_console()
    if jobs < 1:
        raise UsageError(f"--jobs {jobs}: must be at least 1")
    check_out_folder(out)
    if results_dir:
        check_out_folder(results_dir)
    hparam_flags = {k: v for k, v in flags.items() if k in HPARAMS}
    loaded = _distinct(specs, overrides)
    resolved = []
    for spec in loaded:  # every spec, setting and the data are checked before the first cell starts
        ready = prepare(spec, hparam_flags, options)
        resolved.append((spec.file, spec.document, ready.hparams))
    out_path = Path(out)
    try:
        out_path.mkdir(parents=True, exist_ok=True)
    except OSError as error:
        raise UsageError(f"--out {out}: cannot create it ({error.strerror})") from None
    if options.threads is None and ready.device.type == "cpu":  # --jobs N cells share the cores instead of fighting
        options = options.replace(threads=max(1, (os.cpu_count() or 1) // (1 if storage else jobs)))
    cells = grid_cells.make_cells(resolved, BOTH[augment], GRID_LOSSES.get(loss, [loss]), out_path, options,
                                  loaded_plugins())
    for cell in cells if results_dir else ():
        cell.result_file = Path(results_dir) / f"{cell.name}.json"
    finished = sum(cell.read_summary() is not None for cell in cells)
    console.print(f"{len(cells)} cells ({finished} finished already) · {jobs} at a time · {ready.device} · {out_path}")
    try:
        if storage:
            with database_lost(storage, "the finished cells are kept in it and in --out"):
                study = grid_cells.open_shared(storage, study_name or f"{out_path.name}-grid", cells)
                failures = grid_cells.run_shared(cells, study, out_path, console.print, keep)
        else:
            failures = grid_cells.run_cells(cells, jobs, out_path, console.print, keep)
    except grid_cells.GridInterrupted as stop:
        grid_cells.write_table(cells, out_path)
        raise RunInterrupted(f"grid interrupted: {len(stop.finished)} of {len(cells)} cells finished "
                             f"({', '.join(stop.finished) or 'none'}); not finished: {', '.join(stop.unfinished)}; "
                             f"run the same command again to continue") from None
    console.print(grid_cells.write_table(cells, out_path))
    console.print(f"written: {out_path / 'table.md'}, {out_path / 'table.csv'}")
    if failures:
        raise TrainingError(f"{len(failures)} cell(s) failed (logs in {out_path / 'logs'}): {', '.join(failures)}")
    return 0


@click.command()
@click.argument("spec", type=click.Path(dir_okay=False))
@click.option("--trials", type=int, default=40, show_default=True, help="Finished trials the study should hold (all workers together).")
@click.option("--storage", callback=_secret_url, help="Database URL shared by several workers (e.g. postgresql://user@host/db). Default: SQLite in --out.")
@click.option("--study", "study_name", help="Study name [<spec name>-search].")
@click.option("--space", multiple=True, help="Override the search space: NAME=LOW:HIGH or NAME=A,B,C (repeatable).")
@click.option("--loss", type=click.Choice(LOSSES), default=None, help="Output layer for every trial [softmax].")
@click.option("--augment/--no-augment", default=None, help="Augmentation for every trial [off].")
@click.option("--out", default=None, help="Folder for the SQLite study, plots and the best retrain [runs/<study>].")
@click.option("--retrain/--no-retrain", default=True, help="At the end, retrain the best trial and test it. [retrain]")
@click.option("--seeds", "retrain_seeds", type=int, default=1, show_default=True,
              help="Retrain the best trial with N seeds (--seed, --seed+1, …; the workers share them) and report mean ± sd.")
@click.option("--results", "results_dir", type=click.Path(file_okay=False),
              help="Also keep the search as small files to commit: best.json (the retrained best run), search.json, plots.")
@click.option("--pruner", type=click.Choice(PRUNERS), default="hyperband", show_default=True,
              help="Stops hopeless trials early: hyperband or halving (multi-fidelity, at the resource --fidelity says), median, or none.")
@click.option("--fidelity", type=click.Choice(list(FIDELITY_HELP)), default="epochs", show_default=True,
              help="How a trial is judged before its end: " + "; ".join(f"{name}: {text}" for name, text in FIDELITY_HELP.items()) + ".")
@click.option("--minutes", type=float, default=None,
              help="Time budget of this worker's trials: no trial starts after it, a running one stops at its next "
                   "epoch; the retrain comes after it. [none: --trials decides]")
@hparam_options
@run_options("search")
@override_option
def search(spec, trials, storage, study_name, space, loss, augment, out, retrain, retrain_seeds, results_dir, pruner,
           fidelity, minutes, options: RunOptions, overrides, **flags) -> int:
    """Optuna search over SPEC's hyper-parameters; the objective is the best validation accuracy.

    Resumes from its SQLite file; with --storage, several workers on several machines share one study.
    """
    from ..builder.spec import load_spec
    from ..experiments import search as searching
    from ..runner.preflight import prepare

    single_process("search")
    if not 1 <= trials <= MAX_TRIALS:
        raise UsageError(f"--trials {trials}: must be from 1 to {MAX_TRIALS:,}")
    if not 1 <= retrain_seeds <= MAX_SEEDS:
        raise UsageError(f"--seeds {retrain_seeds}: must be from 1 to {MAX_SEEDS}")
    if minutes is not None and not 0 < minutes <= MAX_MINUTES:  # also refuses nan
        raise UsageError(f"--minutes {minutes:g}: must be more than 0 and at most {MAX_MINUTES:,} (a week)")
    loaded = load_spec(spec, overrides)
    fixed = {**flags, "loss": loss, "augment": augment}
    ready = prepare(loaded, fixed, options)
    if ready.hparams.seed + retrain_seeds - 1 > MAX_SEED:
        raise UsageError(f"--seeds {retrain_seeds} from --seed {ready.hparams.seed} goes past the largest seed, {MAX_SEED}")
    if searching.FIDELITIES[fidelity].needs_budget and ready.hparams.budget is None:
        raise UsageError(f"--fidelity {fidelity} judges trials at rungs of a per-trial --budget: give one (e.g. "
                         f"--budget 10m)")
    if ready.hparams.budget is not None:  # each trial trains for the budget: its epochs are not a parameter
        fixed["num_epochs"] = ready.hparams.num_epochs
    space = searching.choose_space(loaded.document.get("search", {}), space, fixed, loaded.file)
    if not space:
        raise UsageError("nothing left to search: flags fix every parameter of the space")
    name = study_name or f"{loaded.name}-search"
    out_path = Path(out or Path("runs") / name)
    check_out_folder(out_path)
    if results_dir:
        check_out_folder(results_dir)
    settings = searching.SearchSettings(trials, storage, name, out_path, retrain, pruner,
                                        Path(results_dir) if results_dir else None, minutes, retrain_seeds, fidelity)
    searching.run_search(ready, space, settings, options, make_console())
    return 0
