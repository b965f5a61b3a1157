"""The command line this process was given, as the user typed it (secrets masked): what run folders and result files
record, so that a result says how to make it again."""
from __future__ import annotations

import shlex
import sys

_words: list[str] | None = None  # set by the CLI's entry point (in tests main(args) is called without sys.argv)


def remember(words: list[str]) -> None:
    global _words
    _words = list(words)


def words() -> list[str]:
    """The words after `fmnist`, unmasked: what a launcher passes on to the processes it starts."""
    return list(sys.argv[1:] if _words is None else _words)


def typed_command() -> str:
    """'fmnist grid specs/cnn_2.yaml --storage postgresql://me:***@db/x ...', quoted as a shell reads it, so a word with
    spaces (a --set value) is pasted back whole."""
    from .redact import masked

    return masked(shlex.join(["fmnist", *(sys.argv[1:] if _words is None else _words)]))
