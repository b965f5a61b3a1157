"""Running a grid's cells on this machine: N processes at a time, each cell claimed before it runs (so two grids on
one folder share the work), Ctrl-C stopping them all with their epochs saved, checkpoints thinned when a cell is done."""
from __future__ import annotations

import os
import signal
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path
from typing import IO

from ... import choices, interrupts
from ...invocation import typed_command
from ..claims import claim, wait_for
from ..results import write_result
from .cells import CELL_LOCKS, Cell

STOP_GRACE_S = 60  # after Ctrl-C a cell gets this long to save its epoch and exit before it is killed
POLL_S = 0.2


# the checkpoints removed once a cell is done, per --keep choice
KEEP = dict(zip(choices.KEEP, ((), ("last.pt",), ("last.pt", "best.pt")), strict=True))


def finish_cell(cell: Cell, keep: str) -> None:
    """A finished cell's result file (grid --results), then the checkpoints --keep does not keep."""
    if cell.result_file is not None:  # this process is the grid: the result records the grid command the user typed
        write_result(cell.folder, cell.result_file, command=typed_command())
    for name in KEEP[keep]:
        (cell.folder / name).unlink(missing_ok=True)


@dataclass
class Running:
    """A cell's process, the claim it holds, and when it started."""

    cell: Cell
    process: subprocess.Popen
    claim: IO
    started: float


class CellPool:
    """This machine's share of a grid: up to `jobs` cells at a time, each in its own process, each claimed first (so
    two grids on one --out share the work); Ctrl-C stops them all and the queue."""

    def __init__(self, cells: list[Cell], jobs: int, out: Path, report, keep: str = "all"):
        self.cells, self.jobs, self.report, self.keep = cells, jobs, report, keep
        self.log_dir, self.claims = out / "logs", out / CELL_LOCKS
        self.failures = {cell.name: "damaged summary.json (delete the cell's folder to run it again)"
                         for cell in cells if cell.is_damaged()}
        self.todo = [cell for cell in cells if cell.read_summary() is None and cell.name not in self.failures]
        self.running: dict[str, Running] = {}
        self.elsewhere: list[Cell] = []  # claimed by another grid on the same --out
        self.done = len(cells) - len(self.todo)

    def run(self) -> dict[str, str]:
        """Run the unfinished cells; a cell another grid holds is waited for at the end, so either grid's table is
        complete. Returns {cell name: error line} of the cells that failed."""
        self.log_dir.mkdir(parents=True, exist_ok=True)
        self.claims.mkdir(parents=True, exist_ok=True)
        try:
            while self.todo or self.running or self.elsewhere:
                if not self.todo and not self.running:
                    self.wait_for_elsewhere()
                    continue
                interrupts.check()  # a signal swallowed where it landed still stops the grid
                while self.todo and len(self.running) < self.jobs:
                    self.start(self.todo.pop(0))
                self.reap()
                time.sleep(POLL_S)
        except KeyboardInterrupt:
            _stop(list(self.running.values()))
            raise GridInterrupted.of(self.cells) from None
        return self.failures

    def start(self, cell: Cell) -> None:
        """Claim the cell and start its process, or leave it to the grid that holds it."""
        held = claim(self.claims / f"{cell.name}.lock")
        if held is None:
            self.elsewhere.append(cell)
            return
        if cell.read_summary() is not None:  # another grid finished it meanwhile
            held.close()
            self.done += 1
            return
        begun = cell.has_begun()
        if not begun:
            cell.write_spec()
        with open(self.log_dir / f"{cell.name}.log", "w") as log:
            # its own session: Ctrl-C reaches the grid, which stops each cell once; the claim goes with the cell, so a
            # cell outliving its grid is still claimed and a second grid waits for it
            process = subprocess.Popen(cell.command(begun), stdout=log, stderr=subprocess.STDOUT,
                                       env={**os.environ, "PYTHONUNBUFFERED": "1"}, start_new_session=True,
                                       pass_fds=(held.fileno(),), preexec_fn=_stop_with_parent(os.getpid()))
        self.running[cell.name] = Running(cell, process, held, time.perf_counter())

    def reap(self) -> None:
        """The cells whose processes have ended: finished (result file, checkpoints thinned) or failed (its log's
        last line)."""
        for name, entry in list(self.running.items()):
            if entry.process.poll() is None:
                continue
            del self.running[name]
            entry.claim.close()
            self.done += 1
            code, seconds, summary = entry.process.returncode, time.perf_counter() - entry.started, entry.cell.read_summary()
            progress = f"[{self.done}/{len(self.cells)}] {name}"
            if code == 0 and summary:
                finish_cell(entry.cell, self.keep)
                self.report(f"{progress}: test {100 * summary['test_acc']:.2f}% ({seconds:.0f} s)")
                continue
            lines = (self.log_dir / f"{name}.log").read_text(errors="replace").strip().splitlines()
            self.failures[name] = lines[-1] if lines else f"exit {code}"
            self.report(f"{progress}: FAILED (exit {code}): {self.failures[name]}")

    def wait_for_elsewhere(self) -> None:
        """Only cells another process holds are left: wait for each; one its holder left unfinished (a grid stopped,
        a cell outliving its grid) is run here."""
        for cell in self.elsewhere:
            self.report(f"{cell.name}: being run by another grid on {self.claims.parent}; waiting for it")
            wait_for(self.claims / f"{cell.name}.lock").close()
        left = [cell for cell in self.elsewhere if cell.read_summary() is None and not cell.is_damaged()]
        self.done += len(self.elsewhere) - len(left)
        self.todo, self.elsewhere = left, []


