"""What costs the augmented cells their points: CNN_4 (or another spec) with augmentation, fp32 vs bf16 autocast,
crop pad 1/2/4, several seeds, the study's recipe otherwise. One result JSON per cell in --results; cells whose
file exists are skipped, so the matrix can be finished in pieces.

    OMP_NUM_THREADS=1 python scripts/aug_precision.py --results results/aug-precision
"""
from __future__ import annotations

import argparse
import itertools
import json
import platform
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

import yaml

from fmnist.experiments.results import result_of


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--spec", default="specs/cnn_4.yaml")
    parser.add_argument("--results", default="results/aug-precision")
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--pads", type=int, nargs="+", default=[1, 2, 4])
    parser.add_argument("--precisions", nargs="+", default=["fp32", "bf16"])
    args = parser.parse_args()
    results = Path(args.results)
    results.mkdir(parents=True, exist_ok=True)
    model = yaml.safe_load(Path(args.spec).read_text())["name"]
    for seed, precision, pad in itertools.product(args.seeds, args.precisions, args.pads):
        target = results / f"{model}-aug-pad{pad}-{precision}-seed{seed}.json"
        if target.is_file():
            continue
        with tempfile.TemporaryDirectory() as scratch:
            run = Path(scratch) / "run"
            command = [sys.executable, "-m", "fmnist", "run", args.spec, "--augment", "--crop-pad", str(pad),
                       "--precision", precision, "--seed", str(seed), "--run-dir", str(run)]
            code = subprocess.run(command, stdout=subprocess.DEVNULL).returncode
            if code != 0:
                print(f"{target.name}: FAILED (exit {code})", flush=True)
                continue
            result = result_of(run)
            target.write_text(json.dumps(result, indent=2) + "\n")
            shutil.rmtree(run, ignore_errors=True)
        print(f"{target.name}: test {100 * result['test_acc']:.2f}% ({result['train_seconds']:.0f} s, "
              f"{platform.processor() or platform.machine()})", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
