"""--device auto|cpu|cuda|cuda:N|mps -> a torch.device that is really there, or a clear error."""
from __future__ import annotations

import torch

from ..errors import UsageError


def _mps_available() -> bool:
    return bool(getattr(torch.backends, "mps", None) and torch.backends.mps.is_available())


def resolve_device(name: str = "auto") -> torch.device:
    """The device to train on; 'auto' takes a CUDA GPU, else Apple's MPS, else the CPU."""
    name = "auto" if name is None else name.strip().lower()
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "mps" if _mps_available() else "cpu")
    try:
        device = torch.device(name)
    except RuntimeError:
        raise UsageError(f"--device {name}: not a device; use auto, cpu, cuda, cuda:N or mps") from None
    if device.type == "cuda":
        if not torch.cuda.is_available():
            raise UsageError(f"--device {name}: no CUDA GPU is visible on this machine; use --device cpu (or auto)")
        if device.index is not None and device.index >= torch.cuda.device_count():
            raise UsageError(f"--device {name}: only {torch.cuda.device_count()} CUDA GPU(s) here (cuda:0 .. cuda:{torch.cuda.device_count() - 1})")
    elif device.type == "mps" and not _mps_available():
        raise UsageError(f"--device {name}: Apple MPS is not available here; use --device cpu (or auto)")
    elif device.type not in ("cpu", "cuda", "mps"):
        raise UsageError(f"--device {name}: not supported; use auto, cpu, cuda, cuda:N or mps")
    return device


def machine_name(device: torch.device) -> str:
    """What a device is, in words, for the record of what a time budget bought on it: the GPU's name, or the CPU's
    model, class and threads."""
    from ..machine import cpu_class, cpu_model

    if device.type == "cuda":
        return torch.cuda.get_device_name(device)
    if device.type == "mps":
        return f"Apple MPS ({cpu_model()})"
    threads = torch.get_num_threads()
    return f"{cpu_model()} ({cpu_class()}), {threads} thread{'s' if threads > 1 else ''}"
