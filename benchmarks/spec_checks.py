"""How long `fmnist validate` and `fmnist summary` take, and how much memory, for CNN_4 and 224-px zoo specs.

    python benchmarks/spec_checks.py [--repeat 3] [--out results/spec_checks.json]

Each command runs as a fresh process (as an editor or a pre-commit hook starts it); the figure is the median wall
time of --repeat runs and the peak resident memory. Run it on a quiet machine: it writes the machine beside them.
"""
from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
COMMANDS = [
    ["validate", "--no-expect", "cnn_4"],
    ["validate", "cnn_4"],
    ["summary", "cnn_4"],
    ["validate", "--no-expect", "resnet50"],
    ["validate", "--no-expect", "convnext_tiny"],
    ["validate", "resnet50"],
    ["summary", "resnet50"],
    ["summary", "convnext_tiny"],
    ["summary", "vgg11_bn"],
]


def measure(arguments: list[str]) -> tuple[float, float]:
    """(wall seconds, peak resident MB) of one `python -m fmnist ARGUMENTS` process."""
    started = time.perf_counter()
    process = subprocess.Popen([sys.executable, "-m", "fmnist", *arguments], stdout=subprocess.DEVNULL,
                               stderr=subprocess.PIPE)
    _, status, usage = os.wait4(process.pid, 0)
    seconds = time.perf_counter() - started
    if os.waitstatus_to_exitcode(status) != 0:
        raise SystemExit(f"fmnist {' '.join(arguments)} failed: {process.stderr.read().decode()}")
    return seconds, usage.ru_maxrss / 1024


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--out", type=Path, default=ROOT / "results" / "spec_checks.json")
    args = parser.parse_args(argv)
    rows = []
    for arguments in COMMANDS:
        runs = [measure(arguments) for _ in range(args.repeat)]
        row = {"command": "fmnist " + " ".join(arguments), "seconds": round(statistics.median(r[0] for r in runs), 2),
               "peak_mb": round(max(r[1] for r in runs))}
        print(f"{row['command']:<45} {row['seconds']:6.2f} s  {row['peak_mb']:5d} MB")
        rows.append(row)
    import torch

    from fmnist.machine import cpu_class, cpu_model

    result = {"machine": {"cpu": cpu_model(), "cpu_class": cpu_class(), "cores": os.cpu_count(),
                          "torch": torch.__version__.split("+")[0],
                          "python": platform.python_version()},
              "repeat": args.repeat, "checks": rows}
    args.out.write_text(json.dumps(result, indent=2) + "\n")
    print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
