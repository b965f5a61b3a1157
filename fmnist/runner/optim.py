"""Optimizers and learning-rate schedules by name: one registry entry each."""
from __future__ import annotations

import math
from typing import Callable

import torch

from ..hparams import TrainConfig

# name -> (parameters, hparams, extra keyword arguments such as fused=True) -> optimizer
OPTIMIZERS: dict[str, Callable[..., torch.optim.Optimizer]] = {
    "adam": lambda params, h, extra: torch.optim.Adam(params, lr=h.lr, weight_decay=h.rs, **extra),
    "adamw": lambda params, h, extra: torch.optim.AdamW(params, lr=h.lr, weight_decay=h.rs, **extra),
    "sgd": lambda params, h, extra: torch.optim.SGD(params, lr=h.lr, weight_decay=h.rs, momentum=h.momentum,
                                                    nesterov=h.nesterov and h.momentum > 0),
}
FUSABLE = {"adam", "adamw"}  # the optimizers with a fused CUDA kernel


def _warm(step: int, warmup: int) -> float:
    return (step + 1) / warmup


def _constant(step: int, total: int, warmup: int) -> float:
    return _warm(step, warmup) if step < warmup else 1.0


def _cosine(step: int, total: int, warmup: int) -> float:
    if step < warmup:
        return _warm(step, warmup)
    return 0.5 * (1 + math.cos(math.pi * (step - warmup) / max(1, total - warmup)))


# name -> (step, total steps, warm-up steps) -> multiplier of the learning rate
MULTIPLIERS: dict[str, Callable[[int, int, int], float]] = {"constant": _constant, "cosine": _cosine}


class PerStep:
    """A per-step scheduler (LambdaLR, OneCycleLR) with the run loop's end-of-epoch hook, which it does not need."""

    def __init__(self, inner):
        self.inner = inner

    def step(self) -> None:
        self.inner.step()

    def epoch_end(self, val_acc: float) -> None:
        """Nothing: the learning rate follows the step count alone."""

    def state_dict(self) -> dict:
        return self.inner.state_dict()

    def load_state_dict(self, state: dict) -> None:
        self.inner.load_state_dict(state)


PLATEAU_FACTOR, PLATEAU_PATIENCE = 0.5, 1  # halve the lr after two epochs in a row without a better validation accuracy


class Plateau:
    """Linear warm-up per step, then torch's ReduceLROnPlateau on validation accuracy (as Keras' ReduceLROnPlateau)."""

    def __init__(self, optimizer, total: int, warmup: int):
        self.optimizer, self.warmup, self.count = optimizer, warmup, 0
        self.base = [group["lr"] for group in optimizer.param_groups]
        self.reduce = torch.optim.lr_scheduler.ReduceLROnPlateau(optimizer, mode="max", factor=PLATEAU_FACTOR,
                                                                 patience=PLATEAU_PATIENCE)
        if warmup:
            self._scale(1 / warmup)

    def _scale(self, factor: float) -> None:
        for group, base in zip(self.optimizer.param_groups, self.base):
            group["lr"] = base * factor

    def step(self) -> None:
        self.count += 1
        if self.count <= self.warmup:  # written out: a LambdaLR would undo every reduction at its next step
            self._scale(min(1.0, (self.count + 1) / self.warmup))

    def epoch_end(self, val_acc: float) -> None:
        if self.count >= self.warmup:
            self.reduce.step(val_acc)

    def state_dict(self) -> dict:
        return {"count": self.count, "base": self.base, "reduce": self.reduce.state_dict()}

    def load_state_dict(self, state: dict) -> None:
        self.count, self.base = state["count"], state["base"]
        self.reduce.load_state_dict(state["reduce"])


def _multiplier_schedule(name: str):
    def make(optimizer, total: int, warmup: int):
        return PerStep(torch.optim.lr_scheduler.LambdaLR(optimizer, lambda step: MULTIPLIERS[name](step, total, warmup)))

    return make


