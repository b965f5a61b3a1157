"""The study's Table 1: every spec x augmentation x output layer, each cell a normal run in its own process."""
from __future__ import annotations

import csv
import io
import json
import os
import signal
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

from ..hparams import LOSSES
from ..runner.preflight import RunOptions
from ..runner.rundir import atomic_write
from .results import read_result, write_result

LOSS_TITLES = {"softmax": "Softmax", "sigmoid": "Sigmoid", "sigmoid-ce": "Sigmoid (CE)"}  # the study's two titles, then ours
# The study's column order: per output layer, without then with augmentation.
COLUMNS = tuple((f"{'Augment.' if augment else 'No Augment.'} {LOSS_TITLES[loss]}", augment, loss)
                for loss in LOSSES for augment in (False, True))


CELL_LOCKS = ".cells"  # the grid's claim on a cell lives here: the cell's own folder lock belongs to its `fmnist run`
STOP_GRACE_S = 60  # after Ctrl-C a cell gets this long to save its epoch and exit before it is killed
POLL_S = 0.2


@dataclass
class Cell:
    spec_file: str
    model: str
    augment: bool
    loss: str
    folder: Path
    hparams: dict  # the cell's resolved settings: what its `fmnist run` is told, flag by flag
    options: RunOptions  # device, data and speed levers
    remote: dict | None = None  # the result of a cell another machine ran (grid --storage)
    result_file: Path | None = None  # grid --results: the cell's committed result, which counts as finished

    @property
    def name(self) -> str:
        return self.folder.name

    @property
    def summary(self) -> dict | None:
        """The finished cell's summary.json (or its result from the shared study); None while it is not finished
        (or when the file is damaged)."""
        committed = read_result(self.result_file) if self.result_file else None
        if committed:  # written from the cell's summary.json when it finished, plus where it ran
            return committed
        path = self.folder / "summary.json"
        try:
            summary = json.loads(path.read_text())
        except (OSError, ValueError):
            return self.remote
        return summary if isinstance(summary, dict) and isinstance(summary.get("test_acc"), (int, float)) \
            and isinstance(summary.get("epochs"), list) else None

    @property
    def damaged(self) -> bool:
        """summary.json is there but unreadable: the cell is reported, not re-run over it or crashed on."""
        return (self.folder / "summary.json").exists() and self.summary is None

    def command(self) -> list[str]:
        """A cell that has begun (config.yaml is there) resumes or restarts in its folder; a new one starts there."""
        run = [sys.executable, "-m", "fmnist", "run"]
        if (self.folder / "config.yaml").is_file():
            threads = ["--threads", str(self.options.threads)] if self.options.threads else []
            return [*run, "--resume", str(self.folder), "--device", self.options.device, *threads]
        return [*run, self.spec_file, "--run-dir", str(self.folder), *run_flags(self.hparams, self.options)]


def run_flags(hparams: dict, options: RunOptions) -> list[str]:
    """Resolved settings as the `fmnist run` flags that give exactly them (every setting has its flag)."""
    flags = []
    for name, value in hparams.items():
        flag = name.replace("_", "-")
        if value is None:  # not set: e.g. dropout as written in the spec
            continue
        flags += [f"--{flag}" if value else f"--no-{flag}"] if isinstance(value, bool) else [f"--{flag}", str(value)]
    flags += ["--device", options.device, "--precision", options.precision, "--fast" if options.fast else "--plain"]
    if isinstance(options.data, str):
        flags += ["--data", options.data]
    if options.data_dir:
        flags += ["--data-dir", str(options.data_dir)]
    if options.train_limit is not None:
        flags += ["--train-limit", str(options.train_limit)]
    if options.threads:
        flags += ["--threads", str(options.threads)]
    if options.log:
        flags += ["--log", options.log]
    return flags


def make_cells(specs: list[tuple[str, str, dict]], augments: list[bool], losses: list[str], out: Path,
               options: RunOptions) -> list[Cell]:
    """specs: (file, model name, resolved settings) in table order; each cell gets them with its augment and loss."""
    cells = []
    for spec_file, model, hparams in specs:
        for _, augment, loss in COLUMNS:
            if augment in augments and loss in losses:
                name = f"{model}-{'aug' if augment else 'noaug'}-{loss}"
                cells.append(Cell(spec_file, model, augment, loss, out / name, {**hparams, "augment": augment, "loss": loss},
                                  options))
    return cells


def _claim(path: Path):
    """An exclusive lock on `path` without waiting, or None when another grid holds it."""
    import fcntl

    handle = open(path, "a+")
    try:
        fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        return handle
    except BlockingIOError:
        handle.close()
        return None


