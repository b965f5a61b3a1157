"""The result figures of docs/results.md, drawn from the committed result files (never from a run folder).

    python scripts/results_figures.py            # print what each figure shows, a line per run
    python scripts/results_figures.py --write    # and draw docs/best95_curves.png

best95_curves: each attempt at 95% (ATTEMPTS_95, results/SPEC/seedN.json), validation accuracy against minutes of
training, with the 95% target, the 60-minute budget, and each run's test accuracy at its best validation epoch.
"""
from __future__ import annotations

import argparse
import sys
from itertools import accumulate, cycle
from pathlib import Path

from results_tables import ATTEMPTS_95, ROOT, seed_runs

TARGET = 95.0  # % test accuracy, issue #24
BUDGET_MINUTES = 60


def runs_95(results: Path) -> list[tuple[str, dict]]:
    """(label, result) for every seed of every attempt, in ATTEMPTS_95's order."""
    return [(f"{spec} seed {run['hparams']['seed']}", run) for spec in ATTEMPTS_95 for run in seed_runs(results / spec)]


def minutes_at_each_epoch(run: dict) -> list[float]:
    """Training minutes at the end of each epoch (a result file's per-epoch seconds are its training steps)."""
    return [seconds / 60 for seconds in accumulate(epoch["seconds"] for epoch in run["epochs"])]


def describe(label: str, run: dict) -> str:
    best, minutes = run["best_epoch"], minutes_at_each_epoch(run)
    return (f"{label}: {len(run['epochs'])} epochs in {minutes[-1]:.1f} min; best validation "
            f"{100 * run['best_val_acc']:.2f}% at epoch {best} ({minutes[best - 1]:.1f} min); "
            f"test {100 * run['test_acc']:.2f}%")


def draw_best95(runs: list[tuple[str, dict]], path: Path) -> None:
    from fmnist.runner.plots import pyplot, save_figure

    plt = pyplot()
    figure, axes = plt.subplots(figsize=(8, 5))
    for (label, run), color in zip(runs, cycle(plt.rcParams["axes.prop_cycle"].by_key()["color"])):
        minutes = minutes_at_each_epoch(run)
        axes.plot(minutes, [100 * epoch["val_acc"] for epoch in run["epochs"]], "-", color=color, label=label)
        axes.plot(minutes[run["best_epoch"] - 1], 100 * run["test_acc"], "D", color=color, markerfacecolor="none", markersize=8)
    axes.plot([], [], "D", color="grey", markerfacecolor="none", label="test, at the best validation epoch")  # legend only
    axes.axhline(TARGET, color="black", linestyle="--", linewidth=1, label=f"target: {TARGET:.1f}% test")
    axes.axvline(BUDGET_MINUTES, color="grey", linestyle=":", label=f"budget: {BUDGET_MINUTES} min of training")
    axes.set_xlim(BUDGET_MINUTES / 2, BUDGET_MINUTES * 1.1)  # the last half hour, where the attempts part
    axes.set_ylim(92.0, 95.5)
    axes.set_xlabel("minutes of training steps (2 CPU cores)")
    axes.set_ylabel("accuracy (%)")
    axes.set_title("The attempts at 95% in an hour: validation accuracy (lines) as they trained")
    axes.grid(alpha=0.3)
    axes.legend(loc="upper left", fontsize="small", framealpha=0.9)
    save_figure(figure, path)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--write", action="store_true", help="draw docs/best95_curves.png")
    parser.add_argument("--results", type=Path, default=ROOT / "results", help="the result files' folder [results/]")
    parser.add_argument("--out", type=Path, default=ROOT / "docs", help="where the figures go [docs/]")
    args = parser.parse_args(argv)
    runs = runs_95(args.results)
    if not runs:
        print(f"best95_curves: no result files under {args.results}/{{{','.join(ATTEMPTS_95)}}}/", file=sys.stderr)
        return 1
    print("best95_curves:", *(describe(label, run) for label, run in runs), sep="\n  ")
    if args.write:
        draw_best95(runs, args.out / "best95_curves.png")
    return 0


if __name__ == "__main__":
    sys.exit(main())
