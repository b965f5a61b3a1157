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
from .fidelity import FIDELITIES, Fidelity, rungs_ms
from .space import suggest

class Pruning(Callback):
    """A search trial's judgement: its validation accuracy reported to Optuna, which may prune it; and the worker's
    time (`deadline`, on time.monotonic's clock), which stops a trial still running when it is spent.

    As the fidelity says (fidelity.py): at each epoch's end, at the epoch's number or under a per-trial budget at the
    milliseconds of training spent; also at the budget's rungs inside epochs; or (by images) not per epoch at all."""

    def __init__(self, trial, epochs: int, deadline: float | None, report, trainer=None,
                 fidelity: Fidelity = FIDELITIES["epochs"]):
        self.trial, self.epochs, self.deadline, self.report, self.trainer = trial, epochs, deadline, report, trainer
        self.clock = trainer.clock if trainer is not None else None
        self.per_epoch = not fidelity.by_images
        self.rungs = rungs_ms(trainer.hparams.budget) if self.clock is not None and fidelity.inside_epochs else []

    def on_step(self, state: FitState) -> None:
        if self.clock is None or not self.rungs or self.clock.spent() * 1000 < self.rungs[0]:
            return
        rung = self.rungs.pop(0)
        accuracy = self.trainer.judge_now(state.epoch).accuracy
        self.judge(accuracy, rung, f"at {rung / 1000:g} s of training, in epoch {state.epoch}")

    def on_epoch_end(self, state: FitState) -> None:
        row = state.history[-1]
        epoch, accuracy = row["epoch"], row["val_acc"]
        if self.per_epoch:
            self.judge(accuracy, int(self.clock.spent() * 1000) if self.clock is not None else epoch, f"at epoch {epoch}")
        if self.deadline is not None and time.monotonic() > self.deadline and epoch < self.epochs:
            import optuna

            self.report(f"trial {self.trial.number}: stopped at epoch {epoch} (val {100 * accuracy:.2f}%): "
                        f"the time budget is spent {self.trial.params}")
            raise optuna.TrialPruned()

    def judge(self, accuracy: float, resource: int, where: str) -> None:
        import optuna

        self.trial.report(accuracy, resource)
        if self.trial.should_prune():
            self.report(f"trial {self.trial.number}: pruned {where} (val {100 * accuracy:.2f}%) {self.trial.params}")
            raise optuna.TrialPruned()


def make_objective(spec, base_hparams: TrainConfig, space: dict, splits, device: torch.device, speed: dict, console,
                   deadline: float | None = None, log: str | None = None, out: Path | None = None,
                   fidelity: Fidelity = FIDELITIES["epochs"]):
    """Trial -> best validation accuracy of fit() with the trial's hyper-parameters, with the run's own callbacks
    (early stopping, --log: OUT/tensorboard/trial-N) and Optuna's pruning and the time budget as more callbacks; by
    images, the trial trains on a growing share of the training images, judged after each."""
    from ...runner.callbacks import callbacks_for
    from ...runner.fit import fit
    from ...runner.models import make_model
    from ...runner.progress import epoch_progress
    from ...runner.trainer import Trainer

    worker = worker_name()
    report = console.print
    counts = fidelity.image_counts(len(splits.train_y))

    def train(trial, hparams: TrainConfig, images: int):
        """One training of the trial's point on the first `images` training images (a budget scaled by the share)."""
        share = images / counts[-1]
        if hparams.budget is not None and share < 1:
            hparams = hparams.replace(budget=hparams.budget * share)
        part = splits.training_subset(images)
        trainer = Trainer(make_model(spec, hparams, splits.normalization), part, hparams, device, **speed)
        log_dir = (out or Path(".")) / "tensorboard" / f"trial-{trial.number}" / (f"{images}-images" if share < 1 else "")
        callbacks = [*callbacks_for({**hparams.as_dict(), "log": log}, log_dir, trainer),
                     Pruning(trial, hparams.num_epochs, deadline, report, trainer, fidelity)]
        label = f"trial {trial.number} · " + (f"{images:,} images · " if share < 1 else "")
        progress = lambda epoch, epochs, steps: epoch_progress(console, epoch, epochs, steps, label)  # noqa: E731
        state = fit(trainer, part, callbacks, progress=progress)
        return callbacks[-1], state

    def objective(trial) -> float:
        interrupts.check()  # a Ctrl-C swallowed between trials (Optuna's gc_after_trial) stops the search here
        trial.study.sampler = trial_sampler(base_hparams.seed, trial.number)
        hparams = base_hparams.replace(**suggest(trial, space))
        trial.set_user_attr("worker", worker)
        try:
            for images in counts:
                pruning, state = train(trial, hparams, images)
                if images < counts[-1]:  # a lower fidelity: judged, and pruned or trained on more images
                    pruning.judge(state.best["val_acc"], images, f"after {images:,} training images")
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
