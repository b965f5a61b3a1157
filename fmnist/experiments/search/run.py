"""`fmnist search` from start to end: open the study, run this worker's trials, plot, retrain the best and write the
result, each a step of its own."""
from __future__ import annotations

import json
import time
from dataclasses import dataclass, replace
from pathlib import Path
from typing import TYPE_CHECKING

from ...errors import UsageError
from ...redact import masked
from ..storage import database_lost
from .fidelity import FIDELITIES
from .objective import make_objective, worker_name
from .plots import plot_search
from .records import keep_results, write_trials
from .study import STUDY_MARK, check_out_owner, finished_trials, open_study, optimise

if TYPE_CHECKING:
    from ...runner.options import RunOptions
    from ...runner.preflight import Prepared

@dataclass
class SearchSettings:
    """What `fmnist search` was asked for, beyond the run options every trial shares."""

    trials: int
    storage: str | None
    name: str
    out: Path
    retrain: bool
    pruner: str = "hyperband"
    results: Path | None = None  # --results DIR: best.json (the retrained best run's result), search.json and the plots
    minutes: float | None = None  # --minutes M: this worker's time budget for trials (the retrain comes after it)
    seeds: int = 1  # --seeds N: the best trial is retrained with seeds --seed … --seed+N-1, shared among the workers
    fidelity: str = "epochs"  # --fidelity: how a trial is judged before its end (fidelity.py)


def run_search(ready: Prepared, space: dict, settings: SearchSettings, options: RunOptions, console) -> dict:
    """Optimise until the study holds `trials` finished trials, plot it, retrain and test the best; returns search.json."""
    from ...datasets.loading import load_data

    splits = load_data(ready.data, options.train_limit, options.val_limit).to(ready.device)
    with database_lost(settings.storage):
        study = open_search(ready, settings, space, console, len(splits.train_y))
        run_trials(study, ready, space, settings, options, console, splits)
        best = study.best_trial
        console.print(f"best: trial {best.number}, val {100 * best.value:.2f}%, {best.params}")
        result = {"study": settings.name, "pruner": settings.pruner, "fidelity": settings.fidelity,
                  "budget_per_trial": ready.hparams.budget, "minutes": settings.minutes,
                  "trials": finished_trials(study), "best_trial": best.number, "best_val_acc": best.value,
                  "best_params": best.params, "plots": plot_search(study, settings.out, ready.spec.name, console.print)}
        retrained = retrain_best(study, ready, settings, options, console) if settings.retrain else {}
        if retrained:
            from ..retrains import summarise

            result["retrain"] = summarise(retrained)
        write_search(result, settings, retrained, console)
        return result


def open_search(ready: Prepared, settings: SearchSettings, space: dict, console, train_size: int):
    """The study in --out, created or continued (a search that never started leaves no empty folder behind)."""
    import optuna

    optuna.logging.set_verbosity(optuna.logging.ERROR)  # its per-trial warnings repeat what our own lines say
    out = settings.out
    created = not out.exists()
    try:
        out.mkdir(parents=True, exist_ok=True)
        check_out_owner(out, settings.name)
        resources = FIDELITIES[settings.fidelity].resource_range(ready.hparams.budget, train_size)
        study = open_study(settings.storage, settings.name, out, ready.hparams.seed, settings.pruner, resources)
        (out / STUDY_MARK).write_text(f"{settings.name}\n")
    except OSError as error:
        raise UsageError(f"--out {out}: cannot create it ({error.strerror})") from None
    except UsageError:
        if created and out.is_dir() and not any(out.iterdir()):
            out.rmdir()
        raise
    storage = masked(settings.storage) if settings.storage else out / "search.db"
    finished = finished_trials(study)
    goal = f"of {settings.trials} " if finished < settings.trials else f"(--trials {settings.trials}: no new trial) "
    console.print(f"study {settings.name} · {finished} {goal}trials finished · storage {storage} · "
                  f"space {json.dumps(space)}")
    return study


def run_trials(study, ready: Prepared, space: dict, settings: SearchSettings, options: RunOptions, console,
               splits) -> None:
    """This worker's trials, until the study holds enough or the time budget is spent; each finished trial is kept as
    a file with --results (the other workers' too)."""
    from ...runner.preflight import cpu_threads
    from ...runner.session import RunInterrupted

    seconds = settings.minutes * 60 if settings.minutes else None
    deadline = time.monotonic() + seconds if seconds else None
    objective = make_objective(ready.spec, ready.hparams, space, splits, ready.device, ready.speed, console, deadline,
                               ready.log, settings.out, FIDELITIES[settings.fidelity])
    results = settings.results
    keep_trials = (lambda study, _trial=None: write_trials(study, results / "trials")) if results else None
    try:
        with cpu_threads(options.threads):
            optimise(study, objective, settings.trials, seconds, keep_trials)
    except KeyboardInterrupt:
        raise RunInterrupted("interrupted; the finished trials are stored: run the same command again to continue") from None
    if keep_trials:
        keep_trials(study)


def retrain_best(study, ready: Prepared, settings: SearchSettings, options: RunOptions, console) -> dict[int, dict]:
    """The best trial trained again with each seed (shared among the workers), each a normal run in --out."""
    from ...runner.session import start
    from ..retrains import claims_for, describe, retrain_seeds

    best = study.best_trial

    def train(seed: int, folder: Path) -> None:
        start(ready.spec, {**ready.hparams.as_dict(), **best.params, "seed": seed}, replace(options, run_dir=str(folder)),
              console, startup_from=time.monotonic())

    seeds = list(range(ready.hparams.seed, ready.hparams.seed + settings.seeds))
    results = retrain_seeds(study, best.number, seeds, settings.out, claims_for(settings.storage, settings.name,
                                                                                settings.out),
                            train, console.print, worker_name())
    console.print(describe(results))
    return results


def write_search(result: dict, settings: SearchSettings, retrained: dict[int, dict], console) -> None:
    """search.json in --out, and with --results the files to commit."""
    from ...runner.rundir import atomic_write, strict_json

    atomic_write(settings.out / "search.json", (strict_json(result) + "\n").encode())
    if settings.results:
        keep_results(settings.results, settings.out, result, retrained)
    console.print(f"written: {settings.out / 'search.json'}" + "".join(f", {settings.out / p}" for p in result["plots"]))
