"""Where output goes: a rich console on stdout that stays readable (and wide enough) when piped."""
from __future__ import annotations

import sys

from rich.console import Console


def make_console() -> Console:
    """A console for tables; 120 columns when stdout is not a terminal, so pipes and logs don't wrap."""
    terminal = sys.stdout.isatty()
    # markup off: spec text like '[conv 1x1x8]' must print as written, not as rich markup
    return Console(file=sys.stdout, width=None if terminal else 120, highlight=False, soft_wrap=True, markup=False)
