"""Hooks into the run loop: a feature of a run (early stopping, later loggers) is a callback, not an `if` in the loop.

Each callback is made from one setting (CALLBACKS: setting name -> factory), so adding one is one entry.
"""
from __future__ import annotations

LOGGERS = ("tensorboard",)  # --log NAME


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

    def __init__(self, patience: int, run=None, trainer=None):
        self.patience = patience

    def on_epoch_end(self, state) -> str | None:
        waited = state.history[-1]["epoch"] - state.best["epoch"]
        if waited >= self.patience:
            return (f"early stop after epoch {state.history[-1]['epoch']}: no validation improvement for {waited} "
                    f"epoch(s) since epoch {state.best['epoch']} (--patience {self.patience})")
        return None


class TensorBoard(Callback):
    """Per-step loss, per-epoch metrics and learning rate, the graph and the hyper-parameters, in RUN/tensorboard."""

    def __init__(self, name: str, run, trainer):
        from torch.utils.tensorboard import SummaryWriter

        self.run, self.trainer = run, trainer
        self.writer = SummaryWriter(log_dir=str(run.file("tensorboard")))

    def on_train_start(self, state) -> None:
        if state.saved:  # a resumed run: the graph is written already
            return
        import torch

        from .inputs import model_input

        example = model_input(self.trainer.splits.val_x[:2], self.trainer.channels_last)
        rng = torch.get_rng_state()  # a logged run must train exactly as an unlogged one
        try:
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
                   for key, value in self.trainer.hparams.items()}
        self.writer.add_hparams(hparams, {"hparam/best_val_acc": state.best["val_acc"]}, run_name=".")
        self.writer.close()


def _logger(name: str, run, trainer) -> Callback:
    return {"tensorboard": TensorBoard}[name](name, run, trainer)


CALLBACKS = {"patience": EarlyStopping, "log": _logger}


def callbacks_for(settings: dict, run=None, trainer=None) -> list[Callback]:
    """The callbacks a run's settings turn on (a setting left unset, None, turns its callback off)."""
    return [make(settings[name], run, trainer) for name, make in CALLBACKS.items() if settings.get(name) is not None]


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
