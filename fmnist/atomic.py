"""Files written whole or not at all: what a run folder, a result file and the folder-image cache all write with."""
from __future__ import annotations

import os
import tempfile
from pathlib import Path

from .errors import StorageError


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


FILE_MODE = 0o666 & ~_umask()  # what open() would give: mkstemp's 0600 would hide run files from the user's group


def atomic_write(path: Path, data: bytes) -> None:
    """Write to a temporary file beside `path`, flush it to disk, then rename: a crash leaves the old file or the new one.

    Any OSError (disk full, read-only folder, no such folder) becomes one StorageError line; the old file is kept.
    """
    temporary = None
    try:
        handle, temporary = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
        with os.fdopen(handle, "wb") as stream:
            os.fchmod(stream.fileno(), FILE_MODE)
            stream.write(data)
            stream.flush()
            os.fsync(stream.fileno())
        os.replace(temporary, path)
    except OSError as error:
        if temporary:
            Path(temporary).unlink(missing_ok=True)
        raise StorageError(f"cannot write {path.name}: {error.strerror or error}", str(path.parent)) from None
    except BaseException:
        if temporary:
            Path(temporary).unlink(missing_ok=True)
        raise
