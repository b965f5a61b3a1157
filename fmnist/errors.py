"""The one error type for everything a user can get wrong, printed by the CLI as one line."""
from __future__ import annotations

from dataclasses import dataclass, field

from . import interrupts


@dataclass(eq=False)
class FmnistError(Exception):
    """A user-facing problem: where it is (file, line, layer), the text at fault, and what was expected."""

    message: str
    file: str | None = None
    line: int | None = None
    layer: int | str | None = None  # the layer's index: 3, or '5.2' for the 2nd layer inside layer 5
    text: str | None = None
    more: list["FmnistError"] = field(default_factory=list)  # further problems found in the same pass
    exit_code = 2  # what the CLI exits with (a class attribute, not a field)
    quiet = False  # said by another process (rank 0 of a data-parallel run): this one exits with the code, silently

    def __str__(self) -> str:
        where = ":".join(str(part) for part in (self.file, self.line) if part is not None)
        parts = [where] if where else []
        if self.layer is not None:
            parts.append(f"layer {self.layer}" + (f" '{self.text}'" if self.text is not None else ""))
        elif self.text is not None:
            parts.append(f"'{self.text}'")
        return ": ".join(parts + [self.message])

    def all(self) -> list["FmnistError"]:
        """This problem and the others found with it, one line each."""
        return [self, *self.more]


class SpecError(FmnistError):
    """The spec file is not valid: the CLI exits 2."""


class UsageError(FmnistError):
    """A bad option, file, device or dataset: the CLI exits 2."""


class ExpectationError(FmnistError):
    """The spec builds, but a figure it documents in `expect` does not come out: the CLI exits 1."""

    exit_code = 1


class StorageError(FmnistError):
    """A file could not be written (disk full, read-only, no such folder); what was written before is kept: exit 1."""

    exit_code = 1


class TrainingError(FmnistError):
    """Training could not go on (say, the loss became NaN); finished work is kept: the CLI exits 1."""

    exit_code = 1


def one_line(error: BaseException, limit: int = 160) -> str:
    """An exception's message on one line, cut to `limit` characters; its type's name when it says nothing."""
    return " ".join(str(error).split())[:limit] or type(error).__name__


def did_you_mean(word: str, choices) -> str:
    """' (did you mean 'conv'?)' when a close match exists, else ''."""
    import difflib

    close = difflib.get_close_matches(str(word), list(choices), n=1, cutoff=0.6)
    return f" (did you mean '{close[0]}'?)" if close else ""


def raised_by_interrupt(error: BaseException | None) -> bool:
    """An error that a Ctrl-C (or SIGTERM) caused on its way through a C extension (torch, matplotlib), which
    re-raise it as RuntimeError or SystemError: it is an interruption, not a bug. Any error after such a signal
    arrived counts too: matplotlib may swallow the KeyboardInterrupt and fail on its half-drawn figure instead."""
    if interrupts.received():
        return True
    seen = set()
    while error is not None and id(error) not in seen:
        if isinstance(error, KeyboardInterrupt):
            return True
        seen.add(id(error))
        error = error.__cause__ or error.__context__
    return False
