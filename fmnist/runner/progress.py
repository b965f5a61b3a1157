"""A progress bar per epoch on a terminal; where output goes to a file or pipe (`make run`, a CI log, nohup), a
plain line now and then instead, as pip and Ultralytics do, so a long first epoch is never minutes of silence."""
from __future__ import annotations

import time
from contextlib import contextmanager

from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn, TimeRemainingColumn

from ..console import plain_interval

@contextmanager
def epoch_progress(console: Console, epoch: int, epochs: int | None, steps: int, label: str = ""):
    """Yields on_progress(step, running_loss, images_per_second): a bar on a terminal, else a plain line at most
    every plain_interval() seconds; `label` goes in front (a search's trial number); epochs None: a budgeted run's."""
    title = f"{label}epoch {epoch}" + (f"/{epochs}" if epochs is not None else "")
    if not console.is_terminal:
        yield _plain_lines(console, title, steps, plain_interval())
        return
    columns = (
        TextColumn(title), BarColumn(), MofNCompleteColumn(),
        TextColumn("loss {task.fields[loss]:.4f}"), TextColumn("{task.fields[speed]:,.0f} img/s"),
        TimeElapsedColumn(), TimeRemainingColumn(),
    )
    with Progress(*columns, console=console, transient=True) as progress:
        task = progress.add_task("train", total=steps, loss=float("nan"), speed=0.0)
        yield lambda step, loss, speed: progress.update(task, completed=step, loss=loss, speed=speed)


def _plain_lines(console: Console, title: str, steps: int, every: float):
    """on_progress for a console that is no terminal: 'epoch 1/10: step 120/391 (31%) loss 0.6123 2,410 img/s'."""
    last = [time.monotonic()]

    def on_progress(step: int, loss: float, speed: float) -> None:
        now = time.monotonic()
        if now - last[0] >= every:
            last[0] = now
            console.print(f"{title}: step {step}/{steps} ({100 * step / steps:.0f}%) loss {loss:.4f} {speed:,.0f} img/s")

    return on_progress
