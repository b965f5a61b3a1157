"""The training loop: data already on the device as uint8, batches by index, metrics kept on the device."""
from __future__ import annotations

import math
import time
from typing import Callable

import torch
from torch import nn
from torch.optim.swa_utils import AveragedModel, get_ema_multi_avg_fn

from .. import interrupts
from ..errors import TrainingError
from . import speedups
from .augment import crop_and_flip, random_erase
from ..datasets.splits import Splits
from ..hparams import TrainConfig
from .evaluation import EvalSettings, Evaluation, evaluate
from .inputs import model_input
from .losses import LOSSES
from .mixing import mix_batch, mixing_alphas
from .optim import make_optimizer, make_schedule

PROGRESS_EVERY_S = 0.25  # reading the running loss syncs with the device, so only a few times a second


class NonFiniteLoss(TrainingError):
    """The loss became NaN or infinite."""


class Trainer:
    """The chosen optimizer (the study's: Adam with L2 weight decay), schedule and loss; resumable through state_dict()."""

    def __init__(self, model: nn.Module, splits: Splits, hparams: TrainConfig, device: torch.device,
                 fast: bool = True, precision: str = "fp32"):
        self.splits = splits
        self.hparams = hparams
        self.device = device
        self.fast = fast
        self.precision = speedups.check_precision(precision, device)
        self.channels_last = fast and speedups.use_channels_last(device)
        if fast and device.type == "cpu":
            speedups.tune_cpu_allocator()
        self.model = model.to(memory_format=torch.channels_last) if self.channels_last else model
        self.loss_fn = LOSSES[hparams.loss]
        self.optimizer = make_optimizer(model, hparams, fused=fast and speedups.fused_optimizer(device))
        self.schedule = make_schedule(self.optimizer, hparams, self.steps_per_epoch())
        self.generator = torch.Generator(device=device).manual_seed(hparams.seed)
        # an exponential moving average of the weights (buffers too, so batch norm's statistics match them)
        self.ema = AveragedModel(self.model, multi_avg_fn=get_ema_multi_avg_fn(hparams.ema), use_buffers=True) \
            if hparams.ema is not None else None
        self.mix_alphas = mixing_alphas(hparams)

    @property
    def eval_model(self) -> nn.Module:
        """The weights a run judges, saves as best.pt and tests: the average with --ema, else the trained ones."""
        return self.ema.module if self.ema is not None else self.model

    def _forward(self, images: torch.Tensor, labels: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """(logits, loss) of a training step, with --mixup/--cutmix blending the batch and the loss; the loss is
        always computed in fp32."""
        inputs = model_input(images, self.channels_last)
        mixed = mix_batch(inputs, labels, self.mix_alphas) if self.mix_alphas else None
        with speedups.autocast(self.device, self.precision):
            logits = self.model(mixed.inputs if mixed else inputs)
        scores = logits.float()
        loss = self.loss_fn(scores, labels, self.hparams.label_smoothing)
        if mixed:
            partner_loss = self.loss_fn(scores, mixed.partner_labels, self.hparams.label_smoothing)
            loss = mixed.share * loss + (1 - mixed.share) * partner_loss
        return logits, loss

    def steps_per_epoch(self) -> int:
        size, batch = len(self.splits.train_y), self.hparams.batch_size
        return size // batch + (1 if size % batch >= 2 else 0)  # a last batch of one image would break batch norm

    def train_epoch(self, epoch: int, on_progress: Callable[[int, float, float], None] | None = None) -> tuple[float, float]:
        """One pass over the training split; returns (mean loss, accuracy). Raises NonFiniteLoss."""
        model, batch = self.model, self.hparams.batch_size
        images, labels = self.splits.train_x, self.splits.train_y
        model.train()
        order = torch.randperm(len(labels), generator=self.generator, device=self.device)
        loss_sum = torch.zeros((), device=self.device)
        self._losses = torch.zeros(self.steps_per_epoch(), device=self.device)  # per step, read once at the end
        correct = torch.zeros((), dtype=torch.long, device=self.device)
        first_bad = torch.full((), -1, dtype=torch.long, device=self.device)
        seen, started, reported = 0, time.perf_counter(), time.perf_counter()
        for step in range(self.steps_per_epoch()):
            interrupts.check()  # a Ctrl-C that Python swallowed (it landed in a GC callback) stops here
            index = order[step * batch:(step + 1) * batch]
            x, y = images[index], labels[index]
            if self.hparams.augment:
                x = crop_and_flip(x, self.generator, self.hparams.crop_pad, self.hparams.flip)
            if self.hparams.erase:
                x = random_erase(x, self.generator, self.hparams.erase)
            logits, loss = self._forward(x, y)
            self.optimizer.zero_grad(set_to_none=True)
            loss.backward()
            if self.hparams.clip_grad is not None:  # on the device, no host sync
                torch.nn.utils.clip_grad_norm_(self.model.parameters(), self.hparams.clip_grad)
            self.optimizer.step()
            self.schedule.step()
            if self.ema is not None:
                self.ema.update_parameters(model)
            with torch.no_grad():
                loss_sum += loss.detach() * len(y)
                self._losses[step] = loss.detach()
                correct += (logits.argmax(1) == y).sum()
                # remember the first bad step without a host sync
                first_bad = torch.where((first_bad < 0) & ~torch.isfinite(loss.detach()), step + 1, first_bad)
            seen += len(y)
            if on_progress and time.perf_counter() - reported >= PROGRESS_EVERY_S:
                self._stop_if_bad(epoch, first_bad)
                on_progress(step + 1, float(loss_sum) / seen, seen / (time.perf_counter() - started))
                reported = time.perf_counter()
        self._stop_if_bad(epoch, first_bad)
        return float(loss_sum) / seen, int(correct) / seen

    def _stop_if_bad(self, epoch: int, first_bad: torch.Tensor) -> None:
        step = int(first_bad)
        if step >= 0:
            raise NonFiniteLoss(f"the loss became NaN/inf at epoch {epoch}, step {step} of {self.steps_per_epoch()} "
                                f"(try a lower --lr)")

    def epoch_losses(self) -> torch.Tensor:
        """The last epoch's loss at every step, on the CPU (one sync, when a logger asks)."""
        return self._losses.float().cpu()

    def end_epoch(self, val_acc: float) -> None:
        """The schedule's end-of-epoch step (the plateau schedule watches validation accuracy)."""
        self.schedule.epoch_end(val_acc)

    @property
    def eval_settings(self) -> EvalSettings:
        """How this trainer's models are judged: its loss, device, speed levers and test-time flip."""
        return EvalSettings(self.hparams.loss, self.device, self.precision, self.channels_last, self.hparams.tta)

    def evaluate(self, images: torch.Tensor, labels: torch.Tensor) -> Evaluation:
        """The current model on a whole split, with this trainer's loss and speed levers."""
        return evaluate(self.eval_model, images, labels, self.eval_settings)

    def validate(self, epoch: int, images: torch.Tensor, labels: torch.Tensor) -> Evaluation:
        """evaluate() after an epoch; a NaN/inf validation loss (an update after the last finite training loss
        diverged) stops training like a NaN training loss, before such a model can be kept as the best."""
        result = self.evaluate(images, labels)
        if not math.isfinite(result.loss):
            raise NonFiniteLoss(f"the validation loss became NaN/inf after epoch {epoch} (the weights diverged in its "
                                f"last steps; try a lower --lr)")
        return result

    def state_dict(self) -> dict:
        """Everything needed to continue exactly where this left off."""
        rng = {"torch": torch.get_rng_state(), "generator": self.generator.get_state()}
        if self.device.type == "cuda":
            rng["cuda"] = torch.cuda.get_rng_state(self.device)
        state = {"model": self.model.state_dict(), "optimizer": self.optimizer.state_dict(),
                 "schedule": self.schedule.state_dict(), "rng": rng}
        if self.ema is not None:
            state["ema"] = self.ema.state_dict()
        return state

    def load_state_dict(self, state: dict) -> None:
        self.model.load_state_dict(state["model"])
        self.optimizer.load_state_dict(state["optimizer"])
        self.schedule.load_state_dict(state["schedule"])
        if self.ema is not None:
            self.ema.load_state_dict(state["ema"])
        torch.set_rng_state(state["rng"]["torch"])
        self.generator.set_state(state["rng"]["generator"])
        if "cuda" in state["rng"] and self.device.type == "cuda":
            torch.cuda.set_rng_state(state["rng"]["cuda"], self.device)
