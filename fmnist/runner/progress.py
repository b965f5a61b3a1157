"""A progress bar per epoch on a terminal; nothing per step when output goes to a file or pipe (epoch lines only)."""
from __future__ import annotations

from contextlib import contextmanager

from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn, TimeRemainingColumn


@contextmanager
def epoch_progress(console: Console, epoch: int, epochs: int, steps: int, label: str = ""):
    """Yields on_progress(step, running_loss, images_per_second), or None when the console is not a terminal;
    `label` goes in front (a search's trial number)."""
    if not console.is_terminal:
        yield None
        return
    columns = (
        TextColumn(f"{label}epoch {epoch}/{epochs}"), BarColumn(), MofNCompleteColumn(),
        TextColumn("loss {task.fields[loss]:.4f}"), TextColumn("{task.fields[speed]:,.0f} img/s"),
        TimeElapsedColumn(), TimeRemainingColumn(),
    )
    with Progress(*columns, console=console, transient=True) as progress:
        task = progress.add_task("train", total=steps, loss=float("nan"), speed=0.0)
        yield lambda step, loss, speed: progress.update(task, completed=step, loss=loss, speed=speed)
