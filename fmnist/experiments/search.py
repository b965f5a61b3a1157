"""Hyper-parameter search with Optuna: the study's space, pruning per epoch, resumable SQLite storage by default,
and Optuna's own distributed mode when several workers share one database URL."""
from __future__ import annotations

import json
import os
import socket
import time
from dataclasses import dataclass, replace
from pathlib import Path

import torch

from .. import interrupts
from ..choices import PRUNERS
from ..errors import StorageError, TrainingError, UsageError
from ..hparams import DEFAULT_SPACE, SPACE_SCHEMA, value_problem
from ..redact import masked
from ..runner.fit import Callback, FitState
from .storage import create_or_join, database_lost, shared_storage

INTEGER = {"batch_size", "num_epochs"}  # suggested as integers


def parse_space_flag(text: str) -> tuple[str, dict]:
    """'lr=1e-4:1e-2' (a range; log for lr and rs) or 'batch_size=32,64' (choices) -> (name, range)."""
    name, _, value = text.partition("=")
    name = name.strip().replace("-", "_")
    if name not in SPACE_SCHEMA["properties"] or not value:
        raise UsageError(f"--space {text}: expected NAME=LOW:HIGH or NAME=A,B,C with NAME one of {', '.join(SPACE_SCHEMA['properties'])}")
    convert = int if name in INTEGER else float
    try:
        if ":" in value:
            low, high = (convert(part) for part in value.split(":", 1))
            return name, {"low": low, "high": high, "log": name in ("lr", "rs")}  # check_space judges the values
        return name, {"choices": [convert(part) for part in value.split(",")]}
    except ValueError:
        kind = "whole numbers" if convert is int else "numbers"
        raise UsageError(f"--space {text}: expected {kind}, as NAME=LOW:HIGH or NAME=A,B,C") from None


def check_space(space: dict, where: str) -> None:
    """Every choice, and both ends of every range, must be a value its hyper-parameter accepts (finite, in bounds)."""
    for name, rule in space.items():
        ends = rule["choices"] if "choices" in rule else [rule["low"], rule["high"]]
        for value in ends:
            if name in INTEGER and isinstance(value, float) and value.is_integer():
                value = int(value)
            problem = value_problem(name, value)
            if problem:
                raise UsageError(f"{where} {name}: {value!r} {problem}")
        if "low" in rule:
            if not rule["low"] <= rule["high"]:
                raise UsageError(f"{where} {name}: low {rule['low']} is above high {rule['high']}")
            if rule.get("log") and rule["low"] <= 0:
                raise UsageError(f"{where} {name}: a log range needs low > 0, got {rule['low']}")


def choose_space(spec_space: dict, flag_texts: tuple[str, ...], fixed: dict, spec_file: str | None) -> dict:
    """The study's space, then the spec's `search:`, then --space; a parameter a flag fixes is not searched."""
    space = dict(DEFAULT_SPACE)
    check_space(spec_space, f"{spec_file or 'spec'}: search:")
    space.update(spec_space)
    for text in flag_texts:
        name, rule = parse_space_flag(text)
        check_space({name: rule}, f"--space {text}:")
        space[name] = rule
    return {name: rule for name, rule in space.items() if fixed.get(name) is None}


def suggest(trial, space: dict) -> dict:
    """One point of the space, as hyper-parameters."""
    chosen = {}
    for name, rule in space.items():
        if "choices" in rule:
            chosen[name] = trial.suggest_categorical(name, rule["choices"])
        elif name in INTEGER:
            chosen[name] = trial.suggest_int(name, int(rule["low"]), int(rule["high"]), log=rule.get("log", False))
        else:
            chosen[name] = trial.suggest_float(name, rule["low"], rule["high"], log=rule.get("log", False))
    return chosen


