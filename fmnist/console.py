"""Where output goes: a rich console on stdout that stays readable (and wide enough) when piped."""
from __future__ import annotations

import os
import sys

from rich.console import Console


def make_console() -> Console:
    """A console for tables; 120 columns when stdout is not a terminal, so pipes and logs don't wrap."""
    terminal = sys.stdout.isatty()
    # markup off: spec text like '[conv 1x1x8]' must print as written, not as rich markup
    return Console(file=sys.stdout, width=None if terminal else 120, highlight=False, soft_wrap=True, markup=False)


PLAIN_EVERY_S = 30.0  # seconds between plain progress lines where there is no terminal (epochs, decoding)
PLAIN_EVERY_VARIABLE = "FMNIST_PROGRESS_EVERY_S"  # sets that interval (a CI job that wants more or fewer lines)


def plain_interval() -> float:
    """$FMNIST_PROGRESS_EVERY_S where it is a number of seconds above 0, else PLAIN_EVERY_S."""
    try:
        seconds = float(os.environ.get(PLAIN_EVERY_VARIABLE, PLAIN_EVERY_S))
    except ValueError:
        return PLAIN_EVERY_S
    return seconds if 0 < seconds < float("inf") else PLAIN_EVERY_S
