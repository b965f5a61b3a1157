"""Settings read from environment variables (timeouts a deployment tunes): a value that is not one is one line."""
from __future__ import annotations

import os

from .errors import UsageError


def seconds_from_environment(name: str, default: int, most: int) -> int:
    """Whole seconds from 1 to `most` in the environment variable `name`, else `default`."""
    text = os.environ.get(name, "").strip()
    if not text:
        return default
    if not text.isdigit() or not 1 <= int(text) <= most:
        raise UsageError(f"{name}={text}: expected whole seconds from 1 to {most}")
    return int(text)