class Pruning(Callback):
    """A search trial's end of epoch: its validation accuracy reported to Optuna, which may prune it; and the time
    budget (`deadline`, on time.monotonic's clock), which stops a trial still running when it is spent."""

    def __init__(self, trial, epochs: int, deadline: float | None, report):
        self.trial, self.epochs, self.deadline, self.report = trial, epochs, deadline, report

    def on_epoch_end(self, state: FitState) -> None:
        import optuna

        row = state.history[-1]
        epoch, accuracy = row["epoch"], row["val_acc"]
        self.trial.report(accuracy, epoch)
        if self.trial.should_prune():
            self.report(f"trial {self.trial.number}: pruned at epoch {epoch} (val {100 * accuracy:.2f}%) {self.trial.params}")
            raise optuna.TrialPruned()
        if self.deadline is not None and time.monotonic() > self.deadline and epoch < self.epochs:
            self.report(f"trial {self.trial.number}: stopped at epoch {epoch} (val {100 * accuracy:.2f}%): "
                        f"the time budget is spent {self.trial.params}")
            raise optuna.TrialPruned()


def make_objective(spec, base_hparams: dict, space: dict, splits, device: torch.device, speed: dict, console,
                   deadline: float | None = None, log: str | None = None, out: Path | None = None):
    """Trial -> best validation accuracy of fit() with the trial's hyper-parameters, with the run's own callbacks
    (early stopping, --log: OUT/tensorboard/trial-N) and Optuna's pruning and the time budget as more callbacks."""
    from ..runner.callbacks import callbacks_for
    from ..runner.fit import fit
    from ..runner.models import make_model
    from ..runner.progress import epoch_progress
    from ..runner.trainer import Trainer

    worker = worker_name()
    report = console.print

    def objective(trial) -> float:
        interrupts.check()  # a Ctrl-C swallowed between trials (Optuna's gc_after_trial) stops the search here
        trial.study.sampler = trial_sampler(base_hparams.seed, trial.number)
        hparams = base_hparams.replace(**suggest(trial, space))
        trial.set_user_attr("worker", worker)
        trainer = Trainer(make_model(spec, hparams, splits.normalization), splits, hparams, device, **speed)
        log_dir = (out or Path(".")) / "tensorboard" / f"trial-{trial.number}"
        callbacks = [*callbacks_for({**hparams.as_dict(), "log": log}, log_dir, trainer), Pruning(trial, hparams.num_epochs, deadline, report)]
        progress = lambda epoch, epochs, steps: epoch_progress(console, epoch, epochs, steps, f"trial {trial.number} · ")  # noqa: E731
        try:
            state = fit(trainer, splits, callbacks, progress=progress)
        except TrainingError as error:  # a diverging trial is a bad point of the space, not the end of the search
            report(f"trial {trial.number}: failed ({error.message}) {trial.params}")
            raise
        stopped = f" ({state.stopped})" if state.stopped else ""
        report(f"trial {trial.number}: best val {100 * state.best['val_acc']:.2f}%{stopped} {trial.params}")
        return state.best["val_acc"]

    return objective


def worker_name() -> str:
    """Which worker ran a trial or a retrain: host:pid."""
    return f"{socket.gethostname()}:{os.getpid()}"


def _pruners():
    """How hopeless trials are stopped, by name; the multi-fidelity ones (Hyperband, successive halving) compare
    trials at the same epoch and give the survivors more epochs. Each epoch's validation accuracy is reported."""
    import optuna

    return dict(zip(PRUNERS, (
        lambda: optuna.pruners.HyperbandPruner(min_resource=1, max_resource="auto", reduction_factor=3),
        lambda: optuna.pruners.SuccessiveHalvingPruner(min_resource=1, reduction_factor=3),
        lambda: optuna.pruners.MedianPruner(n_startup_trials=3, n_warmup_steps=1),
        optuna.pruners.NopPruner,
    ), strict=True))


