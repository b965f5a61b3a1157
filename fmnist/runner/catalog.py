"""The runs under a folder, each read back as one row: what `fmnist runs` lists."""
from __future__ import annotations

import csv
import json
import os
from dataclasses import asdict, dataclass
from pathlib import Path

import yaml

ERROR_FILE = "error.txt"  # a run that stopped on an error leaves its one-line message here
LATEST = "latest"  # out/latest points at the newest run made there


@dataclass
class RunRow:
    run: str
    name: str
    started: str
    epochs: int
    planned: int
    best_val_acc: float | None
    test_acc: float | None
    state: str  # finished, running, interrupted, failed
    note: str = ""

    def as_dict(self) -> dict:
        return asdict(self)


def _is_locked(folder: Path) -> bool:
    """Whether a process holds the folder's writer lock right now (it is training there)."""
    try:
        import fcntl
    except ImportError:
        return False
    try:
        handle = os.open(folder, os.O_RDONLY)
    except OSError:
        return False
    try:
        fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        fcntl.flock(handle, fcntl.LOCK_UN)
        return False
    except BlockingIOError:
        return True
    finally:
        os.close(handle)


def read_row(folder: Path) -> RunRow | None:
    """One run folder as a row, or None when it is not one (or its config cannot be read)."""
    try:
        config = yaml.safe_load((folder / "config.yaml").read_text())
        hparams, spec = config["hparams"], config["spec"]
    except (OSError, yaml.YAMLError, TypeError, KeyError):
        return None
    try:
        with open(folder / "metrics.csv", newline="") as stream:
            epochs = list(csv.DictReader(stream))
    except OSError:
        epochs = []
    try:
        summary = json.loads((folder / "summary.json").read_text())
    except (OSError, ValueError):
        summary = None
    error = (folder / ERROR_FILE).read_text().strip() if (folder / ERROR_FILE).is_file() else ""
    if summary:
        state, note = "finished", summary.get("stopped", "")
    elif _is_locked(folder):
        state, note = "running", ""
    elif error:
        state, note = "failed", error
    else:
        state, note = "interrupted", "resume with: fmnist run --resume " + str(folder)
    best = max((float(row["val_acc"]) for row in epochs), default=None)
    return RunRow(str(folder), str(spec.get("name", "?")), str(config.get("created", "")), len(epochs),
                  int(hparams.get("num_epochs", 0)), best, summary.get("test_acc") if summary else None, state, note)


def find_runs(root: Path) -> list[RunRow]:
    """The runs in `root` and one level below (grid cells, search retrains), oldest first."""
    folders = {path.parent for pattern in ("*/config.yaml", "*/*/config.yaml") for path in root.glob(pattern)}
    rows = [row for folder in folders if not folder.is_symlink() and (row := read_row(folder))]
    return sorted(rows, key=lambda row: (row.started, row.run))


def point_latest(out: Path, run: Path) -> None:
    """out/latest -> the run just made (replaced atomically; where links are not possible, nothing)."""
    link, temporary = out / LATEST, out / f".{LATEST}.{os.getpid()}"
    try:
        temporary.unlink(missing_ok=True)
        temporary.symlink_to(run.name, target_is_directory=True)
        os.replace(temporary, link)
    except OSError:
        temporary.unlink(missing_ok=True)
