"""A finished run as a small result file to commit: its summary (no confusion matrix), data, machine and versions.

Tables are made from these files, so an experiment can be finished in pieces, on any machine, without keeping
the run folders and their checkpoints.
"""
from __future__ import annotations

import json
from pathlib import Path

import yaml

from ..runner.rundir import atomic_write, strict_json

_CPU_CLASSES = (("AVX-512 with bf16", "avx512_bf16"), ("AVX-512", "avx512f"), ("AVX2", "avx2"))


def _cpuinfo() -> list[str]:
    try:
        with open("/proc/cpuinfo") as info:
            return info.read().splitlines()
    except OSError:  # not Linux: the class and model stay unknown
        return []


def cpu_class() -> str:
    """'AVX-512 with bf16', 'AVX-512', 'AVX2' or 'other': what decides a CPU's training speed and bf16 here."""
    flags = {flag for line in _cpuinfo() if line.startswith("flags") for flag in line.split()}
    return next((label for label, needed in _CPU_CLASSES if needed in flags), "other")


def cpu_model() -> str:
    """The CPU's model name ('AMD EPYC', 'Intel(R) Xeon(R) ...'), or the architecture where it is not known."""
    import platform

    names = [line.split(":", 1)[1].strip() for line in _cpuinfo() if line.startswith("model name")]
    return names[0] if names else platform.machine()


def result_of(run: Path) -> dict:
    """The result of a finished run folder: summary.json less the confusion matrix, with config.yaml's context."""
    summary = json.loads((Path(run) / "summary.json").read_text())
    config = yaml.safe_load((Path(run) / "config.yaml").read_text())
    summary.pop("confusion", None)
    return {**summary, "data": config.get("data"), "speed": config.get("speed"), "versions": config.get("versions"),
            "machine": {**(config.get("machine") or {}), "cpu": cpu_model(), "cpu_class": cpu_class()},
            "command": config.get("command")}


def write_result(run: Path, target: Path) -> None:
    target.parent.mkdir(parents=True, exist_ok=True)
    atomic_write(target, (strict_json(result_of(run)) + "\n").encode())


def read_result(path: Path) -> dict | None:
    """A result file, or None when it is missing or is not one (a damaged file counts as missing)."""
    try:
        result = json.loads(Path(path).read_text())
    except (OSError, ValueError):
        return None
    return result if isinstance(result, dict) and isinstance(result.get("test_acc"), (int, float)) else None
