"""Candidate speed levers for the bf16 CPU step, each measured on its own against fmnist's fast path in one process
(same spec, data, settings and seed), alternating so that a drift of the machine hits every variant alike.

- fused-adam: Adam's fused kernel on the CPU (fmnist uses it on CUDA only);
- compile: torch.compile of the model (its compile time is printed apart: the first round's first epoch, from an
  empty compile cache, minus a steady epoch);
- relu-after-pool: ReLU moved behind an adjacent max-pool (exact: max and ReLU commute), so it runs on a quarter of
  the values.

Prints each variant's median epoch seconds and its ratio to the fast path, and the results as JSON.

    python benchmarks/levers.py specs/cnn_4.yaml --train-limit 10000
    python benchmarks/levers.py specs/cnn_1.yaml --train-limit 2560 --variants fused-adam
"""
from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path
from unittest import mock

# compile time is only honest from a cold start: no compiled kernels or graphs cached by an earlier run
os.environ.setdefault("TORCHINDUCTOR_CACHE_DIR", tempfile.mkdtemp(prefix="fmnist-inductor-"))
os.environ.setdefault("TORCHINDUCTOR_FX_GRAPH_CACHE", "0")

import torch  # noqa: E402

from fmnist.builder.spec import load_spec  # noqa: E402
from fmnist.datasets.choice import DataChoice
from fmnist.datasets.loading import load_data, plan_data
from fmnist.hparams import resolve
from fmnist.machine import cpu_class, cpu_model
from fmnist.runner import speedups
from fmnist.runner.models import make_model
from fmnist.runner.trainer import Trainer


def relu_after_pool(model: torch.nn.Module) -> torch.nn.Module:
    """The same function with every ReLU that feeds a MaxPool2d moved behind it."""
    modules, reordered = list(model), []
    while modules:
        first = modules.pop(0)
        if isinstance(first, torch.nn.ReLU) and modules and isinstance(modules[0], torch.nn.MaxPool2d):
            reordered += [modules.pop(0), first]
        else:
            reordered.append(first)
    return torch.nn.Sequential(*reordered)


VARIANTS = {  # name -> (model rewrite, fused optimizer on the CPU, compile)
    "fast path": (None, False, False),
    "fused-adam": (None, True, False),
    "compile": (None, False, True),
    "relu-after-pool": (relu_after_pool, False, False),
}


def trainer_for(spec, hparams, splits, variant: str, precision: str) -> Trainer:
    rewrite, fused, compiled = VARIANTS[variant]
    torch.manual_seed(hparams.seed)
    model = make_model(spec, hparams)
    model = rewrite(model) if rewrite else model
    with mock.patch.object(speedups, "fused_optimizer", lambda device: fused or device.type == "cuda"):
        trainer = Trainer(model, splits, hparams, torch.device("cpu"), fast=True, precision=precision)
    if compiled:
        trainer.model.compile()
    return trainer


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("spec")
    parser.add_argument("--train-limit", type=int, default=10000)
    parser.add_argument("--epochs", type=int, default=3, help="timed epochs per variant and round")
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--precision", default="bf16", choices=["fp32", "bf16"])
    parser.add_argument("--variants", nargs="+", default=[v for v in VARIANTS if v != "fast path"], choices=list(VARIANTS))
    parser.add_argument("--json", type=Path)
    args = parser.parse_args(argv)

    spec = load_spec(args.spec)
    hparams = resolve(spec.train, {"augment": True, "loss": "softmax"})
    splits = load_data(plan_data(DataChoice(), None, torch.device("cpu")), args.train_limit)
    names = ["fast path", *args.variants]
    epochs = {name: [] for name in names}
    first = {name: [] for name in names}
    for _ in range(args.rounds):
        for name in names:
            trainer = trainer_for(spec, hparams, splits, name, args.precision)
            started = time.perf_counter()
            trainer.train_epoch(1)  # warm-up (and, for compile, the compilation)
            first[name].append(time.perf_counter() - started)
            for epoch in range(2, args.epochs + 2):
                started = time.perf_counter()
                trainer.train_epoch(epoch)
                epochs[name].append(time.perf_counter() - started)
            print(f"  {name:<16} {[round(s, 3) for s in epochs[name][-args.epochs:]]}", file=sys.stderr, flush=True)
    base = statistics.median(epochs["fast path"])
    results = {name: {"epoch_s": round(statistics.median(epochs[name]), 3),
                      "ratio_to_fast_path": round(statistics.median(epochs[name]) / base, 3),
                      "first_epoch_extra_s": round(first[name][0] - statistics.median(epochs[name]), 2),  # cold
                      "epochs_s": [round(s, 3) for s in epochs[name]]} for name in names}
    machine = {"cpu": cpu_model(), "cpu_class": cpu_class(), "threads": torch.get_num_threads(), "torch": str(torch.__version__)}
    print(f"{spec.name}, {args.precision}, {args.train_limit:,} images an epoch, median of {args.rounds} x {args.epochs} "
          f"epochs; {machine}")
    print("| lever | s/epoch | vs the fast path | first epoch extra s (compile) |")
    print("|---|---|---|---|")
    for name, row in results.items():
        print(f"| {name} | {row['epoch_s']:.3f} | {row['ratio_to_fast_path']:.3f}x | {row['first_epoch_extra_s']:.1f} |")
    report = {"spec": spec.name, "precision": args.precision, "images": args.train_limit, "machine": machine,
              "results": results}
    print(json.dumps(report))
    if args.json:
        args.json.write_text(json.dumps(report, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