def _wait_for(path: Path) -> None:
    import fcntl

    with open(path, "a+") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)


KEEP = {"all": (), "best": ("last.pt",), "none": ("last.pt", "best.pt")}  # checkpoints removed once a cell is done


def finish_cell(cell: Cell, keep: str) -> None:
    """A finished cell's result file (grid --results), then the checkpoints --keep does not keep."""
    if cell.result_file is not None:
        write_result(cell.folder, cell.result_file)
    for name in KEEP[keep]:
        (cell.folder / name).unlink(missing_ok=True)


def run_cells(cells: list[Cell], jobs: int, out: Path, report, keep: str = "all") -> dict[str, str]:
    """Run the unfinished cells, `jobs` at a time, each in its own process; Ctrl-C stops them all and the queue.

    A cell another grid is running (same --out) is left to it; this grid waits for it at the end, so either grid's
    table is complete. Returns {cell name: error line} for the cells that failed.
    """
    log_dir, claims = out / "logs", out / CELL_LOCKS
    log_dir.mkdir(parents=True, exist_ok=True)
    claims.mkdir(parents=True, exist_ok=True)
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    failures = {cell.name: "damaged summary.json (delete the cell's folder to run it again)" for cell in cells if cell.damaged}
    todo = [cell for cell in cells if cell.summary is None and not cell.damaged]
    running: dict[str, tuple[Cell, subprocess.Popen, object, float]] = {}
    elsewhere: list[Cell] = []
    done = len(cells) - len(todo)

    def finished(cell: Cell, code: int, seconds: float) -> None:
        nonlocal done
        done += 1
        if code == 0 and cell.summary:
            finish_cell(cell, keep)
            report(f"[{done}/{len(cells)}] {cell.name}: test {100 * cell.summary['test_acc']:.2f}% ({seconds:.0f} s)")
            return
        lines = (log_dir / f"{cell.name}.log").read_text(errors="replace").strip().splitlines()
        failures[cell.name] = lines[-1] if lines else f"exit {code}"
        report(f"[{done}/{len(cells)}] {cell.name}: FAILED (exit {code}): {failures[cell.name]}")

    try:
        while todo or running:
            while todo and len(running) < jobs:
                cell = todo.pop(0)
                claim = _claim(claims / f"{cell.name}.lock")
                if claim is None:
                    elsewhere.append(cell)
                    continue
                if cell.summary is not None:  # another grid finished it meanwhile
                    claim.close()
                    done += 1
                    continue
                with open(log_dir / f"{cell.name}.log", "w") as log:
                    process = subprocess.Popen(cell.command(), stdout=log, stderr=subprocess.STDOUT, env=env,
                                               start_new_session=True)  # Ctrl-C reaches the grid, which stops each cell once
                running[cell.name] = (cell, process, claim, time.perf_counter())
            for name, (cell, process, claim, started) in list(running.items()):
                if process.poll() is not None:
                    del running[name]
                    claim.close()
                    finished(cell, process.returncode, time.perf_counter() - started)
            time.sleep(POLL_S)
        for cell in elsewhere:
            report(f"{cell.name}: being run by another grid on {out}; waiting for it")
            _wait_for(claims / f"{cell.name}.lock")
    except KeyboardInterrupt:
        _stop(running)
        raise GridInterrupted([c.name for c in cells if c.summary is not None],
                              [c.name for c in cells if c.summary is None]) from None
    return failures


def _stop(running: dict) -> None:
    """Ask every running cell to stop as Ctrl-C does (it saves its epoch), then kill what has not exited in time."""
    for _, process, _, _ in running.values():
        if process.poll() is None:
            process.send_signal(signal.SIGINT)
    deadline = time.monotonic() + STOP_GRACE_S
    for _, process, claim, _ in running.values():
        try:
            process.wait(timeout=max(0.1, deadline - time.monotonic()))
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
        claim.close()


class GridInterrupted(Exception):
    """Ctrl-C in a grid: which cells are finished and which are not (those resume on the next run)."""

    def __init__(self, finished: list[str], unfinished: list[str]):
        super().__init__("grid interrupted")
        self.finished, self.unfinished = finished, unfinished


def _machines(cells: list[Cell]) -> dict[str, int]:
    """How many of the finished cells ran on each kind of machine (known for cells with a result file)."""
    counts: dict[str, int] = {}
    for cell in cells:
        machine = (cell.summary or {}).get("machine")
        if isinstance(machine, dict):
            device = (cell.summary or {}).get("device", "cpu")
            label = f"{machine.get('cpu', machine.get('processor', '?'))} ({machine.get('cpu_class', '?')}), " \
                    f"{machine.get('threads', '?')} threads" if str(device).startswith("cpu") else str(device)
            counts[label] = counts.get(label, 0) + 1
    return counts


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
    machines = _machines(cells)
    if machines:
        md += ["", "Ran on: " + "; ".join(f"{label} ({count} cell{'s' * (count > 1)})" for label, count in machines.items())]
    text = io.StringIO()
    csv.writer(text, lineterminator="\n").writerows(rows)
    return "\n".join(md) + "\n", text.getvalue()


