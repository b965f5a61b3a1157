"""Training to a time budget: a clock of training time (the steps only: validation, testing and start-up do not
count), the schedule's progress read from it, and the callback that ends the run when it is spent.

One process reads its own clock at every step. Several processes must step with the same learning rate, so they read
an agreed clock: the slowest rank's, agreed every few steps (when they already meet to look for a NaN loss).
"""
from __future__ import annotations

import time
from dataclasses import dataclass

from ..durations import minutes_text
from .fit import Callback, FitState


class BudgetClock:
    """Seconds of training spent out of a budget; resumable (its state is in last.pt)."""

    def __init__(self, minutes: float, shared: bool = False):
        self.seconds = minutes * 60
        self.shared = shared  # several ranks: decisions follow the agreed reading, not this rank's own clock
        self._before = 0.0  # spent in earlier epochs (and before a resume)
        self._since: float | None = None
        self._agreed = 0.0

    def start(self) -> None:
        self._since = time.perf_counter()

    def stop(self) -> None:
        """The end of an epoch's steps: what it spent is added up (with several ranks, the agreed figure)."""
        self._before = self._agreed if self.shared else self.own()
        self._since = None

    def own(self) -> float:
        """Seconds spent as this process measures them."""
        return self._before + (time.perf_counter() - self._since if self._since is not None else 0.0)

    def agree(self, slowest: float) -> None:
        """With several ranks: the reading every rank uses from now on (the largest of their own)."""
        self._agreed = slowest

    def spent(self) -> float:
        return self._agreed if self.shared else self.own()

    def fraction(self) -> float:
        """How far through the budget training is, 0 to 1: the schedule's position."""
        return min(1.0, self.spent() / self.seconds)

    def is_spent(self) -> bool:
        return self.spent() >= self.seconds

    def state_dict(self) -> dict:
        return {"spent": self.spent()}

    def load_state_dict(self, state: dict) -> None:
        self._before = self._agreed = float(state["spent"])


@dataclass
class BudgetUse:
    """What a budgeted run bought: written to summary.json and config.yaml when it ends."""

    minutes: float
    spent_seconds: float
    epochs: float  # finished epochs plus the share of the last one the budget paid for
    steps: int
    machine: str

    def as_dict(self) -> dict:
        return {"minutes": self.minutes, "spent_seconds": round(self.spent_seconds, 2), "epochs": round(self.epochs, 3),
                "steps": self.steps, "machine": self.machine}


class BudgetSpent(Callback):
    """Ends the run at the end of the epoch in which the budget ran out (the trainer stops that epoch's steps there)."""

    def __init__(self, minutes: float, log_dir=None, trainer=None):
        self.minutes, self.trainer = minutes, trainer

    def on_epoch_end(self, state: FitState) -> str | None:
        clock = self.trainer.clock if self.trainer is not None else None
        if clock is None or not clock.is_spent():
            return None
        bought = self.trainer.budget_use(len(state.history))
        return (f"the budget of {minutes_text(self.minutes)} is spent: it bought {bought.epochs:.2f} epochs "
                f"({bought.steps:,} steps) on {bought.machine}")
