"""How far from the machine's limit a training step is: the measured matrix-multiply peaks (fp32 and bf16, with the
process's threads) and the FLOPs a training step does (forward and backward, counted by torch's FlopCounterMode).

A share of the peak is (FLOPs per step x steps) / seconds / peak. Imported by epoch_speed.py and profile_step.py;
run on its own it also prints what a large 3x3 convolution reaches (oneDNN's kernel can beat the matmul figure, which
on an AMD CPU goes through MKL's fp32 path):

    python benchmarks/limits.py
"""
from __future__ import annotations

import json
import sys
import time

import torch
from torch.utils.flop_counter import FlopCounterMode

PEAK_SIZES = (2048, 3072, 4096)  # large square matmuls: what the matrix units do at their best


def matmul_peak(dtype: torch.dtype, sizes=PEAK_SIZES, seconds: float = 1.0) -> float:
    """GFLOP/s of the best of `sizes`x`sizes` matmuls in `dtype` on the CPU, each timed for about `seconds`."""
    best = 0.0
    for size in sizes:
        a, b = torch.randn(size, size).to(dtype), torch.randn(size, size).to(dtype)
        torch.mm(a, b)  # warm up: oneDNN picks and caches its kernel
        runs, started = 0, time.perf_counter()
        while time.perf_counter() - started < seconds:
            torch.mm(a, b)
            runs += 1
        best = max(best, 2 * size ** 3 * runs / (time.perf_counter() - started) / 1e9)
    return best


def measured_peaks() -> dict:
    """{'fp32': GFLOP/s, 'bf16': GFLOP/s} with this process's thread count."""
    return {"fp32": round(matmul_peak(torch.float32)), "bf16": round(matmul_peak(torch.bfloat16))}


def step_flops(model: torch.nn.Module, batch: int, shape, loss_fn=None) -> int:
    """FLOPs of one training step (forward, loss, backward) of `model` on a batch of `batch` images of `shape`."""
    images = torch.rand(batch, *shape)
    labels = torch.randint(0, 10, (batch,))
    loss_fn = loss_fn or torch.nn.functional.cross_entropy
    counter = FlopCounterMode(display=False)
    rng = torch.get_rng_state()
    try:
        with counter:
            loss = loss_fn(model(images), labels)
            loss.backward()
    finally:
        model.zero_grad(set_to_none=True)
        torch.set_rng_state(rng)
    return int(counter.get_total_flops())


def share(flops_per_epoch: float, seconds: float, peak_gflops: float) -> float:
    """The fraction of `peak_gflops` an epoch of `flops_per_epoch` in `seconds` runs at."""
    return flops_per_epoch / seconds / 1e9 / peak_gflops


def conv_peak(dtype: torch.dtype, size: int, seconds: float = 1.0) -> float:
    """GFLOP/s of a 3x3 64->128 convolution forward on a batch of 128 `size`x`size` channels_last images."""
    images = torch.randn(128, 64, size, size).to(dtype).contiguous(memory_format=torch.channels_last)
    weight = torch.randn(128, 64, 3, 3).to(dtype).contiguous(memory_format=torch.channels_last)
    torch.nn.functional.conv2d(images, weight, padding=1)
    runs, started = 0, time.perf_counter()
    while time.perf_counter() - started < seconds:
        torch.nn.functional.conv2d(images, weight, padding=1)
        runs += 1
    return 2 * 128 * 128 * 64 * 9 * size * size * runs / (time.perf_counter() - started) / 1e9


def main() -> int:
    from fmnist.machine import cpu_class, cpu_model

    report = {"cpu": cpu_model(), "cpu_class": cpu_class(), "threads": torch.get_num_threads(),
              "matmul": measured_peaks(),
              "conv3x3_64_128": {name: round(max(conv_peak(dtype, size) for size in (28, 14)))
                                 for name, dtype in (("fp32", torch.float32), ("bf16", torch.bfloat16))}}
    print(json.dumps(report))
    return 0


if __name__ == "__main__":
    sys.exit(main())
