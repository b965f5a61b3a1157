"""The runs under a folder, each read back as one row: what `fmnist runs` lists."""
from __future__ import annotations

import csv
import json
import os
from dataclasses import asdict, dataclass
from pathlib import Path

import yaml

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


def read_config(folder: Path) -> tuple[dict, str]:
    """(config.yaml as a mapping, '') or ({}, what is wrong with it)."""
    try:
        config = yaml.safe_load((folder / "config.yaml").read_text())
    except OSError as error:
        return {}, f"config.yaml unreadable ({error.strerror})"
    except yaml.YAMLError:
        return {}, "config.yaml is not valid YAML"
    if not isinstance(config, dict):
        return {}, "config.yaml is not a mapping"
    wrong = [key for key in ("spec", "hparams") if not isinstance(config.get(key), dict)]
    return config, f"config.yaml's {' and '.join(wrong)} {'is' if len(wrong) == 1 else 'are'} not a mapping" if wrong else ""


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


def _dataset(config: dict) -> str:
    data = config.get("data")
    return str(data.get("dataset", "fashion-mnist")) if isinstance(data, dict) else "?"  # runs before --data: Fashion-MNIST


def read_row(folder: Path) -> RunRow | None:
    """One run folder as a row (a damaged one says what is damaged), or None when it is not a run folder."""
    if not (folder / "config.yaml").is_file():
        return None
    config, config_problem = read_config(folder)
    epochs, metrics_problem = read_metrics(folder)
    summary, summary_problem = read_summary(folder)
    hparams = config.get("hparams") if isinstance(config.get("hparams"), dict) else {}
    spec = config.get("spec") if isinstance(config.get("spec"), dict) else {}
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
    try:
        planned = int(hparams.get("num_epochs", 0))
    except (TypeError, ValueError):
        planned = 0
    return RunRow(str(folder), str(spec.get("name", "?")), str(config.get("created", "")), _dataset(config), len(epochs),
                  planned, best, summary.get("test_acc") if summary else None, state, note)


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
    return max(folders, key=lambda folder: (str(read_config(folder)[0].get("created", "")), folder.name), default=None)
