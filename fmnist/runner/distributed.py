"""Data-parallel training through torch.distributed: the process group (gloo on the CPU, NCCL on CUDA), the few
collectives fmnist makes itself (sums, and agreeing on a failure), batch norm synchronised across ranks, and the
model wrapped in DistributedDataParallel.

The recipe does not change with the process count: every rank draws each epoch's order and augmentation for the
whole global batch from the same seeded generator and trains on its own slice of it, DDP averages the gradients,
batch norm normalises over the global batch, and the loss of a slice is weighted by its share of the batch, so a
step sees exactly the images, and the statistics, of a one-process step.
"""
from __future__ import annotations

from contextlib import contextmanager
from datetime import timedelta

import torch
import torch.distributed as dist
from torch import nn
from torch.distributed import ProcessGroup

from ..environment import seconds_from_environment
from ..errors import FmnistError
from ..world import World

COLLECTIVE_TIMEOUT_S = 120  # a collective whose peer neither answers nor closes its connection fails after this
COLLECTIVE_TIMEOUT_ENV = "FMNIST_COLLECTIVE_TIMEOUT_S"


def collective_timeout() -> int:
    """Seconds a rank waits in a collective for a silent peer: $FMNIST_COLLECTIVE_TIMEOUT_S or 120."""
    return seconds_from_environment(COLLECTIVE_TIMEOUT_ENV, COLLECTIVE_TIMEOUT_S, 86_400)


def worker_device(world: World, wanted: str) -> str:
    """One device per local rank: cuda (or auto, where CUDA is there) becomes cuda:LOCAL_RANK."""
    if world.distributed and wanted in ("auto", "cuda") and torch.cuda.is_available():
        return f"cuda:{world.local_rank}"
    return wanted


def start_group(world: World, device: str) -> None:
    """Join the run's process group (before anything is checked, so every rank can agree on a problem): NCCL where
    this rank trains on CUDA, else gloo."""
    if not world.distributed or dist.is_initialized():
        return
    chosen = worker_device(world, device)
    if chosen.startswith("cuda") and torch.cuda.is_available():
        torch.cuda.set_device(torch.device(chosen))
        backend = "nccl"
    else:
        backend = "gloo"
    dist.init_process_group(backend, timeout=timedelta(seconds=collective_timeout()))


def end_group() -> None:
    if dist.is_initialized():
        dist.destroy_process_group()


def _reduced(values: torch.Tensor, op) -> torch.Tensor:
    """all_reduce on the device the backend needs (NCCL: the rank's GPU; gloo: the CPU), back where it came from."""
    if not dist.is_initialized() or dist.get_world_size() == 1:
        return values
    device = torch.device("cuda", torch.cuda.current_device()) if dist.get_backend() == "nccl" else torch.device("cpu")
    moved = values.to(device)
    dist.all_reduce(moved, op=op)
    return moved.to(values.device)


def all_sum(values: torch.Tensor) -> torch.Tensor:
    """`values` summed over every rank (the tensor itself, where there is one process)."""
    return _reduced(values, dist.ReduceOp.SUM)


def slowest(seconds: float, device: torch.device) -> float:
    """The largest of every rank's `seconds` (a budget's clock: the slowest rank's reading)."""
    return float(_reduced(torch.tensor([seconds], dtype=torch.float64, device=device), dist.ReduceOp.MAX))


def first_bad_step(local: torch.Tensor) -> int:
    """The first step at which any rank's loss was NaN/inf (-1: none), agreed by every rank."""
    if not dist.is_initialized():
        return int(local)
    step = _reduced(torch.where(local < 0, torch.full_like(local, 2**62), local).reshape(1).to(torch.long),
                    dist.ReduceOp.MIN)
    return -1 if int(step) == 2**62 else int(step)


def summed(part, size: int):
    """A split's Evaluation from each rank's evaluation of its part (`size` images in all): the sums of loss, hits and
    top-k hits over the ranks, divided by the whole split's size; predictions stay each rank's own."""
    from .evaluation import Evaluation

    count = len(part.predictions)
    keys = sorted(part.top_k)
    totals = all_sum(torch.tensor([part.loss * count, part.accuracy * count, *(part.top_k[k] * count for k in keys)],
                                  dtype=torch.float64))
    return Evaluation(float(totals[0]) / size, float(totals[1]) / size, part.predictions,
                      {k: float(total) / size for k, total in zip(keys, totals[2:])})


class RankFailed(FmnistError):
    """Another rank of the run met a problem (it says so, once): this rank stops too, quietly, with its exit code."""

    quiet = True


def agree(world: World, error: FmnistError | None) -> None:
    """Every rank learns whether any rank failed; the lowest failing rank raises its own error (and prints it), the
    others raise RankFailed with the same exit code, so a problem is one line and no rank is left waiting."""
    if not world.distributed or world.size == 1:
        if error is not None:
            raise error
        return
    mine = torch.zeros(world.size, 2, dtype=torch.long)  # row r: rank r's (failed, exit code); summed, each row is one's
    mine[world.rank] = torch.tensor([1 if error is not None else 0, error.exit_code if error is not None else 0])
    gathered = all_sum(mine)
    failed = [rank for rank, (flag, _) in enumerate(gathered.tolist()) if flag]
    if not failed:
        return
    if failed[0] == world.rank and error is not None:
        raise error
    quiet = RankFailed(f"rank {failed[0]} failed")
    quiet.exit_code = int(gathered[failed[0]][1])
    raise quiet


@contextmanager
def agreeing(world: World):
    """A step every rank takes (checks, loading, the run folder): a problem on any rank stops them all (agree())."""
    error = None
    try:
        yield
    except FmnistError as caught:
        if not world.distributed:
            raise
        error = caught
    agree(world, error)


