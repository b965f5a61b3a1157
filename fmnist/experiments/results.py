"""A finished run as a small result file to commit: its summary (no confusion matrix), data, machine and versions.

Tables are made from these files, so an experiment can be finished in pieces, on any machine, without keeping
the run folders and their checkpoints.
"""
from __future__ import annotations

import json
from pathlib import Path

from ..machine import cpu_class, cpu_model
from ..runner.rundir import atomic_write, strict_json
from ..runner.run_config import RunConfig


def result_of(run: Path, command: str | None = None) -> dict:
    """The result of a finished run folder: summary.json less the confusion matrix, with config.yaml's context.

    `command`: the command that made the run, when it was not the run's own (a grid's cell is an internal `fmnist run`
    of the grid's cell spec; its result file gives the grid command the user typed, and the cell's as run_command)."""
    summary = json.loads((Path(run) / "summary.json").read_text())
    config = RunConfig.read(Path(run))
    summary.pop("confusion", None)
    return {**summary, "data": config.data.as_mapping(), "speed": config.speed, "versions": config.versions,
            "machine": {**config.machine, "cpu": cpu_model(), "cpu_class": cpu_class()}, "world_size": config.world_size,
            "command": command or config.command, **({"run_command": config.command} if command else {})}


def write_result(run: Path, target: Path, command: str | None = None) -> None:
    target.parent.mkdir(parents=True, exist_ok=True)
    atomic_write(target, (strict_json(result_of(run, command)) + "\n").encode())


def read_result(path: Path) -> dict | None:
    """A result file, or None when it is missing or is not one (a damaged file counts as missing)."""
    try:
        result = json.loads(Path(path).read_text())
    except (OSError, ValueError):
        return None
    return result if isinstance(result, dict) and isinstance(result.get("test_acc"), (int, float)) else None
