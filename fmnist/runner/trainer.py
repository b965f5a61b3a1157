"""The training loop: data already on the device as uint8, batches by index, metrics kept on the device."""
from __future__ import annotations

import math
import time
from typing import Callable

import torch
from torch import nn
from torch.optim.swa_utils import AveragedModel, get_ema_multi_avg_fn

from .. import interrupts
from ..world import World
from ..errors import TrainingError
from . import distributed, speedups
from .budget import BudgetClock, BudgetUse
from .augment import Share, centre_view, crop_and_flip, random_erase, random_resized_crop
from ..datasets.splits import Images, Splits
from ..hparams import TrainConfig
from .evaluation import EvalSettings, Evaluation, evaluate
from .device import machine_name
from .inputs import model_input
from .losses import LOSSES
from .mixing import mix_batch, mixing_alphas
from .optim import make_optimizer, make_schedule

PROGRESS_EVERY_S = 0.25  # reading the running loss syncs with the device, so only a few times a second
CHECK_EVERY_STEPS = 50  # with several ranks, they look for a NaN loss together, at the same steps


class NonFiniteLoss(TrainingError):
    """The loss became NaN or infinite."""


class Trainer:
    """The chosen optimizer (the study's: Adam with L2 weight decay), schedule and loss; resumable through state_dict()."""

    def __init__(self, model: nn.Module, splits: Splits, hparams: TrainConfig, device: torch.device,
                 fast: bool = True, precision: str = "fp32", world: World = World()):
        self.splits = splits
        self.hparams = hparams
        self.device = device
        self.fast = fast
        self.world = world
        self.precision = speedups.check_precision(precision, device)
        self.channels_last = fast and speedups.use_channels_last(device)
        if fast and device.type == "cpu":
            speedups.tune_cpu_allocator()
        model = model.to(memory_format=torch.channels_last) if self.channels_last else model
        if world.distributed and hparams.sync_bn:
            model = distributed.sync_batch_norm(model, device)
        self.model = model  # the weights: saved, evaluated, averaged (EMA)
        # the module a step runs: with several processes, DDP around the same weights (gradients averaged in backward)
        self.stepped = distributed.data_parallel(model, device) if world.distributed else model
        self.loss_fn = LOSSES[hparams.loss]
        self.optimizer = make_optimizer(model, hparams, fused=fast and speedups.fused_optimizer(device))
        # training to a time budget: the schedule follows its clock, and an epoch stops where it is spent
        self.clock = BudgetClock(hparams.budget, shared=world.distributed) if hparams.budget is not None else None
        self.schedule = make_schedule(self.optimizer, hparams, self.steps_per_epoch(), self.clock)
        self.steps_taken = 0  # optimizer steps over the whole run (a resumed one's too)
        self.last_epoch_steps = 0  # steps the last epoch took: fewer than steps_per_epoch() where the budget ran out
        self.generator = torch.Generator(device=device).manual_seed(hparams.seed)
        # an exponential moving average of the weights (buffers too, so batch norm's statistics match them)
        self.ema = AveragedModel(self.model, multi_avg_fn=get_ema_multi_avg_fn(hparams.ema), use_buffers=True) \
            if hparams.ema is not None else None
        self.mix_alphas = mixing_alphas(hparams)

    @property
    def eval_model(self) -> nn.Module:
        """The weights a run judges, saves as best.pt and tests: the average with --ema, else the trained ones."""
        return self.ema.module if self.ema is not None else self.model

    def _forward(self, images: torch.Tensor, labels: torch.Tensor, mine: slice) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """(logits, loss, labels) of this process's images of a training step; with --mixup/--cutmix, `images` is the
        whole global batch (partners are drawn from all of it, as one process draws them) and `mine` this process's
        slice of it. The loss is always computed in fp32."""
        if self.mix_alphas:
            mixed = mix_batch(model_input(images, self.channels_last), labels, self.mix_alphas, self.generator)
            inputs, labels, partners = mixed.inputs[mine], labels[mine], mixed.partner_labels[mine]
        else:
            inputs, partners, mixed = model_input(images, self.channels_last), None, None
        with speedups.autocast(self.device, self.precision):
            logits = self.stepped(inputs)
        scores = logits.float()
        loss = self.loss_fn(scores, labels, self.hparams.label_smoothing)
        if mixed is not None:
            partner_loss = self.loss_fn(scores, partners, self.hparams.label_smoothing)
            loss = mixed.share * loss + (1 - mixed.share) * partner_loss
        return logits, loss, labels

    def _augment(self, images: torch.Tensor, share: Share | None) -> torch.Tensor:
        """The training transforms, drawn for the global batch: for images stored larger than the model's input, a
        random-resized crop and flip (the ImageNet recipe), or the centre view without --augment; else the study's
        crop and flip; then erasing."""
        hparams, view = self.hparams, self.splits.view
        if view is not None:
            images = random_resized_crop(images, self.generator, view, hparams.flip, share) if hparams.augment \
                else centre_view(images, view)
        elif hparams.augment:
            images = crop_and_flip(images, self.generator, hparams.crop_pad, hparams.flip, share)
        if hparams.erase:
            images = random_erase(images, self.generator, hparams.erase, share)
        return images

    def _share(self, batch: int) -> slice:
        """This rank's slice of a global batch of `batch` images (all of it, in one process)."""
        if not self.world.distributed:
            return slice(None)
        bounds = [len(part) for part in torch.arange(batch).tensor_split(self.world.size)]
        start = sum(bounds[:self.world.rank])
        return slice(start, start + bounds[self.world.rank])

    def steps_per_epoch(self) -> int:
        size, batch = len(self.splits.train_y), self.hparams.batch_size
        # a last batch of one image would break batch norm; with several ranks, each needs one image of it
        return size // batch + (1 if size % batch >= max(2, self.world.size) else 0)

    def train_epoch(self, epoch: int, on_progress: Callable[[int, float, float], None] | None = None,
                    on_step: Callable[[], object] | None = None) -> tuple[float, float]:
        """One pass over the training split, or up to where the time budget runs out; returns (mean loss, accuracy).
        on_step() is called after every step. Raises NonFiniteLoss."""
        model, batch = self.model, self.hparams.batch_size
        images, labels = self.splits.train_x, self.splits.train_y
        self.stepped.train()
        order = torch.randperm(len(labels), generator=self.generator, device=self.device)
        loss_sum = torch.zeros((), device=self.device)
        self._losses = torch.zeros(self.steps_per_epoch(), device=self.device)  # per step, read once at the end
        correct = torch.zeros((), dtype=torch.long, device=self.device)
        first_bad = torch.full((), -1, dtype=torch.long, device=self.device)
        seen, started, reported, steps = 0, time.perf_counter(), time.perf_counter(), 0
        if self.clock is not None:
            self.clock.start()
        for step in range(self.steps_per_epoch()):
            interrupts.check()  # a Ctrl-C that Python swallowed (it landed in a GC callback) stops here
            index = order[step * batch:(step + 1) * batch]  # the global batch
            mine = self._share(len(index))
            share = (mine, len(index)) if self.world.distributed else None
            if self.mix_alphas:  # mixing pairs images from anywhere in the batch: every process reads all of it
                x, y = self._augment(images[index], None), labels[index]
            else:  # a process reads only its share, augmented as one process would augment it
                x, y = self._augment(images[index[mine]], share), labels[index[mine]]
                mine = slice(None)
            logits, loss, y = self._forward(x, y, mine)
            self.optimizer.zero_grad(set_to_none=True)
            # a share of the batch weighs as much as its images: DDP's mean over ranks is then the batch's mean
            (loss * (self.world.size * len(y) / len(index)) if self.world.distributed else loss).backward()
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
            seen, steps = seen + len(y), step + 1
            if self.world.distributed and steps % CHECK_EVERY_STEPS == 0:  # every rank checks at the same step
                self._stop_if_bad(epoch, first_bad)
                self._agree_on_clock()
            if on_progress and time.perf_counter() - reported >= PROGRESS_EVERY_S:
                if not self.world.distributed:
                    self._stop_if_bad(epoch, first_bad)
                on_progress(step + 1, float(loss_sum) / seen, self.world.size * seen / (time.perf_counter() - started))
                reported = time.perf_counter()
            if on_step is not None:
                on_step()
            if self.clock is not None and self.clock.is_spent():  # several ranks read the agreed clock: all stop here
                break
        self._stop_if_bad(epoch, first_bad)
        if self.clock is not None:
            self._agree_on_clock()
            self.clock.stop()
        self.steps_taken += steps
        self.last_epoch_steps = steps
        totals = distributed.all_sum(torch.stack([loss_sum.double(), correct.double(),
                                                  torch.tensor(float(seen), device=self.device, dtype=torch.float64)]))
        return float(totals[0] / totals[2]), float(totals[1] / totals[2])

    def judge_now(self, epoch: int) -> Evaluation:
        """The model on the validation split in the middle of an epoch (a search's rung): the budget's clock is paused
        meanwhile, and training goes on in training mode."""
        if self.clock is not None:
            self.clock.stop()
        try:
            return self.validate(epoch, self.splits.val_x, self.splits.val_y)
        finally:
            self.stepped.train()
            if self.clock is not None:
                self.clock.start()

    def _agree_on_clock(self) -> None:
        """With several ranks and a budget: every rank takes the slowest one's reading, at the same steps."""
        if self.clock is not None and self.world.distributed:
            self.clock.agree(distributed.slowest(self.clock.own(), self.device))

    def budget_use(self, epochs: int) -> BudgetUse:
        """What the budget bought in `epochs` epochs (the last one counted by the share of its steps it took)."""
        assert self.clock is not None and self.hparams.budget is not None
        bought = epochs - 1 + self.last_epoch_steps / self.steps_per_epoch() if epochs else 0.0
        return BudgetUse(self.hparams.budget, self.clock.spent(), bought, self.steps_taken, machine_name(self.device))

    def _stop_if_bad(self, epoch: int, first_bad: torch.Tensor) -> None:
        """NonFiniteLoss if the loss has been NaN/inf at some step; with several ranks, every rank asks at the same
        steps and all of them stop when any one saw it (its NaN reaches the others' weights through the gradients)."""
        step = distributed.first_bad_step(first_bad) if self.world.distributed else int(first_bad)
        if step >= 0:
            raise NonFiniteLoss(f"the loss became NaN/inf at epoch {epoch}, step {step} of {self.steps_per_epoch()} "
                                f"(try a lower --lr)")

    def epoch_losses(self) -> torch.Tensor:
        """The last epoch's loss at every step it took, on the CPU (one sync, when a logger asks)."""
        return self._losses[:self.last_epoch_steps].float().cpu()

    def end_epoch(self, val_acc: float) -> None:
        """The schedule's end-of-epoch step (the plateau schedule watches validation accuracy)."""
        self.schedule.epoch_end(val_acc)

    @property
    def eval_settings(self) -> EvalSettings:
        """How this trainer's models are judged: its loss, device, speed levers and test-time flip."""
        return EvalSettings(self.hparams.loss, self.device, self.precision, self.channels_last, self.hparams.tta,
                            self.splits.view)

    def evaluate(self, images: Images, labels: torch.Tensor) -> Evaluation:
        """The current model on a whole split, with this trainer's loss and speed levers; with several ranks, each
        evaluates its part of the split and the figures are summed, so every rank has the whole split's."""
        if not self.world.distributed:
            return evaluate(self.eval_model, images, labels, self.eval_settings)
        part = torch.arange(len(labels)).tensor_split(self.world.size)[self.world.rank]
        start, size = (int(part[0]), len(part)) if len(part) else (0, 0)  # a view of its rows: read as evaluated
        return distributed.summed(evaluate(self.eval_model, images.narrow(0, start, size), labels.narrow(0, start, size),
                                           self.eval_settings), len(labels))

    def validate(self, epoch: int, images: Images, labels: torch.Tensor) -> Evaluation:
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
                 "schedule": self.schedule.state_dict(), "rng": rng,
                 "steps": {"taken": self.steps_taken, "last_epoch": self.last_epoch_steps}}
        if self.clock is not None:
            state["clock"] = self.clock.state_dict()
        if self.ema is not None:
            state["ema"] = self.ema.state_dict()
        return state

    def load_state_dict(self, state: dict) -> None:
        self.model.load_state_dict(state["model"])
        self.optimizer.load_state_dict(state["optimizer"])
        self.schedule.load_state_dict(state["schedule"])
        if self.ema is not None:
            self.ema.load_state_dict(state["ema"])
        if self.clock is not None:
            self.clock.load_state_dict(state["clock"])
        steps = state.get("steps", {})  # a run from before the budget existed did not count them
        self.steps_taken, self.last_epoch_steps = steps.get("taken", 0), steps.get("last_epoch", 0)
        torch.set_rng_state(state["rng"]["torch"])
        self.generator.set_state(state["rng"]["generator"])
        if "cuda" in state["rng"] and self.device.type == "cuda":
            torch.cuda.set_rng_state(state["rng"]["cuda"], self.device)
