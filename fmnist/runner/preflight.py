"""Everything that can be wrong with a run, checked before any run folder, grid cell or study exists.

`run`, `grid`, `search` and `--resume` all go through `prepare`, so a setting, a spec or a dataset that cannot
train is refused in one line up front, never after the folder is made or the last epoch is done.
"""
from __future__ import annotations

import math
from contextlib import contextmanager
from dataclasses import dataclass

import torch

from ..builder.build import Plan, plan
from ..builder.spec import Spec
from ..datasets.choice import choose_data
from ..datasets.loading import DataPlan, plan_data
from ..datasets.loading import check_fits as check_data_fits
from ..datasets.named import data_defaults
from ..errors import UsageError
from ..hparams import TrainConfig, resolve
from .callbacks import check_logger
from .device import resolve_device
from .options import RunOptions
from .speedups import speed_settings


@dataclass
class Prepared:
    """A run that can start: its plan, resolved settings, device, speed levers and the data's location."""

    spec: Spec
    plan: Plan
    hparams: TrainConfig
    device: torch.device
    speed: dict
    data: DataPlan  # located (unless only the settings were wanted: --dry-run) and sized; nothing decoded yet
    log: str | None = None  # the logger the run writes to, if any


MAX_THREADS = 1024


def check_threads(threads: int | None) -> None:
    if threads is not None and not 1 <= threads <= MAX_THREADS:
        raise UsageError(f"--threads {threads}: must be from 1 to {MAX_THREADS}")


@contextmanager
def cpu_threads(threads: int | None):
    """--threads N for the length of a run (two processes on two cores each taking both slow each other 5-10x);
    the count before is restored after, so a process that runs several (tests, the Python API) is not changed."""
    before = torch.get_num_threads()
    if threads is not None:
        torch.set_num_threads(threads)
    try:
        yield
    finally:
        torch.set_num_threads(before)


def check_limits(options) -> None:
    """--train-limit and --val-limit: enough images to train a batch and to judge it."""
    if options.train_limit is not None and options.train_limit < 2:
        raise UsageError(f"--train-limit {options.train_limit}: needs at least 2 images")
    if options.val_limit is not None and options.val_limit < 1:
        raise UsageError(f"--val-limit {options.val_limit}: needs at least 1 image")


def check_fits(built: Plan, hparams: TrainConfig, data: DataPlan) -> None:
    """The spec against the data it will see and the settings it will train with."""
    spec = built.spec
    check_data_fits(data, spec)
    if hparams.batch_size < 2:
        # batch norm over a single value per channel (after fc, or on a 1x1 map) has no variance to normalise by
        for record in built.records:
            if record.kind == "bn" and math.prod(record.input_shape[1:]) == 1:
                raise UsageError(f"--batch-size {hparams.batch_size}: layer {record.index} '{record.text}' normalises "
                                 f"over the batch, which needs at least 2 images per batch", spec.file)


def prepare(spec: Spec, flags: dict, options: RunOptions, find_data: bool = True) -> Prepared:
    """Plan the spec, resolve its settings (flag > spec > defaults), check both against the data and the machine."""
    built = plan(spec)  # shape or size problems surface before any data is read
    check_limits(options)
    check_threads(options.threads)
    check_logger(options.log)
    device = resolve_device(options.device)
    data = plan_data(choose_data(spec.data, options.data, spec.file), options.data_dir, device, find=False)
    hparams = resolve(spec.train, flags, data_defaults(data.choice))
    check_fits(built, hparams, data)
    if find_data:  # after the checks: a spec that cannot train on the data is refused before any download
        data.locate()
    speed = speed_settings(options.fast, options.precision, device)
    return Prepared(spec, built, hparams, device, speed, data, options.log)