def open_study(storage: str | None, name: str, out: Path, seed: int | None, pruner: str = "hyperband"):
    """A study that is created or, when it exists, continued; SQLite in `out` unless a database URL is given."""
    import optuna

    url = storage or f"sqlite:///{(out / 'search.db').resolve()}"
    if storage is None:  # several workers on one SQLite file wait for each other's writes (up to a minute)
        make_storage = lambda: optuna.storages.RDBStorage(url, engine_kwargs={"connect_args": {"timeout": 60}})  # noqa: E731
    else:  # a killed worker's trial is failed once it stops beating, and its point is tried again, once
        make_storage = lambda: shared_storage(url, retry_stale=True)  # noqa: E731
    return create_or_join(url, "the study", make_storage, study_name=name, direction="maximize",
                          pruner=_pruners()[pruner](), sampler=trial_sampler(seed, 0))


def trial_sampler(seed: int, number: int):
    """The sampler for trial `number`, seeded by it: trial numbers are unique in a study, so workers sharing one
    (SQLite in one --out, or a database) never draw the same points, and one worker's search is reproducible."""
    import optuna

    return optuna.samplers.TPESampler(seed=seed + number)


def finished_trials(study) -> int:
    import optuna

    states = (optuna.trial.TrialState.COMPLETE, optuna.trial.TrialState.PRUNED)
    return len(study.get_trials(deepcopy=False, states=states))


def optimise(study, objective, trials: int, seconds: float | None = None, after_trial=None) -> None:
    """Run trials until the study (all workers together) holds `trials` finished ones, or `seconds` have passed;
    after_trial(study, trial) is called as each of this worker's trials ends."""
    import optuna
    from optuna.study import MaxTrialsCallback

    states = (optuna.trial.TrialState.COMPLETE, optuna.trial.TrialState.PRUNED)
    remaining = trials - finished_trials(study)
    if remaining > 0:
        study.optimize(objective, n_trials=remaining, timeout=seconds,
                       callbacks=[MaxTrialsCallback(trials, states=states), *([after_trial] if after_trial else [])],
                       catch=(TrainingError,), gc_after_trial=True)
    if not study.get_trials(deepcopy=False, states=(optuna.trial.TrialState.COMPLETE,)):
        if seconds and not study.get_trials(deepcopy=False, states=(optuna.trial.TrialState.FAIL,)):
            raise TrainingError(f"no trial finished within the time budget ({seconds / 60:g} min): give it more "
                                f"--minutes, or fewer epochs per trial; the stopped trials are stored")
        raise TrainingError(f"no trial finished: all {len(study.trials)} failed (see the lines above); "
                            f"the space or the fixed settings cannot train")


MIN_TRIALS_FOR_IMPORTANCES = 5  # fewer finished trials give importances that are noise


def plot_search(study, out: Path, title: str, report=print) -> list[str]:
    """search_history.png (every trial's best validation accuracy in %, and the best so far) and, with enough
    trials, param_importances.png; returns the files written. Optuna's plot style does not leak into later plots."""
    import warnings

    from ..runner.plots import save_figure  # first: it sets matplotlib up (a writable config folder, no display)

    import matplotlib
    import matplotlib.pyplot as plt
    import optuna
    from matplotlib.ticker import MaxNLocator

    complete = [t for t in study.get_trials(deepcopy=False) if t.state == optuna.trial.TrialState.COMPLETE]
    # a pruned trial at the best validation accuracy it reached before it was stopped
    pruned = [t for t in study.get_trials(deepcopy=False) if t.state == optuna.trial.TrialState.PRUNED and t.intermediate_values]
    written = []
    if complete:
        figure, axes = plt.subplots(figsize=(7, 4.5))
        numbers, values = [t.number for t in complete], [100 * t.value for t in complete]
        best = [max(values[:i + 1]) for i in range(len(values))]
        axes.plot(numbers, values, "o", color="tab:blue", label="trial (best validation epoch)")
        if pruned:
            axes.plot([t.number for t in pruned], [100 * max(t.intermediate_values.values()) for t in pruned], "x",
                      color="tab:gray", label="pruned trial (its best epoch before it stopped)")
        last = max(t.number for t in study.get_trials(deepcopy=False))  # the best holds until the last trial
        axes.plot([*numbers, last], [*best, best[-1]], "-", color="tab:red", drawstyle="steps-post", label="best so far")
        axes.set_xlabel("trial")
        axes.xaxis.set_major_locator(MaxNLocator(integer=True))
        axes.set_ylabel("validation accuracy (%)")
        stopped = f", {len(pruned)} pruned" if pruned else ""
        axes.set_title(f"{title}: search history ({len(complete)} complete trials{stopped})")
        axes.grid(alpha=0.3)
        axes.legend(loc="best", fontsize="small", framealpha=0.8)
        save_figure(figure, out / "search_history.png")
        written.append("search_history.png")
    if len(complete) < MIN_TRIALS_FOR_IMPORTANCES:
        report(f"parameter importances need at least {MIN_TRIALS_FOR_IMPORTANCES} complete trials "
               f"({len(complete)} so far): not plotted")
        return written
    from optuna.visualization import matplotlib as optuna_plots

    with matplotlib.rc_context(), warnings.catch_warnings():  # Optuna sets its own style: keep it inside
        warnings.simplefilter("ignore")  # Optuna marks its matplotlib plots experimental
        try:
            axes = optuna_plots.plot_param_importances(study)
        except (ValueError, RuntimeError) as error:  # e.g. every trial drew the same values
            report(f"parameter importances not plotted ({' '.join(str(error).split())[:100]})")
            return written
        axes.set_title(f"{title}: parameter importances for validation accuracy")
        save_figure(axes.figure, out / "param_importances.png")
    written.append("param_importances.png")
    return written


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


