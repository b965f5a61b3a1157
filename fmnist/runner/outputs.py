"""Which files belong to a run folder, so that no other output lands on one (torch-free: `draw` uses it too)."""
from __future__ import annotations

from pathlib import Path

from ..errors import UsageError

# what a run writes into its folder: no other command's output may replace one of them
RUN_FILES = ("config.yaml", "metrics.csv", "best.pt", "last.pt", "summary.json", "error.txt", "loss.png", "accuracy.png",
             "confusion.png", "tensorboard")


def own_leftover(entry: Path) -> bool:
    """A temporary file a killed run left half-written (atomic_write's `.NAME.<random>.tmp`, NAME one of the run's files)."""
    return entry.name.endswith(".tmp") and any(entry.name.startswith(f".{name}.") for name in RUN_FILES)


def is_run_folder(folder: Path) -> bool:
    return (folder / "config.yaml").is_file()


def check_output(path: str | Path, option: str, ours: tuple[str, ...] = ()) -> None:
    """An output file a command was asked to write (export --out, compare --plot): refused when it is one of a run
    folder's own files (only `ours`, what the command itself writes there by default, may be replaced)."""
    target = Path(path).resolve()
    if is_run_folder(target.parent) and target.name not in ours and (target.name in RUN_FILES or target.exists()):
        raise UsageError(f"{option} {path}: that is a file of the run in {target.parent}; choose another path")
