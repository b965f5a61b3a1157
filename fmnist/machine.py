"""What this machine's CPU is, read once from /proc/cpuinfo (Linux; elsewhere the class and model stay unknown)."""
from __future__ import annotations

import functools
import platform

CPU_CLASSES = (("AVX-512 with bf16", "avx512_bf16"), ("AVX-512", "avx512f"), ("AVX2", "avx2"))
NATIVE_BF16_FLAGS = {"avx512_bf16", "amx_bf16"}  # the CPU computes bf16 itself (emulated bf16 is slower than fp32)


@functools.cache
def _cpuinfo() -> tuple[str, ...]:
    try:
        with open("/proc/cpuinfo") as info:
            return tuple(info.read().splitlines())
    except OSError:
        return ()


def cpu_flags() -> set[str]:
    return {flag for line in _cpuinfo() if line.startswith("flags") for flag in line.split()}


def cpu_class() -> str:
    """'AVX-512 with bf16', 'AVX-512', 'AVX2' or 'other': what decides a CPU's training speed and bf16 here."""
    flags = cpu_flags()
    return next((label for label, needed in CPU_CLASSES if needed in flags), "other")


def cpu_model() -> str:
    """The CPU's model name ('AMD EPYC', 'Intel(R) Xeon(R) ...'), or the architecture where it is not known."""
    names = [line.split(":", 1)[1].strip() for line in _cpuinfo() if line.startswith("model name")]
    return names[0] if names else platform.machine()


def cpu_has_native_bf16() -> bool:
    return bool(NATIVE_BF16_FLAGS & cpu_flags())
