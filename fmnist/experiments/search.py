"""Hyper-parameter search with Optuna: the study's space, pruning per epoch, resumable SQLite storage by default,
and Optuna's own distributed mode when several workers share one database URL."""
from __future__ import annotations

import os
import socket
import time
from pathlib import Path

import torch

from ..errors import UsageError
from ..hparams import SPACE_SCHEMA

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
            if low > high or (name in ("lr", "rs") and low <= 0):
                raise ValueError
            return name, {"low": low, "high": high, "log": name in ("lr", "rs")}
        return name, {"choices": [convert(part) for part in value.split(",")]}
    except ValueError:
        raise UsageError(f"--space {text}: bad numbers (LOW <= HIGH, positive for lr and rs)") from None


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


def make_objective(spec, base_hparams: dict, space: dict, splits, device: torch.device, speed: dict, report):
    """Trial -> best validation accuracy of a run with the trial's hyper-parameters; hopeless trials are pruned."""
    import optuna

    from ..runner.session import make_model
    from ..runner.trainer import Trainer

    worker = f"{socket.gethostname()}:{os.getpid()}"

    def objective(trial) -> float:
        hparams = {**base_hparams, **suggest(trial, space)}
        trial.set_user_attr("worker", worker)
        trainer = Trainer(make_model(spec, hparams), splits, hparams, device, **speed)
        best = 0.0
        for epoch in range(1, hparams["num_epochs"] + 1):
            trainer.train_epoch(epoch)
            accuracy = trainer.evaluate(splits.val_x, splits.val_y).accuracy
            best = max(best, accuracy)
            trial.report(accuracy, epoch)
            if trial.should_prune():
                report(f"trial {trial.number}: pruned at epoch {epoch} (val {100 * accuracy:.2f}%) {trial.params}")
                raise optuna.TrialPruned()
        report(f"trial {trial.number}: best val {100 * best:.2f}% {trial.params}")
        return best

    return objective


def open_study(storage: str | None, name: str, out: Path, seed: int | None):
    """A study that is created or, when it exists, continued; SQLite in `out` unless a database URL is given."""
    import optuna

    url = storage or f"sqlite:///{(out / 'search.db').resolve()}"
    for attempt in range(4):
        try:
            study = optuna.create_study(study_name=name, storage=url, direction="maximize", load_if_exists=True,
                                        pruner=optuna.pruners.MedianPruner(n_startup_trials=3, n_warmup_steps=1))
            break
        except Exception as error:  # SQLAlchemy/driver errors: unreachable server, bad URL, missing driver, races
            racing = "UniqueViolation" in repr(error) or "IntegrityError" in type(error).__name__
            if racing and attempt < 3:  # workers started together race to create the tables: the loser looks again
                time.sleep(0.5 * (attempt + 1))
                continue
            first = str(error).strip().splitlines()[0][:200]
            raise UsageError(f"--storage {url}: cannot open the study ({type(error).__name__}: {first})") from None
    # one worker: reproducible, and a resumed search draws new points; several workers: each draws its own
    study.sampler = optuna.samplers.TPESampler(seed=seed + len(study.trials) if storage is None else None)
    return study


def finished_trials(study) -> int:
    import optuna

    states = (optuna.trial.TrialState.COMPLETE, optuna.trial.TrialState.PRUNED)
    return len(study.get_trials(deepcopy=False, states=states))


def optimise(study, objective, trials: int) -> None:
    """Run trials until the study (all workers together) holds `trials` finished ones."""
    import optuna
    from optuna.study import MaxTrialsCallback

    states = (optuna.trial.TrialState.COMPLETE, optuna.trial.TrialState.PRUNED)
    remaining = trials - finished_trials(study)
    if remaining > 0:
        study.optimize(objective, n_trials=remaining, callbacks=[MaxTrialsCallback(trials, states=states)],
                       catch=(), gc_after_trial=True)


def plot_search(study, out: Path) -> list[str]:
    """Optimisation history and parameter importances as PNG; returns the files written."""
    import warnings

    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from optuna.visualization import matplotlib as optuna_plots

    written = []
    for name, draw in (("optimization_history.png", optuna_plots.plot_optimization_history),
                       ("param_importances.png", optuna_plots.plot_param_importances)):
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # Optuna marks its matplotlib plots experimental
            try:
                axes = draw(study)
            except (ValueError, RuntimeError):  # importances need two finished trials that differ
                continue
        axes.figure.savefig(out / name, dpi=110, bbox_inches="tight")
        plt.close(axes.figure)
        written.append(name)
    return written
