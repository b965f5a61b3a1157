"""A run folder: config.yaml, metrics.csv, best.pt/last.pt (written atomically), summary.json, plots."""
from __future__ import annotations

import csv
import io
import json
import os
import pickle
import tempfile
import zipfile
from datetime import datetime
from pathlib import Path

import torch
import yaml

from ..errors import UsageError

CHECKPOINT_FORMAT = "fmnist-checkpoint-v1"
METRIC_COLUMNS = ("epoch", "train_loss", "train_acc", "val_loss", "val_acc", "seconds")


def atomic_write(path: Path, data: bytes) -> None:
    """Write to a temporary file beside `path`, flush it to disk, then rename: a crash leaves the old file or the new one."""
    handle, temporary = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(handle, "wb") as stream:
            stream.write(data)
            stream.flush()
            os.fsync(stream.fileno())
        os.replace(temporary, path)
    except BaseException:
        Path(temporary).unlink(missing_ok=True)
        raise


class RunDir:
    """One run's folder on disk."""

    def __init__(self, path: str | Path):
        self.path = Path(path)

    @classmethod
    def create(cls, out: str | Path, name: str) -> "RunDir":
        """A new folder out/<name>-<timestamp>[-N]."""
        stamp = datetime.now().strftime("%Y%m%d-%H%M%S")
        base = Path(out) / f"{name}-{stamp}"
        path, suffix = base, 1
        while True:
            try:
                path.mkdir(parents=True)
                return cls(path)
            except FileExistsError:
                suffix += 1
                path = Path(f"{base}-{suffix}")
            except OSError as error:
                raise UsageError(f"cannot create the run folder: {error.strerror}", str(path)) from None

    @classmethod
    def create_at(cls, path: str | Path) -> "RunDir":
        """Exactly this folder (grid cells, search retrains); it must not hold a run already."""
        run = cls(path)
        if (run.path / "config.yaml").exists():
            raise UsageError("already holds a run; resume it with 'fmnist run --resume' or choose another folder", str(path))
        try:
            run.path.mkdir(parents=True, exist_ok=True)
        except OSError as error:
            raise UsageError(f"cannot create the run folder: {error.strerror}", str(path)) from None
        return run

    @classmethod
    def existing(cls, path: str | Path) -> "RunDir":
        run = cls(path)
        if not (run.path / "config.yaml").is_file():
            raise UsageError("not an fmnist run folder (no config.yaml)", str(path))
        return run

    def file(self, name: str) -> Path:
        return self.path / name

    def write_config(self, config: dict) -> None:
        atomic_write(self.file("config.yaml"), yaml.safe_dump(config, sort_keys=False).encode())

    def read_config(self) -> dict:
        try:
            config = yaml.safe_load(self.file("config.yaml").read_text())
        except (OSError, yaml.YAMLError) as error:
            raise UsageError(f"unreadable config.yaml: {error}", str(self.path)) from None
        if not isinstance(config, dict) or "spec" not in config or "hparams" not in config:
            raise UsageError("config.yaml is not an fmnist run config", str(self.path))
        return config

    def write_metrics(self, epochs: list[dict]) -> None:
        text = io.StringIO()
        writer = csv.DictWriter(text, fieldnames=METRIC_COLUMNS, extrasaction="ignore", lineterminator="\n")
        writer.writeheader()
        writer.writerows(epochs)
        atomic_write(self.file("metrics.csv"), text.getvalue().encode())

    def write_json(self, name: str, data: dict) -> None:
        atomic_write(self.file(name), (json.dumps(data, indent=2) + "\n").encode())

    def save_checkpoint(self, name: str, checkpoint: dict) -> None:
        buffer = io.BytesIO()
        torch.save({"format": CHECKPOINT_FORMAT, **checkpoint}, buffer)
        atomic_write(self.file(name), buffer.getvalue())

    def load_checkpoint(self, name: str) -> dict:
        return load_checkpoint(self.file(name))


def load_checkpoint(path: Path) -> dict:
    """A checkpoint written by fmnist, loaded safely (weights_only: no code runs); anything else is a clear error."""
    if not path.is_file():
        raise UsageError("no such checkpoint", str(path))
    try:
        checkpoint = torch.load(path, map_location="cpu", weights_only=True)
    except (pickle.UnpicklingError, RuntimeError, EOFError, zipfile.BadZipFile, ValueError, OSError) as error:
        first = str(error).strip().splitlines()[0][:150] if str(error).strip() else type(error).__name__
        raise UsageError(f"damaged or not an fmnist checkpoint ({first})", str(path)) from None
    if not isinstance(checkpoint, dict) or checkpoint.get("format") != CHECKPOINT_FORMAT:
        raise UsageError(f"not an fmnist checkpoint (expected format {CHECKPOINT_FORMAT})", str(path))
    return checkpoint
