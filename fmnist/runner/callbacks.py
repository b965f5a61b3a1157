"""Hooks into the run loop: a feature of a run (early stopping, later loggers) is a callback, not an `if` in the loop.

Each callback is made from one hyper-parameter (CALLBACKS: setting name -> class), so adding one is one entry.
"""
from __future__ import annotations


class Callback:
    """Called by the run loop at its three moments; every method may be left as it is."""

    def on_train_start(self, state) -> None:
        """Before the first epoch of this process (a resumed run starts here too)."""

    def on_epoch_end(self, state) -> str | None:
        """After an epoch is saved; a returned text is a reason to stop, and is recorded in summary.json."""
        return None

    def on_train_end(self, state) -> None:
        """After the last epoch, before the best epoch is tested."""


class EarlyStopping(Callback):
    """Stop when validation accuracy has not improved for `patience` epochs (as Keras' EarlyStopping)."""

    def __init__(self, patience: int):
        self.patience = patience

    def on_epoch_end(self, state) -> str | None:
        waited = state.history[-1]["epoch"] - state.best["epoch"]
        if waited >= self.patience:
            return (f"early stop after epoch {state.history[-1]['epoch']}: no validation improvement for {waited} "
                    f"epoch(s) since epoch {state.best['epoch']} (--patience {self.patience})")
        return None


CALLBACKS = {"patience": EarlyStopping}


def callbacks_for(hparams: dict) -> list[Callback]:
    """The callbacks a run's settings turn on (a setting left unset, None, turns its callback off)."""
    return [make(hparams[name]) for name, make in CALLBACKS.items() if hparams.get(name) is not None]
