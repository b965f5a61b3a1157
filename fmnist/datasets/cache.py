"""Decoded folder datasets, cached as uint8 arrays beside a manifest (files, sizes, times, their hash), so the
second run starts in seconds and a changed folder (a file added, removed, resized or touched) is decoded again."""
from __future__ import annotations

import hashlib
import json
import os
import tempfile
import time
from datetime import datetime
from pathlib import Path

import numpy as np

from ..atomic import atomic_write

FORMAT = 1
STALE_S = 3600  # a temporary file this old belongs to no live writer
MANIFEST = "manifest.json"


def cache_root() -> Path:
    """$FMNIST_CACHE, else $XDG_CACHE_HOME/fmnist, else ~/.cache/fmnist: never inside the user's image folder."""
    if os.environ.get("FMNIST_CACHE"):
        return Path(os.environ["FMNIST_CACHE"]).expanduser()
    base = Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache")
    return base / "fmnist"


def cache_dir(root: Path, conversion: dict) -> Path:
    """One folder per image folder and conversion (size, channels)."""
    key = hashlib.sha256(json.dumps([str(root), conversion], sort_keys=True).encode()).hexdigest()[:16]
    return cache_root() / "folders" / key


def peek(root: Path, conversion: dict, fingerprint: str) -> dict | None:
    """The manifest alone when it matches the folder as it is now (the shape, without loading the arrays)."""
    try:
        manifest = json.loads((cache_dir(root, conversion) / MANIFEST).read_text())
    except (OSError, ValueError):
        return None
    matches = isinstance(manifest, dict) and \
        (manifest.get("format"), manifest.get("fingerprint"), manifest.get("conversion")) == (FORMAT, fingerprint, conversion)
    return manifest if matches else None


def load(root: Path, conversion: dict, fingerprint: str) -> tuple[np.ndarray, np.ndarray, dict] | None:
    """(images, labels, manifest) when the cache holds this folder as it is now, else None."""
    manifest = peek(root, conversion, fingerprint)
    if manifest is None:
        return None
    folder = cache_dir(root, conversion)
    try:
        images = np.load(folder / "images.npy", allow_pickle=False)
        labels = np.load(folder / "labels.npy", allow_pickle=False)
    except (OSError, ValueError):  # missing, damaged or half-written: decode again
        return None
    if images.dtype != np.uint8 or list(images.shape) != manifest.get("shape") or labels.shape != (len(images),):
        return None
    return images, labels, manifest


def save(root: Path, conversion: dict, scan, images: np.ndarray, labels: np.ndarray) -> Path:
    """Arrays first, the manifest last: a cache without a manifest that matches is never used. Raises OSError."""
    folder = cache_dir(root, conversion)
    folder.mkdir(parents=True, exist_ok=True)
    for stale in folder.glob(".*.tmp"):  # left by a writer that was killed (a live one's is younger)
        if time.time() - stale.stat().st_mtime > STALE_S:
            stale.unlink(missing_ok=True)
    (folder / MANIFEST).unlink(missing_ok=True)
    for name, array in (("images.npy", images), ("labels.npy", labels)):
        handle, temporary = tempfile.mkstemp(dir=folder, prefix=f".{name}.", suffix=".tmp")  # two writers never share one
        try:
            with os.fdopen(handle, "wb") as stream:
                np.save(stream, array, allow_pickle=False)
            os.replace(temporary, folder / name)
        finally:
            Path(temporary).unlink(missing_ok=True)
    manifest = {"format": FORMAT, "root": str(root), "conversion": conversion, "fingerprint": scan.fingerprint(),
                "shape": list(images.shape), "class_names": list(scan.class_names), "splits": list(scan.splits),
                "files": [[f.path, f.size, f.mtime_ns, f.label, f.split] for f in scan.files],
                "created": datetime.now().isoformat(timespec="seconds")}
    atomic_write(folder / MANIFEST, (json.dumps(manifest) + "\n").encode())
    return folder
