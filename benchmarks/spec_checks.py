"""How long `fmnist validate` and `fmnist summary` take, and how much memory, for CNN_4 and 224-px zoo specs (CNNs and
vision transformers), and for hostile specs made to take long (each must be refused, exit 2, within the same second or two).

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
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
COMMANDS = [
    ["--help"],
    ["validate", "--no-expect", "cnn_4"],
    ["validate", "cnn_4"],
    ["summary", "cnn_4"],
    ["validate", "--no-expect", "resnet50"],
    ["validate", "--no-expect", "convnext_tiny"],
    ["validate", "resnet50"],
    ["summary", "resnet50"],
    ["summary", "convnext_tiny"],
    ["summary", "vgg11_bn"],
    ["summary", "vit_b_16"],
    ["summary", "swin_t"],
]


def _nested(copies: int, levels: int = 14) -> str:
    """b1($x$x...) -> b2(...) -> ...: an argument that repeats its parameter grows `copies` times per level."""
    blocks = "".join(f"  b{n}: {{params: [x], layers: ['b{n + 1}({'$x' * copies})']}}\n" for n in range(1, levels))
    return f"name: nest\nblocks:\n{blocks}  b{levels}: {{params: [x], layers: [relu]}}\nlayers: [b1(1), fc 10]\n"


HOSTILE = {  # file name -> text: each refused in one line naming the limit it meets (round 3: seconds to minutes)
    "nested_x4.yaml": _nested(4),
    "nested_x8.yaml": _nested(8),
    "unclosed_calls.yaml": "name: u\nlayers:\n" + "  - b(\n" * 15_000 + "  - fc 10\n",
    "flow_list_1mib.yaml": "name: f\nlayers: [" + ", ".join(["relu"] * 170_000) + ", fc 10]\n",
    "power_tower.yaml": "name: p\nblocks: {b: {params: [c], layers: ['conv 1x1x${(((10**64)**64)**64)**64}']}}\n"
                        "layers: [b(1), fc 10]\n",
}


def measure(arguments: list[str], expect_exit: int = 0) -> tuple[float, float]:
    """(wall seconds, peak resident MB) of one `python -m fmnist ARGUMENTS` process that exits `expect_exit`."""
    started = time.perf_counter()
    process = subprocess.Popen([sys.executable, "-m", "fmnist", *arguments], stdout=subprocess.DEVNULL,
                               stderr=subprocess.PIPE)
    _, status, usage = os.wait4(process.pid, 0)
    seconds = time.perf_counter() - started
    if os.waitstatus_to_exitcode(status) != expect_exit:
        raise SystemExit(f"fmnist {' '.join(arguments)}: exit {os.waitstatus_to_exitcode(status)}, not {expect_exit}: "
                         f"{process.stderr.read().decode()[:300]}")
    return seconds, usage.ru_maxrss / 1024


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--out", type=Path, default=ROOT / "results" / "spec_checks.json")
    args = parser.parse_args(argv)
    rows = []
    with tempfile.TemporaryDirectory() as folder:
        for name, text in HOSTILE.items():
            (Path(folder) / name).write_text(text)
        work = [(arguments, 0) for arguments in COMMANDS] + \
            [(["validate", "--no-expect", str(Path(folder) / name)], 2) for name in HOSTILE]
        for arguments, expect_exit in work:
            runs = [measure(arguments, expect_exit) for _ in range(args.repeat)]
            shown = " ".join(Path(word).name if word.startswith(folder) else word for word in arguments)
            row = {"command": f"fmnist {shown}" + (" (refused, exit 2)" if expect_exit else ""),
                   "seconds": round(statistics.median(r[0] for r in runs), 2), "peak_mb": round(max(r[1] for r in runs))}
            print(f"{row['command']:<60} {row['seconds']:6.2f} s  {row['peak_mb']:5d} MB")
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
