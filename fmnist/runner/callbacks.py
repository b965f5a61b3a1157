"""Callbacks a setting turns on, in a run and in a search trial alike: a feature of training (early stopping, a
logger) is a callback of fit(), not an `if` in the loop.

Each callback is made from one setting (CALLBACKS: setting name -> factory), so adding one is one entry.
"""
from __future__ import annotations

import warnings
from pathlib import Path
from typing import Callable

from .budget import BudgetSpent
from .fit import Callback

LOGGERS = ("tensorboard",)  # --log NAME


class EarlyStopping(Callback):
    """Stop when validation accuracy has not improved for `patience` epochs (as Keras' EarlyStopping)."""

    def __init__(self, patience: int, log_dir=None, trainer=None):
        self.patience = patience

    def on_epoch_end(self, state) -> str | None:
        waited = state.history[-1]["epoch"] - state.best["epoch"]
        if waited >= self.patience:
            return (f"early stop after epoch {state.history[-1]['epoch']}: no validation improvement for {waited} "
                    f"epoch(s) since epoch {state.best['epoch']} (--patience {self.patience})")
        return None


class TensorBoard(Callback):
    """Per-step loss, per-epoch metrics and learning rate, the graph and the hyper-parameters, in `log_dir` (a run's
    RUN/tensorboard, a search trial's OUT/tensorboard/trial-N)."""

    def __init__(self, name: str, log_dir: Path, trainer):
        from torch.utils.tensorboard import SummaryWriter

        self.trainer = trainer
        self.writer = SummaryWriter(log_dir=str(log_dir))

    def on_train_start(self, state) -> None:
        if state.saved:  # a resumed run: the graph is written already
            return
        import torch

        from .inputs import model_input

        example = model_input(self.trainer.splits.val_x[:2], self.trainer.channels_last)
        rng = torch.get_rng_state()  # a logged run must train exactly as an unlogged one
        try:
            with warnings.catch_warnings():  # TensorBoard draws the graph with torch.jit.trace, which torch deprecates
                warnings.simplefilter("ignore", FutureWarning)
                self.writer.add_graph(self.trainer.model.eval(), example)
        except Exception as error:  # the graph is a picture, not a result: a model it cannot trace still trains
            self.writer.add_text("graph", f"not traced: {type(error).__name__}")
        finally:
            self.trainer.model.train()
            torch.set_rng_state(rng)

    def on_epoch_end(self, state) -> str | None:
        row = state.history[-1]
        epoch, steps = row["epoch"], self.trainer.steps_per_epoch()
        for step, loss in enumerate(self.trainer.epoch_losses().tolist(), start=(epoch - 1) * steps + 1):
            self.writer.add_scalar("train/step_loss", loss, step)
        for name in ("train_loss", "train_acc", "val_loss", "val_acc"):
            self.writer.add_scalar(name.replace("_", "/", 1), row[name], epoch)
        self.writer.add_scalar("lr", self.trainer.optimizer.param_groups[0]["lr"], epoch)
        self.writer.flush()
        return None

    def on_train_end(self, state) -> None:
        hparams = {key: value if isinstance(value, (int, float, str, bool)) else str(value)
                   for key, value in self.trainer.hparams.as_dict().items()}
        self.writer.add_hparams(hparams, {"hparam/best_val_acc": state.best["val_acc"]}, run_name=".")
        self.writer.close()


def _logger(name: str, log_dir: Path, trainer) -> Callback:
    return {"tensorboard": TensorBoard}[name](name, log_dir, trainer)


CALLBACKS: dict[str, Callable[..., Callback]] = {"patience": EarlyStopping, "budget": BudgetSpent, "log": _logger}


def callbacks_for(settings: dict, log_dir: Path | None = None, trainer=None) -> list[Callback]:
    """The callbacks the settings turn on (a setting left unset, None, turns its callback off); loggers write to
    `log_dir`."""
    return [make(settings[name], log_dir, trainer) for name, make in CALLBACKS.items() if settings.get(name) is not None]


def check_logger(name: str | None) -> None:
    """--log NAME: a logger fmnist has, whose package is installed (an optional extra)."""
    from ..errors import UsageError

    if name is None:
        return
    if name not in LOGGERS:
        raise UsageError(f"--log {name}: use one of {', '.join(LOGGERS)}")
    try:
        import tensorboard  # noqa: F401
    except ImportError:
        raise UsageError("--log tensorboard needs TensorBoard: pip install 'fmnist[tensorboard]'") from None
