"""Credentials never leave the process: a database URL's password is masked wherever it is printed or written.

A URL given on the command line is parsed as SQLAlchemy parses it (a password may hold '/', '?' or '#'; it may also
come as `?password=` in the query), and its password is remembered, so every later mention of it inside a URL is
masked: in an error line, the printed storage line, config.yaml's command. Only inside URLs: a password that is also
an ordinary word ('fmnist') leaves the rest of a line alone. A URL nobody registered (in a driver's message) is
masked by its shape.
"""
from __future__ import annotations

import re
from urllib.parse import quote, unquote

_PASSWORD = re.compile(r"(?P<head>[A-Za-z][A-Za-z0-9+.-]*://[^:/?#@\s]*):(?P<password>[^@\s]*)@")
_URL = re.compile(r"[A-Za-z][A-Za-z0-9+.-]*://\S+")  # a URL-shaped token, where a remembered password is looked for
_QUERY_PASSWORD = re.compile(r"(?P<head>[?&]password=)[^&\s'\"]*?(?=[&\s'\"]|[:,;.)]\s|[:,;.)]?$)", re.IGNORECASE)
MASK = "***"
_secrets: set[str] = set()
MIN_SECRET = 4  # a shorter password is masked only by the URL's shape: replacing 'ab' in a URL would garble its host


def remember(url: str | None) -> None:
    """Mask this URL's password (from user:password@ or ?password=) from here on, in every form it may be shown."""
    if not url:
        return
    try:
        from sqlalchemy.engine import make_url

        parsed = make_url(url)
        found = [parsed.password, *(value for key, value in parsed.query.items() if key.lower() == "password")]
    except Exception:  # not a URL SQLAlchemy reads: the shape-based masking still applies
        return
    for password in found:
        for value in ([password] if isinstance(password, str) else list(password or ())):
            if len(value) >= MIN_SECRET:
                _secrets.update({value, quote(value, safe=""), unquote(value)})


def masked(text: object) -> str:
    """'postgresql://me:secret@db/x' -> 'postgresql://me:***@db/x', anywhere inside `text`."""
    text = _URL.sub(lambda m: _without_secrets(m.group(0)), str(text))
    text = _PASSWORD.sub(lambda m: f"{m.group('head')}:{MASK}@", text)
    return _QUERY_PASSWORD.sub(lambda m: f"{m.group('head')}{MASK}", text)


def _without_secrets(url: str) -> str:
    """A URL with every remembered password in it masked, the longest first (one may contain another)."""
    for secret in sorted(_secrets, key=len, reverse=True):
        url = url.replace(secret, MASK)
    return url