def run_search(ready, space: dict, settings: SearchSettings, options, console) -> dict:
    """Optimise until the study holds `trials` finished trials, plot it, retrain and test the best; returns search.json."""
    with database_lost(settings.storage):
        return _run_search(ready, space, settings, options, console)


def _run_search(ready, space: dict, settings: SearchSettings, options, console) -> dict:
    import optuna

    from ..datasets.loading import load_data
    from ..runner.preflight import cpu_threads
    from ..runner.rundir import atomic_write, strict_json
    from ..runner.session import RunInterrupted, start

    optuna.logging.set_verbosity(optuna.logging.ERROR)  # its per-trial warnings repeat what our own lines say
    out = settings.out
    created = not out.exists()
    try:
        out.mkdir(parents=True, exist_ok=True)
        check_out_owner(out, settings.name)
        study = open_study(settings.storage, settings.name, out, ready.hparams.seed, settings.pruner)
        (out / STUDY_MARK).write_text(f"{settings.name}\n")
    except OSError as error:
        raise UsageError(f"--out {out}: cannot create it ({error.strerror})") from None
    except UsageError:
        if created and out.is_dir() and not any(out.iterdir()):
            out.rmdir()  # a search that never started leaves no empty folder behind
        raise
    storage = masked(settings.storage) if settings.storage else out / "search.db"
    finished = finished_trials(study)
    goal = f"of {settings.trials} " if finished < settings.trials else f"(--trials {settings.trials}: no new trial) "
    console.print(f"study {settings.name} · {finished} {goal}trials finished · "
                  f"storage {storage} · space {json.dumps(space)}")
    splits = load_data(ready.data, options.train_limit).to(ready.device)
    seconds = settings.minutes * 60 if settings.minutes else None
    deadline = time.monotonic() + seconds if seconds else None
    objective = make_objective(ready.spec, ready.hparams, space, splits, ready.device, ready.speed, console, deadline,
                               ready.log, out)
    keep_trials = (lambda study, _trial=None: write_trials(study, settings.results / "trials")) if settings.results else None
    try:
        with cpu_threads(options.threads):
            optimise(study, objective, settings.trials, seconds, keep_trials)
    except KeyboardInterrupt:
        raise RunInterrupted("interrupted; the finished trials are stored: run the same command again to continue") from None
    if keep_trials:
        keep_trials(study)  # other machines' trials too
    best = study.best_trial
    console.print(f"best: trial {best.number}, val {100 * best.value:.2f}%, {best.params}")
    result = {"study": settings.name, "pruner": settings.pruner, "minutes": settings.minutes,
              "trials": finished_trials(study), "best_trial": best.number,
              "best_val_acc": best.value, "best_params": best.params,
              "plots": plot_search(study, out, ready.spec.name, console.print)}
    if settings.retrain:
        from .retrains import claims_for, describe, retrain_seeds, summarise

        def train(seed: int, folder: Path) -> None:
            start(ready.spec, {**ready.hparams.as_dict(), **best.params, "seed": seed}, replace(options, run_dir=str(folder)),
                  console, startup_from=time.monotonic())

        first = ready.hparams.seed
        seeds = list(range(first, first + settings.seeds))
        results = retrain_seeds(study, best.number, seeds, out, claims_for(settings.storage, settings.name, out), train,
                                console.print, worker_name())
        result["retrain"] = summarise(results)
        console.print(describe(results))
    atomic_write(out / "search.json", (strict_json(result) + "\n").encode())
    if settings.results:
        _keep_results(settings.results, out, result, results if settings.retrain else {})
    console.print(f"written: {out / 'search.json'}" + "".join(f", {out / p}" for p in result["plots"]))
    return result