def is_peer_lost(error: BaseException) -> bool:
    """An error a collective raised because another rank went away (killed, its machine gone) or stopped answering."""
    if isinstance(error, getattr(dist, "DistError", ())):
        return True
    text = str(error)
    return isinstance(error, RuntimeError) and any(sign in text for sign in (
        "Connection closed by peer", "Connection reset by peer", "Broken pipe", "Timed out", "timed out",
        "NCCL communicator was aborted"))


_statistics_group: list[ProcessGroup] = []  # a process group of its own for batch norm's statistics, made once


def _statistics() -> ProcessGroup:
    """Batch norm's all-reduces go through a group of their own: in DDP's group they would queue behind the gradient
    all-reduces DDP starts during the backward pass, and every synchronised layer's backward would wait for them."""
    if not _statistics_group:
        group = dist.new_group(backend=dist.get_backend())
        assert isinstance(group, ProcessGroup)  # every rank is in it (a rank outside would get a placeholder)
        _statistics_group.append(group)
    return _statistics_group[0]


class _SumOverRanks(torch.autograd.Function):
    """A tensor summed over the ranks, differentiably: every rank's loss depends on the sum, so the gradient that
    flows back into each rank's part is the sum of the ranks' gradients (as torch's SyncBatchNorm does)."""

    @staticmethod
    def forward(ctx, tensor: torch.Tensor) -> torch.Tensor:
        summed = tensor.clone()
        dist.all_reduce(summed, op=dist.ReduceOp.SUM, group=_statistics())
        return summed

    @staticmethod
    def backward(ctx, grad: torch.Tensor) -> torch.Tensor:
        summed = grad.clone()
        dist.all_reduce(summed, op=dist.ReduceOp.SUM, group=_statistics())
        return summed


class SyncedBatchNorm(nn.modules.batchnorm._BatchNorm):
    """Batch norm over the global batch on the CPU (torch's SyncBatchNorm runs on GPUs only): each rank's sums and
    sums of squares are all-reduced, with their gradients, so the statistics are those of one process's batch."""

    def _check_input_dim(self, input: torch.Tensor) -> None:
        if input.dim() not in (2, 4):
            raise ValueError(f"expected a 2-D or 4-D input, got {input.dim()}-D")

    def forward(self, input: torch.Tensor) -> torch.Tensor:
        if not self.training or not dist.is_initialized() or dist.get_world_size() == 1:
            return super().forward(input)
        axes = [0, 2, 3] if input.dim() == 4 else [0]
        shape = [1, -1, 1, 1] if input.dim() == 4 else [1, -1]
        values = input.float()
        variance, mean = torch.var_mean(values, dim=axes, correction=0)  # this rank's, in one stable pass
        count = values.new_tensor([input.numel() / input.shape[1]], dtype=torch.float64)
        mean, variance = mean.double(), variance.double()  # combined in float64: no cancellation across ranks
        total = _SumOverRanks.apply(torch.cat([mean * count, (variance + mean * mean) * count, count]))
        channels, everyone = input.shape[1], total[-1]
        mean = total[:channels] / everyone
        variance = (total[channels:2 * channels] / everyone - mean * mean).clamp(min=0)
        self._update_running(mean, variance, everyone)
        scale = torch.rsqrt(variance + self.eps).float()
        shift = -mean.float() * scale
        if self.affine:
            scale, shift = scale * self.weight, shift * self.weight + self.bias
        return (values * scale.view(shape) + shift.view(shape)).to(input.dtype)  # one multiply-add over the batch

    def _update_running(self, mean: torch.Tensor, variance: torch.Tensor, count: torch.Tensor) -> None:
        """The running statistics, updated as torch's batch norm updates them (the variance unbiased)."""
        if not self.track_running_stats or self.running_mean is None or self.running_var is None:
            return
        with torch.no_grad():
            tracked = self.num_batches_tracked
            if tracked is not None:
                tracked.add_(1)
            # momentum None: a cumulative average, as torch's batch norm keeps it
            momentum = self.momentum if self.momentum is not None else 1.0 / float(tracked if tracked is not None else 1)
            unbiased = variance * count / (count - 1).clamp(min=1)
            self.running_mean.mul_(1 - momentum).add_(momentum * mean.to(self.running_mean.dtype))
            self.running_var.mul_(1 - momentum).add_(momentum * unbiased.to(self.running_var.dtype))


def sync_batch_norm(model: nn.Module, device: torch.device) -> nn.Module:
    """The model with every batch norm normalising over the global batch: torch's SyncBatchNorm on CUDA, ours on the
    CPU; the same parameters and running statistics, so checkpoints load either way."""
    if device.type == "cuda":
        return nn.SyncBatchNorm.convert_sync_batchnorm(model)
    if dist.is_initialized():
        _statistics()  # every rank makes the group now, in the same order (new_group is itself collective)
    return _convert(model)


def _convert(module: nn.Module) -> nn.Module:
    if isinstance(module, (nn.BatchNorm1d, nn.BatchNorm2d)):
        synced = SyncedBatchNorm(module.num_features, module.eps, module.momentum, module.affine,
                                 module.track_running_stats)
        synced.load_state_dict(module.state_dict())
        synced.train(module.training)
        return synced
    for name, child in module.named_children():
        module.add_module(name, _convert(child))
    return module


def data_parallel(model: nn.Module, device: torch.device) -> nn.Module:
    """The model wrapped in DistributedDataParallel: gradients averaged over the ranks at each backward pass."""
    from torch.nn.parallel import DistributedDataParallel

    return DistributedDataParallel(model, device_ids=[device] if device.type == "cuda" else None)