def run_cells(cells: list[Cell], jobs: int, out: Path, report, keep: str = "all") -> dict[str, str]:
    """Run the unfinished cells, `jobs` at a time (CellPool); returns {cell name: error line} of those that failed."""
    return CellPool(cells, jobs, out, report, keep).run()


PR_SET_PDEATHSIG = 1  # prctl(2): the signal a process gets when its parent dies


def _stop_with_parent(grid: int):
    """Run in the cell before it starts: on Linux, the grid's death (even by kill -9) sends the cell SIGTERM, which
    saves its epoch and stops it, rather than leaving it training on unowned."""
    def arm() -> None:
        try:
            import ctypes

            ctypes.CDLL(None, use_errno=True).prctl(PR_SET_PDEATHSIG, signal.SIGTERM)
        except (OSError, AttributeError):  # not Linux: the cell keeps its claim, so a new grid waits for it
            return
        if os.getppid() != grid:  # the grid died before the line above
            os.kill(os.getpid(), signal.SIGTERM)
    return arm


def _stop(running: list[Running]) -> None:
    """Ask every running cell to stop as Ctrl-C does (it saves its epoch), then kill what has not exited in time."""
    for entry in running:
        if entry.process.poll() is None:
            entry.process.send_signal(signal.SIGINT)
    deadline = time.monotonic() + STOP_GRACE_S
    for entry in running:
        try:
            entry.process.wait(timeout=max(0.1, deadline - time.monotonic()))
        except subprocess.TimeoutExpired:
            entry.process.kill()
            entry.process.wait()
        entry.claim.close()


class GridInterrupted(Exception):
    """Ctrl-C in a grid: which cells are finished and which are not (those resume on the next run)."""

    def __init__(self, finished: list[str], unfinished: list[str]):
        super().__init__("grid interrupted")
        self.finished, self.unfinished = finished, unfinished

    @classmethod
    def of(cls, cells: list[Cell]) -> "GridInterrupted":
        results = {cell.name: cell.read_summary() for cell in cells}
        return cls([name for name, result in results.items() if result is not None],
                   [name for name, result in results.items() if result is None])
