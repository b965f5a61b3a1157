"""Where a training step's time goes: torch's profiler over fmnist's own Trainer steps (forward, backward, optimizer),
per operator, with the step's FLOPs against the machine's measured peak.

    python benchmarks/profile_step.py specs/cnn_1.yaml --precision bf16
    python benchmarks/profile_step.py specs/cnn_4.yaml --precision bf16 --augment --rows 25
"""
from __future__ import annotations

import argparse
import sys
import time

import torch
from torch.profiler import ProfilerActivity, profile

from fmnist.builder.spec import load_spec
from fmnist.datasets.choice import DataChoice
from fmnist.datasets.loading import load_data, plan_data
from fmnist.hparams import resolve
from fmnist.machine import cpu_class
from fmnist.runner.models import make_model
from fmnist.runner.trainer import Trainer

from limits import measured_peaks, step_flops


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("spec")
    parser.add_argument("--precision", default="bf16", choices=["fp32", "bf16"])
    parser.add_argument("--steps", type=int, default=30, help="profiled steps (after as many unprofiled ones)")
    parser.add_argument("--augment", action="store_true")
    parser.add_argument("--rows", type=int, default=20)
    args = parser.parse_args(argv)

    spec = load_spec(args.spec)
    hparams = resolve(spec.train, {"augment": args.augment, "loss": "softmax"})
    device = torch.device("cpu")
    splits = load_data(plan_data(DataChoice(), None, device), args.steps * hparams.batch_size)
    trainer = Trainer(make_model(spec, hparams), splits, hparams, device, fast=True, precision=args.precision)
    flops = step_flops(make_model(spec, hparams), hparams.batch_size, spec.input)
    trainer.train_epoch(1)  # warm-up: oneDNN's kernels chosen, the allocator's heap grown
    started = time.perf_counter()
    with profile(activities=[ProfilerActivity.CPU]) as profiler:
        trainer.train_epoch(2)
    seconds = (time.perf_counter() - started) / args.steps
    peaks = measured_peaks()
    peak = peaks[args.precision]
    print(f"{spec.name} {args.precision} batch {hparams.batch_size}: {1000 * seconds:.1f} ms/step (profiled), "
          f"{flops / 1e9:.2f} GFLOP/step = {flops / seconds / 1e9:.0f} GFLOP/s = {100 * flops / seconds / 1e9 / peak:.0f}% "
          f"of the measured {args.precision} peak {peak} GFLOP/s (fp32 {peaks['fp32']}, bf16 {peaks['bf16']}); "
          f"{cpu_class()}, {torch.get_num_threads()} threads")
    print(profiler.key_averages().table(sort_by="self_cpu_time_total", row_limit=args.rows))
    return 0


if __name__ == "__main__":
    sys.exit(main())
