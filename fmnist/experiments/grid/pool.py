"""Running a grid's cells on this machine: N processes at a time, each cell claimed before it runs (so two grids on
one folder share the work), Ctrl-C stopping them all with their epochs saved, checkpoints thinned when a cell is done."""
from __future__ import annotations

import os
import signal
import subprocess
import time
from pathlib import Path

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
        while todo or running or elsewhere:
            if not todo and not running:  # only cells another process holds are left: wait for each, then look again
                for cell in elsewhere:
                    report(f"{cell.name}: being run by another grid on {out}; waiting for it")
                    wait_for(claims / f"{cell.name}.lock").close()
                # a holder that stopped before the cell was done (a grid stopped, a cell outliving its grid): run it here
                done += sum(cell.summary is not None or cell.damaged for cell in elsewhere)
                todo, elsewhere = [cell for cell in elsewhere if cell.summary is None and not cell.damaged], []
                continue
            interrupts.check()  # a signal swallowed where it landed still stops the grid
            while todo and len(running) < jobs:
                cell = todo.pop(0)
                held = claim(claims / f"{cell.name}.lock")
                if held is None:
                    elsewhere.append(cell)
                    continue
                if cell.summary is not None:  # another grid finished it meanwhile
                    held.close()
                    done += 1
                    continue
                with open(log_dir / f"{cell.name}.log", "w") as log:
                    # its own session: Ctrl-C reaches the grid, which stops each cell once; the claim goes with the
                    # cell, so a cell outliving its grid is still claimed and a second grid waits for it
                    process = subprocess.Popen(cell.command(), stdout=log, stderr=subprocess.STDOUT, env=env,
                                               start_new_session=True, pass_fds=(held.fileno(),),
                                               preexec_fn=_stop_with_parent(os.getpid()))
                running[cell.name] = (cell, process, held, time.perf_counter())
            for name, (cell, process, held, started) in list(running.items()):
                if process.poll() is not None:
                    del running[name]
                    held.close()
                    finished(cell, process.returncode, time.perf_counter() - started)
            time.sleep(POLL_S)
    except KeyboardInterrupt:
        _stop(running)
        raise GridInterrupted([c.name for c in cells if c.summary is not None],
                              [c.name for c in cells if c.summary is None]) from None
    return failures


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


def _stop(running: dict) -> None:
    """Ask every running cell to stop as Ctrl-C does (it saves its epoch), then kill what has not exited in time."""
    for _, process, _, _ in running.values():
        if process.poll() is None:
            process.send_signal(signal.SIGINT)
    deadline = time.monotonic() + STOP_GRACE_S
    for _, process, held, _ in running.values():
        try:
            process.wait(timeout=max(0.1, deadline - time.monotonic()))
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
        held.close()


class GridInterrupted(Exception):
    """Ctrl-C in a grid: which cells are finished and which are not (those resume on the next run)."""

    def __init__(self, finished: list[str], unfinished: list[str]):
        super().__init__("grid interrupted")
        self.finished, self.unfinished = finished, unfinished
