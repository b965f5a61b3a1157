"""The runs under a folder, each read back as one row: what `fmnist runs` lists."""
from __future__ import annotations

import csv
import json
import os
from dataclasses import asdict, dataclass
from pathlib import Path

from ..durations import minutes_text
from ..errors import UsageError
from .run_config import RunConfig

ERROR_FILE = "error.txt"  # a run that stopped on an error leaves its one-line message here
LATEST = "latest"  # OUT/latest names the newest run in OUT; fmnist resolves it (no link: TensorBoard would see it twice)


@dataclass
class RunRow:
    run: str
    name: str
    started: str
    data: str  # the dataset's label: fashion-mnist, cifar10, folder:PATH
    epochs: int
    planned: int
    best_val_acc: float | None
    test_acc: float | None
    state: str  # finished, running, interrupted, failed, damaged
    note: str = ""
    budget_minutes: float | None = None  # a budgeted run's: its epochs are not planned, only capped

    def as_dict(self) -> dict:
        return asdict(self)

    def epochs_text(self) -> str:
        """'3/10' epochs done of those planned; '3 (60 min)' for a budgeted run."""
        if self.budget_minutes is not None:
            return f"{self.epochs} ({minutes_text(self.budget_minutes)})"
        return f"{self.epochs}/{self.planned}"


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


def read_config(folder: Path) -> tuple[RunConfig | None, str]:
    """(config.yaml as a RunConfig, '') or (None, what is wrong with it)."""
    try:
        return RunConfig.read(folder), ""
    except UsageError as error:
        return None, error.message


def read_metrics(folder: Path) -> tuple[list[dict], str]:
    """(metrics.csv's rows as numbers, '') or (the rows before the first damaged one, what is wrong)."""
    try:
        with open(folder / "metrics.csv", newline="") as stream:
            rows = list(csv.DictReader(stream))
    except FileNotFoundError:
        return [], ""
    except (OSError, UnicodeDecodeError, csv.Error):
        return [], "metrics.csv unreadable"
    epochs = []
    for number, row in enumerate(rows, start=2):  # line 1 is the header
        try:
            if None in row or None in row.values() or "val_acc" not in row:  # a row longer or shorter than the header
                raise ValueError
            epochs.append({key: float(value) for key, value in row.items()})
        except ValueError:
            return epochs, f"metrics.csv line {number} is damaged"
    return epochs, ""


def read_summary(folder: Path) -> tuple[dict | None, str]:
    """(summary.json, '') for a finished run, (None, '') for one without, (None, what is wrong) for a damaged one."""
    try:
        summary = json.loads((folder / "summary.json").read_text())
    except FileNotFoundError:
        return None, ""
    except (OSError, ValueError):
        return None, "summary.json is not valid JSON"
    if not isinstance(summary, dict) or not isinstance(summary.get("test_acc"), (int, float)):
        return None, "summary.json is not an fmnist summary"
    return summary, ""


def read_row(folder: Path) -> RunRow | None:
    """One run folder as a row (a damaged one says what is damaged), or None when it is not a run folder."""
    if not (folder / "config.yaml").is_file():
        return None
    config, config_problem = read_config(folder)
    epochs, metrics_problem = read_metrics(folder)
    summary, summary_problem = read_summary(folder)
    error = (folder / ERROR_FILE).read_text(errors="replace").strip() if (folder / ERROR_FILE).is_file() else ""
    if config_problem:
        state, note = "damaged", config_problem
    elif summary:
        state, note = "finished", str(summary.get("stopped", ""))
    elif _is_locked(folder):
        state, note = "running", ""
    elif summary_problem:  # a resume tests the best epoch again and writes it anew
        state, note = "damaged", f"{summary_problem}; write it anew with: fmnist run --resume {folder}"
    elif error:
        state, note = "failed", error
    else:
        state, note = "interrupted", "resume with: fmnist run --resume " + str(folder)
    if metrics_problem:
        state, note = ("damaged" if state == "finished" else state), "; ".join(filter(None, (note, metrics_problem)))
    best = max((row["val_acc"] for row in epochs), default=None)
    settings = config.settings() if config else None
    return RunRow(str(folder), config.name if config else "?", config.created if config else "",
                  config.data.dataset if config else "?", len(epochs), settings.num_epochs if settings else 0, best,
                  summary.get("test_acc") if summary else None, state, note, settings.budget if settings else None)


def find_runs(root: Path) -> list[RunRow]:
    """The runs in `root` and one level below (grid cells, search retrains), oldest first; a run reached twice (through
    runs/latest, or a link back up the tree) is listed once, by its path without links."""
    folders = sorted({path.parent for pattern in ("*/config.yaml", "*/*/config.yaml") for path in root.glob(pattern)},
                     key=lambda folder: (_through_link(root, folder), str(folder)))
    seen, rows = set(), []
    for folder in folders:
        real = folder.resolve()
        if real not in seen and (row := read_row(folder)):
            seen.add(real)
            rows.append(row)
    return sorted(rows, key=lambda row: (row.started, row.run))


def _through_link(root: Path, folder: Path) -> bool:
    parts = folder.relative_to(root).parts
    return any((root.joinpath(*parts[:n])).is_symlink() for n in range(1, len(parts) + 1))


def newest_run(out: Path) -> Path | None:
    """The run made last in `out` (by config.yaml's `created`, then name), or None when it holds none."""
    folders = [path.parent for path in out.glob("*/config.yaml") if not path.parent.is_symlink()]
    return max(folders, key=lambda folder: (_created(folder), folder.name), default=None)


def _created(folder: Path) -> str:
    config, _ = read_config(folder)
    return str(config.created) if config else ""
