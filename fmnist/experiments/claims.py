"""Claims on shared work (a grid's cell, a search's retrain): an exclusive lock on a file, which the kernel drops when
its holder's process ends, however it ends."""
from __future__ import annotations

from pathlib import Path


def claim(path: Path):
    """An exclusive lock on `path` without waiting (an open file: closing it lets go), or None when another holds it."""
    import fcntl  # here, not at the top: Windows has none, and only grids and searches claim work

    handle = open(path, "a+")
    try:
        fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        return handle
    except BlockingIOError:
        handle.close()
        return None


def wait_for(path: Path):
    """The lock on `path` once its holder lets go (an open file: closing it lets go)."""
    import fcntl

    handle = open(path, "a+")
    fcntl.flock(handle, fcntl.LOCK_EX)
    return handle
