"""A search trial: fit() with the trial's point, the run's own callbacks, and Optuna's pruning and the time budget as
one more callback; trial samplers seeded by trial number, so workers never draw the same points."""
from __future__ import annotations

import os
import socket
import time
from pathlib import Path

import torch

from ... import interrupts
from ...errors import TrainingError
from ...hparams import TrainConfig
from ...runner.fit import Callback, FitState
from .space import suggest

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


def make_objective(spec, base_hparams: TrainConfig, space: dict, splits, device: torch.device, speed: dict, console,
                   deadline: float | None = None, log: str | None = None, out: Path | None = None):
    """Trial -> best validation accuracy of fit() with the trial's hyper-parameters, with the run's own callbacks
    (early stopping, --log: OUT/tensorboard/trial-N) and Optuna's pruning and the time budget as more callbacks."""
    from ...runner.callbacks import callbacks_for
    from ...runner.fit import fit
    from ...runner.models import make_model
    from ...runner.progress import epoch_progress
    from ...runner.trainer import Trainer

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


def trial_sampler(seed: int, number: int):
    """The sampler for trial `number`, seeded by it: trial numbers are unique in a study, so workers sharing one
    (SQLite in one --out, or a database) never draw the same points, and one worker's search is reproducible."""
    import optuna

    return optuna.samplers.TPESampler(seed=seed + number)
