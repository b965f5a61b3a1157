"""Durations as people write them ('90s', '60m', '1.5h'; a bare number is minutes, as search's --minutes), read into
minutes: a time budget's one spelling, for the spec's `train:`, the flags and config.yaml alike."""
from __future__ import annotations

import math
import re

MAX_MINUTES = 7 * 24 * 60  # a week; a longer budget is a typo
UNITS = {"s": 1 / 60, "sec": 1 / 60, "m": 1.0, "min": 1.0, "h": 60.0}
PATTERN = r"^\s*[0-9]*\.?[0-9]+(e[-+]?[0-9]+)?\s*(s|sec|m|min|h)?\s*$"  # what the JSON Schema accepts as a string


def read_minutes(value: float | int | str) -> float:
    """'60m' -> 60.0, '90s' -> 1.5, '1.5h' -> 90.0, 45 -> 45.0; ValueError saying what is wrong otherwise."""
    if isinstance(value, bool):
        raise ValueError("must be a duration such as 90s, 60m or 1.5h")
    if isinstance(value, str):
        match = re.fullmatch(r"\s*([0-9]*\.?[0-9]+(?:e[-+]?[0-9]+)?)\s*([a-z]*)\s*", value.lower())
        if match is None or match.group(2) not in ("", *UNITS):
            raise ValueError(f"'{value}' is not a duration: write it as 90s, 60m or 1.5h (a bare number is minutes)")
        minutes = float(match.group(1)) * UNITS.get(match.group(2), 1.0)
    else:
        minutes = float(value)
    if not math.isfinite(minutes) or not 0 < minutes <= MAX_MINUTES:
        raise ValueError(f"must be more than 0 and at most {MAX_MINUTES:,} minutes (a week)")
    return minutes


def minutes_text(minutes: float) -> str:
    """60.0 -> '60 min', 1.5 -> '90 s', 90.0 -> '90 min'; how a budget is shown back."""
    if minutes < 1:
        return f"{minutes * 60:.3g} s"
    return f"{minutes:.3g} min"
