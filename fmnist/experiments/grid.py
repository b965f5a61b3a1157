"""The study's Table 1: every spec x augmentation x output layer, each cell a normal run in its own process."""
from __future__ import annotations

import csv
import io
import json
import os
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor, as_completed
from dataclasses import dataclass
from pathlib import Path

from ..runner.rundir import atomic_write

# The study's column order.
COLUMNS = (("No Augment. Softmax", False, "softmax"), ("Augment. Softmax", True, "softmax"),
           ("No Augment. Sigmoid", False, "sigmoid"), ("Augment. Sigmoid", True, "sigmoid"))


@dataclass
class Cell:
    spec_file: str
    model: str
    augment: bool
    loss: str
    folder: Path

    @property
    def name(self) -> str:
        return self.folder.name

    @property
    def summary(self) -> dict | None:
        path = self.folder / "summary.json"
        return json.loads(path.read_text()) if path.is_file() else None

    def command(self, passthrough: list[str]) -> list[str]:
        """A killed cell resumes from its last epoch; a new one starts in its fixed folder."""
        if (self.folder / "last.pt").is_file():
            device = passthrough[passthrough.index("--device") + 1] if "--device" in passthrough else "auto"
            return [sys.executable, "-m", "fmnist.cli", "run", "--resume", str(self.folder), "--device", device]
        return [sys.executable, "-m", "fmnist.cli", "run", self.spec_file, "--augment" if self.augment else "--no-augment",
                "--loss", self.loss, "--run-dir", str(self.folder), *passthrough]


def make_cells(specs: list[tuple[str, str]], augments: list[bool], losses: list[str], out: Path) -> list[Cell]:
    """specs: (file, model name) pairs, in table order."""
    cells = []
    for spec_file, model in specs:
        for _, augment, loss in COLUMNS:
            if augment in augments and loss in losses:
                name = f"{model}-{'aug' if augment else 'noaug'}-{loss}"
                cells.append(Cell(spec_file, model, augment, loss, out / name))
    return cells


def run_cells(cells: list[Cell], passthrough: list[str], jobs: int, cpu_threads: int | None, log_dir: Path, report) -> dict[str, str]:
    """Run the unfinished cells, `jobs` at a time; returns {cell name: error line} for the cells that failed."""
    log_dir.mkdir(parents=True, exist_ok=True)
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    if cpu_threads:
        env["OMP_NUM_THREADS"] = str(cpu_threads)  # N cells on a CPU share its cores instead of fighting for them
    todo = [cell for cell in cells if cell.summary is None]
    failures: dict[str, str] = {}

    def run_one(cell: Cell) -> tuple[Cell, int, float]:
        started = time.perf_counter()
        with open(log_dir / f"{cell.name}.log", "w") as log:
            code = subprocess.run(cell.command(passthrough), stdout=log, stderr=subprocess.STDOUT, env=env).returncode
        return cell, code, time.perf_counter() - started

    done = len(cells) - len(todo)
    with ThreadPoolExecutor(max_workers=jobs) as pool:
        for future in as_completed([pool.submit(run_one, cell) for cell in todo]):
            cell, code, seconds = future.result()
            done += 1
            if code == 0 and cell.summary:
                report(f"[{done}/{len(cells)}] {cell.name}: test {100 * cell.summary['test_acc']:.2f}% ({seconds:.0f} s)")
            else:
                lines = (log_dir / f"{cell.name}.log").read_text().strip().splitlines()
                failures[cell.name] = lines[-1] if lines else f"exit {code}"
                report(f"[{done}/{len(cells)}] {cell.name}: FAILED (exit {code}): {failures[cell.name]}")
    return failures


def table(cells: list[Cell]) -> tuple[str, str]:
    """(markdown, csv) in the study's layout: test accuracy in %, best of each column in bold, mean epoch seconds."""
    columns = [(title, augment, loss) for title, augment, loss in COLUMNS
               if any(c.augment == augment and c.loss == loss for c in cells)]
    models = list(dict.fromkeys(c.model for c in cells))
    found = {(c.model, c.augment, c.loss): c.summary for c in cells}
    best = {}
    for title, augment, loss in columns:
        scores = [s["test_acc"] for m in models if (s := found.get((m, augment, loss)))]
        best[title] = max(scores) if scores else None
    md = [f"| Model | {' | '.join(title for title, _, _ in columns)} | Epoch s |", "|---" * (len(columns) + 2) + "|"]
    rows = [["model", *(title for title, _, _ in columns), "epoch_seconds"]]
    for model in models:
        cells_md, cells_csv, seconds = [], [], []
        for title, augment, loss in columns:
            summary = found.get((model, augment, loss))
            if summary is None:
                cells_md.append("–")
                cells_csv.append("")
                continue
            text = f"{100 * summary['test_acc']:.2f}%"
            cells_md.append(f"**{text}**" if summary["test_acc"] == best[title] else text)
            cells_csv.append(f"{100 * summary['test_acc']:.2f}")
            seconds += [e["seconds"] for e in summary["epochs"]]
        mean = f"{sum(seconds) / len(seconds):.2f}" if seconds else ""
        md.append(f"| {model} | {' | '.join(cells_md)} | {mean or '–'} |")
        rows.append([model, *cells_csv, mean])
    text = io.StringIO()
    csv.writer(text, lineterminator="\n").writerows(rows)
    return "\n".join(md) + "\n", text.getvalue()


def write_table(cells: list[Cell], out: Path) -> str:
    markdown, comma_separated = table(cells)
    atomic_write(out / "table.md", markdown.encode())
    atomic_write(out / "table.csv", comma_separated.encode())
    return markdown
