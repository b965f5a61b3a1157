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


MAX_NUMBER = 1e6  # a rate, scale, slope or eps past this is a typo; 1e308 would overflow float32 in the first step


def number(value, what: str) -> float:
    try:
        result = float(value) if not isinstance(value, bool) else math.nan
    except (TypeError, ValueError, OverflowError):
        result = math.nan
    if not math.isfinite(result):
        raise LayerProblem(f"{what} must be a number, got {value!r}")
    if abs(result) > MAX_NUMBER:
        raise LayerProblem(f"absurd value: {what} {value} is beyond ±{MAX_NUMBER:,.0f}")
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


def pair(value, what: str, minimum: int = 1) -> tuple[int, int]:
    """A square size given once (3) or written out per axis (1x7, [1, 7], (0, 3) or 0,3)."""
    text = str(value).strip()
    if isinstance(value, str) and text[:1] in "([" and text[-1:] in ")]":
        text = text[1:-1]
    if isinstance(value, (list, tuple)):
        parts = list(value)
    else:
        parts = [part for part in re.split(r"\s*[x×,]\s*", text.lower())]
    if len(parts) == 1:
        size = integer(parts[0], what, minimum=minimum)
        return size, size
    if len(parts) != 2:
        raise LayerProblem(f"{what} has {len(parts)} parts, expected N, or HxW for height and width (e.g. 1x7)")
    return integer(parts[0], what, minimum=minimum), integer(parts[1], what, minimum=minimum)


def padding(value, what: str) -> tuple[int, int] | str:
    """A conv's pad: N, HxW, or the word 'same'."""
    if str(value).strip().lower() == "same":
        return "same"
    try:
        return pair(value, what, minimum=0)
    except LayerProblem:
        raise LayerProblem(f"{what} must be an integer >= 0, HxW (e.g. 0x3), or 'same', got {value!r}") from None


def positive(value, what: str) -> float:
    """A number above 0 (a norm's eps)."""
    result = number(value, what)
    if result <= 0:
        raise LayerProblem(f"{what} must be a number above 0, got {value!r}")
    return result


def fraction(value, what: str) -> float:
    """A number from 0 to 1 (a norm's momentum)."""
    result = number(value, what)
    if not 0.0 <= result <= 1.0:
        raise LayerProblem(f"{what} must be in [0, 1], got {value!r}")
    return result
