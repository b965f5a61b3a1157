"""A run folder: config.yaml, metrics.csv, best.pt/last.pt (written atomically), summary.json, plots.

One writer at a time: the process that trains in a folder holds an exclusive lock on the folder (released by the
kernel when the process ends, however it ends), so a second `--resume` or a second grid is refused, not mixed in.
"""
from __future__ import annotations

import csv
import io
import json
import os
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING

import torch

from ..atomic import atomic_write
from .checkpoint import Checkpoint
from ..errors import StorageError, UsageError
from .outputs import is_run_folder, own_leftover

if TYPE_CHECKING:
    from .run_config import RunConfig

try:
    import fcntl
    LOCKS = True
except ImportError:  # Windows: no advisory locks; one writer per folder is then up to the user
    LOCKS = False

METRIC_COLUMNS = ("epoch", "train_loss", "train_acc", "val_loss", "val_acc", "seconds")
class RunDir:
    """One run's folder on disk."""

    def __init__(self, path: str | Path):
        self.path = Path(path)
        self._lock: int | None = None
        self._config: RunConfig | None = None

    @classmethod
    def create(cls, out: str | Path, name: str) -> "RunDir":
        """A new folder out/<name>-<timestamp>[-N], locked."""
        stamp = datetime.now().strftime("%Y%m%d-%H%M%S")
        base = Path(out) / f"{name}-{stamp}"
        path, suffix = base, 1
        while True:
            try:
                path.mkdir(parents=True)
                return cls(path).lock()
            except FileExistsError:
                suffix += 1
                path = Path(f"{base}-{suffix}")
            except OSError as error:
                raise StorageError(f"cannot create the run folder: {error.strerror}", str(path)) from None

    @classmethod
    def create_at(cls, path: str | Path) -> "RunDir":
        """Exactly this folder (grid cells, search retrains), locked; it must not hold a run already."""
        run = cls(path)
        if run.path.is_dir() and not is_run_folder(run.path) and not all(map(own_leftover, run.path.iterdir())):
            raise UsageError("not empty and not an fmnist run folder: fmnist writes only into a new or empty folder "
                             "(or resumes its own runs)", str(path))
        try:
            run.path.mkdir(parents=True, exist_ok=True)
        except OSError as error:
            raise StorageError(f"cannot create the run folder: {error.strerror}", str(path)) from None
        run.lock()
        if run.file("config.yaml").exists():
            raise UsageError("already holds a run; resume it with 'fmnist run --resume' or choose another folder", str(path))
        return run

    @classmethod
    def existing(cls, path: str | Path) -> "RunDir":
        """A run folder to read or resume; OUT/latest is the newest run in OUT."""
        from .catalog import LATEST, newest_run

        if Path(path).name == LATEST and not Path(path).exists() and Path(path).parent.is_dir():
            newest = newest_run(Path(path).parent)
            if newest is None:
                raise UsageError(f"no run in {Path(path).parent} yet, so no '{LATEST}'", str(path))
            path = newest
        run = cls(path)
        if not run.path.is_dir():
            raise UsageError("no such run folder", str(path))
        if not run.file("config.yaml").is_file():
            raise UsageError("not an fmnist run folder (no config.yaml)", str(path))
        return run

    def lock(self) -> "RunDir":
        """Become this folder's one writer, or refuse; then clear what a killed writer left half-written.

        The lock is on the folder itself (no lock file), so it also works where the folder is read-only.
        """
        if not LOCKS or self._lock is not None:
            return self
        try:
            handle = os.open(self.path, os.O_RDONLY)
        except OSError as error:
            raise StorageError(f"cannot open the run folder: {error.strerror}", str(self.path)) from None
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(handle)
            raise UsageError("in use by another fmnist process (a run or --resume is writing here); wait for it to "
                             "finish or stop it", str(self.path)) from None
        self._lock = handle  # held until the process exits, however it exits
        for stale in filter(own_leftover, self.path.glob(".*.tmp")):  # nobody renamed it: its writer died mid-write
            stale.unlink(missing_ok=True)
        return self

    def unlock(self) -> None:
        """Stop being the writer (the lock also goes when the process ends)."""
        if self._lock is not None:
            os.close(self._lock)
            self._lock = None

    def file(self, name: str) -> Path:
        return self.path / name

    def write_config(self, config: "RunConfig") -> None:
        atomic_write(self.file("config.yaml"), config.write_text().encode())

    # --- reading a run back: what eval, predict, export and resume need, checked once here ---

    def config(self) -> "RunConfig":
        """config.yaml, read, checked and upgraded once (RunConfig)."""
        if self._config is None:
            from .run_config import RunConfig

            self._config = RunConfig.read(self.path)
        return self._config

    def spec(self):
        """The run's spec, as it was trained."""
        from ..builder.spec import parse_spec

        return parse_spec(self.config().spec, str(self.file("config.yaml")))

    def best_model(self, device: torch.device):
        """(the best validation epoch's model in eval mode on `device`, its checkpoint)."""
        from .models import load_weights, make_model

        checkpoint = self.load_checkpoint("best.pt")
        if not isinstance(checkpoint.spec, dict) or checkpoint.spec != self.config().spec:
            raise UsageError("best.pt belongs to another spec than config.yaml (copied from another run?)", str(self.file("best.pt")))
        model = make_model(self.spec(), self.config().settings(), self.config().data.normalization)
        load_weights(model, checkpoint.model, self.file("best.pt"))
        return model.to(device).eval(), checkpoint

    def write_metrics(self, epochs: list[dict]) -> None:
        text = io.StringIO()
        writer = csv.DictWriter(text, fieldnames=METRIC_COLUMNS, extrasaction="ignore", lineterminator="\n")
        writer.writeheader()
        writer.writerows(epochs)
        atomic_write(self.file("metrics.csv"), text.getvalue().encode())

    def write_json(self, name: str, data: dict) -> None:
        atomic_write(self.file(name), (strict_json(data) + "\n").encode())

    def load_checkpoint(self, name: str) -> Checkpoint:
        return Checkpoint.load(self.file(name))


def strict_json(data) -> str:
    """JSON without NaN/Infinity (which are not JSON): such a value means something upstream is broken."""
    try:
        return json.dumps(data, indent=2, allow_nan=False)
    except ValueError:
        raise UsageError("a result holds NaN or infinity (a damaged model?); nothing was written") from None
