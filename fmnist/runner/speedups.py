"""The fast path's levers, each measured (benchmarks/epoch_speed.py) and each with a plain fallback.

- CPU: keep freed activation buffers in the heap. glibc otherwise returns every buffer over its mmap
  threshold to the kernel and faults it back in on the next step (most of a CNN_4 epoch's system time).
- channels_last convolutions (CPU and CUDA); on CUDA also the fused Adam kernel.
- bf16 autocast where the hardware does bf16 natively (CUDA GPUs of the last years, CPUs with AVX-512-bf16 or
  AMX): about half the step time of fp32 on this project's 2-core AVX-512-bf16 CPU, accuracy within noise.
"""
from __future__ import annotations

import contextlib
import ctypes
import ctypes.util

import torch

from ..errors import UsageError
from ..hparams import PRECISIONS
from ..machine import cpu_has_native_bf16

_M_TRIM_THRESHOLD, _M_MMAP_THRESHOLD = -1, -3  # glibc mallopt() parameters
_KEEP_BYTES = 1 << 30


def tune_cpu_allocator() -> bool:
    """Stop glibc from unmapping and trimming buffers under 1 GiB; False where this is not glibc."""
    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")
        mallopt = libc.mallopt
    except (OSError, AttributeError):
        return False
    return bool(mallopt(_M_MMAP_THRESHOLD, _KEEP_BYTES)) and bool(mallopt(_M_TRIM_THRESHOLD, 2 * _KEEP_BYTES))


def use_channels_last(device: torch.device) -> bool:
    """channels_last convolutions: oneDNN's and cuDNN's faster kernels want it (measured faster on this CPU for
    CNN_1 and CNN_4, most without augmentation, whose gather already yields channels_last images). Not on MPS."""
    return device.type in ("cpu", "cuda")


def fused_optimizer(device: torch.device) -> bool:
    """Adam's fused kernel: one launch for all parameters instead of several per parameter."""
    return device.type == "cuda"


def autocast(device: torch.device, precision: str):
    """A context that runs the forward pass in `precision`."""
    if precision == "fp32":
        return contextlib.nullcontext()
    return torch.autocast(device.type, dtype=torch.bfloat16)


def check_precision(precision: str, device: torch.device) -> str:
    """'auto' -> bf16 where the device does it natively, else fp32; an explicit choice is checked."""
    if precision not in PRECISIONS:
        raise UsageError(f"--precision {precision}: use one of {', '.join(PRECISIONS)}")
    if precision == "auto":
        native = {"cuda": lambda: torch.cuda.is_bf16_supported(), "cpu": cpu_has_native_bf16}.get(device.type, lambda: False)
        return "bf16" if native() else "fp32"
    if precision == "bf16" and device.type == "mps":
        raise UsageError("--precision bf16: not supported on MPS; use fp32")
    return precision


def speed_settings(fast: bool, precision: str, device: torch.device) -> dict:
    """The Trainer's speed arguments as a run records them: the plain path is always fp32."""
    return {"fast": fast, "precision": check_precision(precision, device) if fast else "fp32"}


def eval_levers(speed: dict, device: torch.device) -> dict:
    """The precision and memory layout a run was trained with, for evaluating it the same way on `device`."""
    fast = speed.get("fast", True)
    return {"precision": check_precision(speed.get("precision", "fp32"), device) if fast else "fp32",
            "channels_last": fast and use_channels_last(device)}
