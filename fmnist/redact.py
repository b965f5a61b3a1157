"""Credentials never leave the process: a database URL's password is masked wherever it is printed or written."""
from __future__ import annotations

import re

_PASSWORD = re.compile(r"(?P<head>[A-Za-z][A-Za-z0-9+.-]*://[^:/?#@\s]*):(?P<password>[^@/\s]*)@")
MASK = "***"


def masked(text: str) -> str:
    """'postgresql://me:secret@db/x' -> 'postgresql://me:***@db/x', anywhere inside `text`."""
    return _PASSWORD.sub(lambda m: f"{m.group('head')}:{MASK}@", str(text))
