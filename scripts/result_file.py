"""A finished run folder as a result file to commit (what grid --results writes for a cell): summary.json less the
confusion matrix, with its data, speed, machine, versions and command.

    python scripts/result_file.py runs/fmnist_95 results/fmnist_95/seed0.json
"""
from __future__ import annotations

import sys
from pathlib import Path

from fmnist.experiments.results import write_result

if __name__ == "__main__":
    if len(sys.argv) != 3:
        sys.exit("usage: python scripts/result_file.py FINISHED_RUN_FOLDER TARGET.json")
    if not (Path(sys.argv[1]) / "summary.json").is_file():
        sys.exit(f"{sys.argv[1]}: not a finished run folder (no summary.json)")
    write_result(Path(sys.argv[1]), Path(sys.argv[2]))
    print(f"written: {sys.argv[2]}")
