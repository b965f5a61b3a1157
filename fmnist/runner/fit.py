"""THE epoch loop: train, validate, keep the best, ask the callbacks. It touches no disk: a run folder's files (metrics,
checkpoints, plots), a search trial's pruning and time budget, early stopping and loggers are all callbacks.
"""
from __future__ import annotations

import time
from contextlib import nullcontext
from dataclasses import dataclass, field

from .. import interrupts


@dataclass
class FitState:
    """What training has done so far: the epochs' metrics, its best epoch, and why it stopped early (if it did)."""

    history: list[dict] = field(default_factory=list)
    best: dict = field(default_factory=lambda: {"epoch": 0, "val_acc": -1.0})
    saved: int = 0  # epochs a run folder holds in last.pt: what a resume continues from
    stopped: str | None = None  # why training ended before its last epoch (a callback's reason)
    improved: bool = False  # the last epoch is the best so far
    epoch: int = 0  # the epoch under way, or the last one once training is over

    @classmethod
    def from_checkpoint(cls, checkpoint) -> "FitState":
        """Where a run's last.pt (a Checkpoint) left off."""
        return cls(list(checkpoint.history), dict(checkpoint.best), int(checkpoint.epoch))


class Callback:
    """Called by fit() at its three moments; every method may be left as it is."""

    def on_train_start(self, state: FitState) -> None:
        """Before the first epoch of this process (a resumed run starts here too)."""

    def on_epoch_end(self, state: FitState) -> str | None:
        """After an epoch is validated; a returned text is a reason to stop, recorded in summary.json. Raising
        ends training too (a search pruning its trial)."""
        return None

    def on_step(self, state: FitState) -> None:
        """After every training step (a search's rung inside an epoch); only callbacks that define it are called."""

    def on_train_end(self, state: FitState) -> None:
        """After the last epoch, before the best epoch is tested."""


def stop_reason(callbacks: list[Callback], state: FitState) -> str | None:
    """Every callback hears of the epoch; the first reason to stop, if any, wins."""
    reasons = [callback.on_epoch_end(state) for callback in callbacks]
    return next((reason for reason in reasons if reason), None)


def fit(trainer, splits, callbacks: list[Callback], state: FitState | None = None, progress=None) -> FitState:
    """Train `trainer` for its epochs (from where `state` left off), validating each on splits.val_x/val_y.

    progress(epoch, epochs, steps) -> a context yielding a per-step callback (a progress bar), or None for none;
    epochs is None under a time budget (its clock, not a count, ends training).
    """
    state = state or FitState()
    stepping = [callback for callback in callbacks if type(callback).on_step is not Callback.on_step]

    def each_step() -> None:
        for callback in stepping:
            callback.on_step(state)

    epochs = trainer.hparams.num_epochs
    planned = None if trainer.clock is not None else epochs
    state.epoch = len(state.history) + 1
    for callback in callbacks:
        callback.on_train_start(state)
    if state.history:  # a resumed run that had already decided to stop does not train on
        state.stopped = stop_reason(callbacks, state)
    for epoch in range(len(state.history) + 1, epochs + 1):
        if state.stopped:
            break
        state.epoch = epoch
        started = time.perf_counter()
        with (progress(epoch, planned, trainer.steps_per_epoch()) if progress else nullcontext()) as on_progress:
            train_loss, train_acc = trainer.train_epoch(epoch, on_progress, each_step if stepping else None)
        seconds = time.perf_counter() - started
        # judge it on the validation split; the best epoch so far is the one that gets tested
        val = trainer.validate(epoch, splits.val_x, splits.val_y)
        trainer.end_epoch(val.accuracy)
        state.history.append({"epoch": epoch, "train_loss": round(train_loss, 6), "train_acc": round(train_acc, 6),
                              "val_loss": round(val.loss, 6), "val_acc": round(val.accuracy, 6),
                              "seconds": round(seconds, 3)})
        state.improved = val.accuracy > state.best["val_acc"]
        if state.improved:
            state.best = {"epoch": epoch, "val_acc": val.accuracy}
        state.stopped = stop_reason(callbacks, state)
        interrupts.check()  # a signal swallowed in a callback's clean-up (a GC pass, a __del__) still stops here
    for callback in callbacks:
        callback.on_train_end(state)
    return state
