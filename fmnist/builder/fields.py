"""Converters for the values a layer takes, shared by the compact form and the mapping form."""
from __future__ import annotations

import math
import re


class LayerProblem(Exception):
    """A problem inside one layer; the spec loader adds the file, line and layer index."""


_INT = re.compile(r"[+-]?\d{1,30}")  # more digits than any real size; Python refuses int() of 4,300+ digits anyway
MAX_INTEGER = 1 << 20  # any size, stride or count past this is a typo; torch would overflow int64 further on


def integer(value, what: str, minimum: int = 1, maximum: int = MAX_INTEGER) -> int:
    if isinstance(value, str) and value.strip().lstrip("+").isdigit() and len(value.strip()) > 30:
        raise LayerProblem(f"absurd size: {what} of {len(value.strip())} digits is over the limit of {maximum:,}")
    if isinstance(value, str) and _INT.fullmatch(value.strip()):
        value = int(value)
    if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
        rule = "a positive integer" if minimum == 1 else f"an integer >= {minimum}"
        shown = value if not isinstance(value, str) or len(value) <= 40 else value[:40] + "..."
        raise LayerProblem(f"{what} must be {rule}, got {shown!r}")
    if value > maximum:
        raise LayerProblem(f"absurd size: {what} {value:,} is over the limit of {maximum:,}")
    return value


def number(value, what: str) -> float:
    try:
        result = float(value) if not isinstance(value, bool) else math.nan
    except (TypeError, ValueError):
        result = math.nan
    if not math.isfinite(result):
        raise LayerProblem(f"{what} must be a number, got {value!r}")
    return result


def probability(value, what: str = "dropout p") -> float:
    p = number(value, what)
    if not 0.0 <= p < 1.0:
        raise LayerProblem(f"{what} must be in [0, 1), got {value!r}")
    return p


def boolean(value, what: str) -> bool:
    text = str(value).strip().lower()
    if isinstance(value, bool) or text in ("true", "false", "yes", "no", "1", "0"):
        return value if isinstance(value, bool) else text in ("true", "yes", "1")
    raise LayerProblem(f"{what} must be true or false, got {value!r}")


def choice(value, what: str, options: tuple[str, ...]) -> str:
    text = str(value).strip().lower()
    if text not in options:
        raise LayerProblem(f"{what} must be one of {', '.join(options)}, got {value!r}")
    return text


def dims(value, what: str, count: int, usage: str) -> tuple[int, ...]:
    """'3x3x32' or [3, 3, 32] -> (3, 3, 32); exactly `count` positive integers."""
    if isinstance(value, (list, tuple)):
        parts = list(value)
    elif isinstance(value, int) and not isinstance(value, bool):
        parts = [value]
    else:
        parts = re.split(r"\s*[x×]\s*", str(value).strip().lower())
    if len(parts) != count:
        raise LayerProblem(f"{what} has {len(parts)} part(s), expected {usage}")
    return tuple(integer(part, what) for part in parts)


def pair(value, what: str) -> tuple[int, int]:
    """A square size given once (3) or written out (3x3, [3, 3])."""
    if isinstance(value, (list, tuple)) or "x" in str(value).lower() or "×" in str(value):
        return dims(value, what, 2, f"{what} as N or NxN")
    size = integer(value, what)
    return size, size