STUDY_MARK = ".fmnist-study"  # the name of the study an --out folder belongs to


def check_out_owner(out: Path, name: str) -> None:
    """An --out folder holds one study (STUDY_MARK, written once its study is open): its retrains, search.json and
    plots are named for that study alone."""
    mark = out / STUDY_MARK
    owner = mark.read_text().strip() if mark.is_file() else _study_in(out / "search.json")
    if owner and owner != name:
        raise UsageError(f"--out {out} holds study '{owner}' (its search.json, plots and retrains); give study '{name}' "
                         f"its own --out")


def _study_in(search_json: Path) -> str | None:
    try:
        return str(json.loads(search_json.read_text())["study"])
    except (OSError, ValueError, KeyError, TypeError):
        return None


def trial_record(trial) -> dict:
    """A finished trial as data: its point, state, best validation accuracy, each epoch's, worker and times."""
    ended, started = trial.datetime_complete, trial.datetime_start
    return {"number": trial.number, "state": trial.state.name, "value": trial.value, "params": trial.params,
            "val_acc_per_epoch": [trial.intermediate_values[epoch] for epoch in sorted(trial.intermediate_values)],
            "worker": trial.user_attrs.get("worker"), "started": started.isoformat(timespec="seconds") if started else None,
            "ended": ended.isoformat(timespec="seconds") if ended else None,
            "seconds": round((ended - started).total_seconds(), 1) if ended and started else None}


def write_trials(study, folder: Path) -> None:
    """Every finished trial of the study (this worker's and the others') as trial-NNNN.json in `folder`, written as
    it ends, so the search survives its database as files to commit."""
    from ..runner.rundir import atomic_write, strict_json

    folder.mkdir(parents=True, exist_ok=True)
    for trial in study.get_trials(deepcopy=False):
        target = folder / f"trial-{trial.number:04d}.json"
        if trial.state.is_finished() and not target.exists():
            atomic_write(target, (strict_json(trial_record(trial)) + "\n").encode())


def _keep_results(folder: Path, out: Path, result: dict, retrained: dict[int, dict]) -> None:
    """The search as small files to commit: its result, its plots and each retrained seed's run (like a grid cell's
    result): best.json for the first seed, best-seedS.json for the others."""
    from ..runner.rundir import atomic_write, strict_json

    try:
        folder.mkdir(parents=True, exist_ok=True)
    except OSError as error:
        raise StorageError(f"--results {folder}: cannot create it ({error.strerror}); the search is kept in {out}") from None
    atomic_write(folder / "search.json", (out / "search.json").read_bytes())
    for plot in result["plots"]:
        atomic_write(folder / plot, (out / plot).read_bytes())
    for position, (seed, run_result) in enumerate(retrained.items()):
        target = folder / ("best.json" if position == 0 else f"best-seed{seed}.json")
        atomic_write(target, (strict_json(run_result) + "\n").encode())