def _onecycle(optimizer, total: int, warmup: int):
    """torch's OneCycleLR itself: up from lr/25 over the warm-up (30% of the run when none is given), cosine down to
    lr/25/1e4, momentum (Adam's beta1) cycled the other way; resumable through its state_dict."""
    peak = [group["lr"] for group in optimizer.param_groups]
    return PerStep(torch.optim.lr_scheduler.OneCycleLR(optimizer, max_lr=peak, total_steps=max(total, 2),
                                                       pct_start=min(0.99, warmup / total) if warmup and total else 0.3))


# name -> (optimizer, total steps, warm-up steps) -> a per-step scheduler
SCHEDULES: dict[str, Callable] = {"constant": _multiplier_schedule("constant"), "cosine": _multiplier_schedule("cosine"),
                                  "onecycle": _onecycle, "plateau": Plateau}


# Under a time budget: name -> multiplier of the learning rate at a fraction (0-1) of the budget spent
BUDGET_MULTIPLIERS: dict[str, Callable[[float], float]] = {"constant": lambda done: 1.0,
                                                         "cosine": lambda done: 0.5 * (1 + math.cos(math.pi * done))}
TICKS = 10_000  # a budgeted one-cycle runs over this many ticks of the budget, not over steps


class OverBudget(PerStep):
    """torch's OneCycleLR over TICKS ticks of a time budget: after each step it is advanced to the budget's share."""

    def __init__(self, inner, clock):
        super().__init__(inner)
        self.clock = clock

    def step(self) -> None:
        target = min(TICKS - 1, int(self.clock.fraction() * TICKS))
        while self.inner.last_epoch < target:
            self.inner.step()


def _budget_multiplier(name: str):
    def make(optimizer, clock, warmup: int):
        """The warm-up over its steps, the schedule over the budget: the smaller of the two, so they meet smoothly."""
        shape = BUDGET_MULTIPLIERS[name]
        return PerStep(torch.optim.lr_scheduler.LambdaLR(
            optimizer, lambda step: min(_warm(step, warmup) if step < warmup else 1.0, shape(clock.fraction()))))

    return make


def _budget_onecycle(optimizer, clock, warmup: int):
    """One-cycle over the budget: up over its first 30%, down over the rest (an epoch count of warm-up is refused: the
    epochs a budget buys are not known in advance)."""
    return OverBudget(_onecycle(optimizer, TICKS, 0).inner, clock)


def _budget_plateau(optimizer, clock, warmup: int):
    """Plateau follows validation, not time: the same as without a budget."""
    return Plateau(optimizer, 0, warmup)


# name -> (optimizer, budget clock, warm-up steps) -> a per-step scheduler that follows the budget's clock
BUDGET_SCHEDULES: dict[str, Callable] = {"constant": _budget_multiplier("constant"), "cosine": _budget_multiplier("cosine"),
                                         "onecycle": _budget_onecycle, "plateau": _budget_plateau}


def make_optimizer(model: torch.nn.Module, hparams: TrainConfig, fused: bool) -> torch.optim.Optimizer:
    extra = {"fused": True} if fused and hparams.optimizer in FUSABLE else {}
    return OPTIMIZERS[hparams.optimizer](model.parameters(), hparams, extra)


def make_schedule(optimizer: torch.optim.Optimizer, hparams: TrainConfig, steps_per_epoch: int, clock=None):
    """A per-step schedule over the whole run (stepped after every optimizer step): over its steps, or over the time
    budget's clock when it has one."""
    warmup = int(round(hparams.warmup_epochs * steps_per_epoch))
    if clock is not None:
        return BUDGET_SCHEDULES[hparams.schedule](optimizer, clock, warmup)
    return SCHEDULES[hparams.schedule](optimizer, hparams.num_epochs * steps_per_epoch, warmup)