def write_table(cells: list[Cell], out: Path) -> str:
    markdown, comma_separated = table(cells)
    atomic_write(out / "table.md", markdown.encode())
    atomic_write(out / "table.csv", comma_separated.encode())
    return markdown


# --- cells shared by grids on several machines, through one Optuna study in a database ---

HEARTBEAT_S = 30  # a worker killed mid-cell stops beating; after the grace period its cell is handed out again
SHARED_POLL_S = 2.0


def _result_of(summary: dict) -> dict:
    """The part of a cell's summary.json another machine needs for its table (no confusion matrix, no paths)."""
    keep = ("name", "test_acc", "test_loss", "per_class_acc", "best_val_acc", "best_epoch", "epochs", "train_seconds",
            "params", "hparams", "device")
    return {key: summary[key] for key in keep if key in summary}


def _cell_states(study) -> dict[str, tuple[str, dict | None]]:
    """cell name -> (state of its newest trial, its result if complete); a complete result wins over later attempts."""
    states: dict[str, tuple[str, dict | None]] = {}
    for trial in study.get_trials(deepcopy=False):
        name = trial.params.get("cell")
        if name is None or states.get(name, ("",))[0] == "COMPLETE":
            continue
        states[name] = (trial.state.name, trial.user_attrs.get("result"))
    return states


def open_shared(storage: str, name: str, cells: list[Cell]):
    """The grid's study: created by the first worker, joined by the others; one grid point per cell."""
    import optuna

    from .storage import create_or_join

    optuna.logging.set_verbosity(optuna.logging.ERROR)
    sampler = optuna.samplers.GridSampler({"cell": [cell.name for cell in cells]}, seed=0)
    return create_or_join(storage, "the grid's study", study_name=name, sampler=sampler, direction="maximize",
                          make_storage=lambda: optuna.storages.RDBStorage(storage, heartbeat_interval=HEARTBEAT_S,
                                                                          grace_period=4 * HEARTBEAT_S))


class CellFailed(Exception):
    """A shared cell's run did not finish; its trial is marked failed, so a later grid asks for it again."""


def run_shared(cells: list[Cell], study, out: Path, report, keep: str = "all") -> dict[str, str]:
    """Take cells nobody has taken from the shared study, one at a time, until every cell is done everywhere.

    The first pass is Optuna's GridSampler (trial k gets cell k, so workers never collide); a cell that failed or
    whose worker died is asked for again by name. Results go into the study, so every worker's table is complete.
    """
    import warnings

    import optuna

    by_name = {cell.name: cell for cell in cells}
    tried: set[str] = set()
    failures: dict[str, str] = {}

    def objective(trial) -> float:  # one cell; Optuna records it as the trial's value and result
        name = trial.suggest_categorical("cell", list(by_name))
        tried.add(name)
        cell = by_name[name]
        if cell.summary is None:
            failures.update(run_cells([cell], 1, out, report, keep))
        if cell.summary is None:
            raise CellFailed(name)
        trial.set_user_attr("result", _result_of(cell.summary))
        return cell.summary["test_acc"]

    waited = False
    try:
        while True:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")  # heartbeats are marked experimental; they work as documented
                optuna.storages.fail_stale_trials(study)
            states = _cell_states(study)
            todo = [n for n in by_name if states.get(n, ("",))[0] not in ("COMPLETE", "RUNNING") and n not in tried]
            if not todo:
                if not any(state == "RUNNING" for state, _ in states.values()):
                    break
                if not waited:
                    report("waiting for the cells other workers are running")
                    waited = True
                time.sleep(SHARED_POLL_S)
                continue
            if len(study.trials) >= len(cells):  # the grid's first pass is handed out: ask for a missing cell by name
                study.enqueue_trial({"cell": todo[0]})
            study.optimize(objective, n_trials=1, catch=(CellFailed,))
    except KeyboardInterrupt:
        raise GridInterrupted([c.name for c in cells if c.summary is not None],
                              [c.name for c in cells if c.summary is None]) from None
    for name, (state, result) in _cell_states(study).items():
        if name in by_name and by_name[name].summary is None and state == "COMPLETE":
            by_name[name].remote = result  # run on another machine: its figures come from the study
    return failures
