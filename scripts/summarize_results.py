"""Mean ± sd of test accuracy over seeds, per model / crop pad / precision, from a folder of result files.

    python scripts/summarize_results.py results/aug-precision
"""
from __future__ import annotations

import json
import statistics
import sys
from collections import defaultdict
from pathlib import Path


def main(folder: str) -> int:
    groups: dict[tuple, list[float]] = defaultdict(list)
    machines = set()
    for path in sorted(Path(folder).glob("*.json")):
        result = json.loads(path.read_text())
        hparams, speed = result["hparams"], result.get("speed", {})
        key = (result["name"], hparams["crop_pad"] if hparams["augment"] else "-", speed.get("precision", "?"))
        groups[key].append(100 * result["test_acc"])
        machine = result.get("machine", {})
        machines.add(f"{machine.get('cpu', machine.get('processor', '?'))} ({machine.get('cpu_class', '?')}), "
                     f"{machine.get('threads', '?')} thread(s), torch {result.get('versions', {}).get('torch', '?')}")
    print("| model | crop pad | precision | seeds | test accuracy, mean ± sd |")
    print("|---|---|---|---|---|")
    for (name, pad, precision), scores in sorted(groups.items(), key=lambda item: tuple(map(str, item[0]))):
        spread = f" ± {statistics.stdev(scores):.2f}" if len(scores) > 1 else ""
        print(f"| {name} | {pad} | {precision} | {len(scores)} | {statistics.mean(scores):.2f}{spread} |")
    print(f"\nmachines: {'; '.join(sorted(machines))}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1] if len(sys.argv) > 1 else "results/aug-precision"))
