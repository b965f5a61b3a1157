"""Ctrl-C, `kill PID` and a closed terminal all stop fmnist the same way, and none of them can be lost.

Python raises a signal's KeyboardInterrupt wherever the main thread happens to be; when that is a garbage-collection
callback, a `__del__` or an atexit function, Python prints "Exception ignored" and carries on as if nothing had
happened. So the signal is also recorded here, and the loops that run for long (epochs, trials, grid cells) call
`check()` at their safe points, which raises it again.
"""
from __future__ import annotations

import signal
import sys

STOPPING = tuple(getattr(signal, name) for name in ("SIGINT", "SIGTERM", "SIGHUP") if hasattr(signal, name))
_received: list[int] = []


def _on_signal(number: int, _frame) -> None:
    _received.append(number)
    raise KeyboardInterrupt  # the epoch under way is saved on the way out, as for Ctrl-C


def install() -> dict:
    """Route SIGINT, SIGTERM and SIGHUP here; returns the handlers they had (for restore()). In a thread other than
    the main one (the Python API in a worker) nothing changes and {} comes back."""
    _received.clear()
    try:
        previous: dict = {number: signal.signal(number, _on_signal) for number in STOPPING}
    except ValueError:
        return {}
    previous[UNRAISABLE] = sys.unraisablehook
    sys.unraisablehook = _quiet_if_interrupt
    return previous


UNRAISABLE = "unraisablehook"  # install()'s record of the caller's sys.unraisablehook, beside the signal handlers


def restore(previous: dict) -> None:
    """The signal handlers and sys.unraisablehook exactly as they were before install()."""
    for number, handler in previous.items():
        if number != UNRAISABLE:
            signal.signal(number, handler)
    if UNRAISABLE in previous:
        sys.unraisablehook = previous[UNRAISABLE]


def ignore_from_now() -> None:
    """The work is done and its exit code decided: a signal during interpreter shutdown (atexit) changes nothing."""
    for number in STOPPING:
        try:
            signal.signal(number, signal.SIG_IGN)
        except ValueError:
            return


def received() -> bool:
    """Whether a stopping signal arrived since install()."""
    return bool(_received)


def check() -> None:
    """Raise KeyboardInterrupt if a signal arrived, even one whose first raise Python swallowed."""
    if _received:
        raise KeyboardInterrupt


def _quiet_if_interrupt(unraisable) -> None:
    """A signal's KeyboardInterrupt that Python cannot raise (in a GC callback, __del__): recorded, not printed."""
    if isinstance(unraisable.exc_value, KeyboardInterrupt):
        return
    sys.__unraisablehook__(unraisable)
