"""Decoded folder datasets, cached as a memory-mapped uint8 (N, C, H, W) file beside a manifest (files, sizes, times,
their hash). Training reads the images by index from the map, so the page cache holds the pixels, not the process:
data larger than memory trains at the disk's speed, data that fits at memory's. A changed folder (a file added,
removed, resized or touched) is decoded again; an interrupted decode continues where it stopped.

Layout of a cache folder: images.npy and labels.npy, then manifest.json, written last: a cache without a manifest that
matches the folder is never read. While decoding: images.partial.npy, progress.json (what it is decoding) and
chunks.done (the ranges of images finished).
"""
from __future__ import annotations

import hashlib
import json
import os
import shutil
from datetime import datetime
from pathlib import Path

import numpy as np

from ..atomic import atomic_write
from ..errors import FmnistError, StorageError
from . import decoding
from .folder import FolderScan
from .memory import size_text

FORMAT = 2  # 1: arrays loaded whole into memory; 2: images mapped from images.npy
MANIFEST = "manifest.json"
PARTIAL, PROGRESS, DONE = "images.partial.npy", "progress.json", "chunks.done"


class DecodeInterrupted(FmnistError):
    """Ctrl-C (or SIGTERM) while a folder was decoded: what was finished is kept for the next run."""

    exit_code = 130


def cache_root() -> Path:
    """$FMNIST_CACHE, else $XDG_CACHE_HOME/fmnist, else ~/.cache/fmnist: never inside the user's image folder."""
    if os.environ.get("FMNIST_CACHE"):
        return Path(os.environ["FMNIST_CACHE"]).expanduser()
    base = Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache")
    return base / "fmnist"


def cache_dir(root: Path, conversion: dict) -> Path:
    """One folder per image folder and conversion (size, channels, stored size)."""
    key = hashlib.sha256(json.dumps([str(root), conversion], sort_keys=True).encode()).hexdigest()[:16]
    return cache_root() / "folders" / key


def peek(root: Path, conversion: dict, fingerprint: str) -> dict | None:
    """The manifest alone when it matches the folder as it is now (the shape, without reading the images)."""
    try:
        manifest = json.loads((cache_dir(root, conversion) / MANIFEST).read_text())
    except (OSError, ValueError):
        return None
    matches = isinstance(manifest, dict) and \
        (manifest.get("format"), manifest.get("fingerprint"), manifest.get("conversion")) == (FORMAT, fingerprint, conversion)
    return manifest if matches else None


def load(root: Path, conversion: dict, fingerprint: str) -> tuple[decoding.Layout, np.ndarray, dict] | None:
    """(where the images are in images.npy, labels, manifest) when the cache holds this folder as it is now, else
    None."""
    manifest = peek(root, conversion, fingerprint)
    if manifest is None:
        return None
    folder = cache_dir(root, conversion)
    shape = manifest.get("shape")
    if not (isinstance(shape, list) and len(shape) == 4 and all(type(n) is int and n >= 0 for n in shape)):
        return None
    layout = decoding.existing(folder / "images.npy", tuple(shape))
    try:
        labels = np.load(folder / "labels.npy", allow_pickle=False)
    except (OSError, ValueError):  # missing or damaged: decode again
        return None
    if layout is None or labels.shape != (layout.shape[0],):
        return None
    return layout, labels, manifest


def writable(folder: Path) -> str | None:
    """Why the cache cannot be written in `folder` (its parents made as needed), or None."""
    try:
        folder.mkdir(parents=True, exist_ok=True)
        probe = folder / f".probe-{os.getpid()}"
        probe.write_bytes(b"")
        probe.unlink()
    except OSError as error:
        return error.strerror or str(error)
    return None


def decode(root: Path, conversion: dict, scan: FolderScan, shape: tuple[int, int, int], progress=None) -> tuple[int, int]:
    """Decode the folder into its cache (continuing an interrupted decode of the same folder) and write the manifest
    last; returns (how many images an interrupted decode had finished before, how many processes decoded). Raises StorageError
    where the disk has no room or cannot be written, DecodeInterrupted on Ctrl-C (the finished chunks are kept)."""
    folder = cache_dir(root, conversion)
    full = (len(scan.files), *shape)
    what = {"format": FORMAT, "fingerprint": scan.fingerprint(), "conversion": conversion, "shape": list(full)}
    problem = writable(folder)
    if problem is not None:
        raise StorageError(f"cannot make the cache of decoded images in {folder}: {problem}; set $FMNIST_CACHE to a "
                           f"folder that can be written", str(root))
    layout = _continued(folder, what, full)
    if layout is None:
        for leftover in (PARTIAL, DONE, PROGRESS, MANIFEST):
            (folder / leftover).unlink(missing_ok=True)
        free, need = shutil.disk_usage(folder).free, int(np.prod(full))
        if free < need:
            raise StorageError(f"the decoded images need {size_text(need)} and {folder} has {size_text(free)} free; "
                               f"set $FMNIST_CACHE to a folder with room", str(root))
        try:
            layout = decoding.create(folder / PARTIAL, full)
        except OSError as error:
            raise StorageError(f"cannot make the cache of decoded images in {folder}: {error.strerror}; set "
                               f"$FMNIST_CACHE to a folder with room", str(root)) from None
        atomic_write(folder / PROGRESS, (json.dumps(what) + "\n").encode())
    kept = decoding.images_done(folder / DONE, len(scan.files))
    try:
        workers = decoding.decode_into(scan, layout, folder / DONE, progress, stored=conversion.get("store") is not None)
    except KeyboardInterrupt:
        done = decoding.images_done(folder / DONE, len(scan.files))
        raise DecodeInterrupted(f"interrupted while decoding; {done:,} of {len(scan.files):,} images are kept in {folder}: "
                                f"the next run continues from there", str(root)) from None
    labels = np.fromiter((item.label for item in scan.files), dtype=np.int64, count=len(scan.files))
    try:
        with open(layout.path, "rb+") as stream:
            os.fsync(stream.fileno())  # the images are on disk before the manifest says they are
        os.replace(layout.path, folder / "images.npy")
        with open(folder / ".labels.npy.tmp", "wb") as stream:
            np.save(stream, labels, allow_pickle=False)
        os.replace(folder / ".labels.npy.tmp", folder / "labels.npy")
        manifest = {**what, "root": str(root), "class_names": list(scan.class_names), "splits": list(scan.splits),
                    "files": [[f.path, f.size, f.mtime_ns, f.label, f.split] for f in scan.files],
                    "created": datetime.now().isoformat(timespec="seconds")}
        atomic_write(folder / MANIFEST, (json.dumps(manifest) + "\n").encode())
    except OSError as error:
        raise StorageError(f"cannot finish the cache of decoded images in {folder}: {error.strerror}", str(root)) from None
    for leftover in (DONE, PROGRESS):
        (folder / leftover).unlink(missing_ok=True)
    return kept, workers


def _continued(folder: Path, what: dict, shape: tuple[int, int, int, int]):
    """The partial file an interrupted decode of this very folder left, or None (then a decode starts afresh)."""
    try:
        before = json.loads((folder / PROGRESS).read_text())
    except (OSError, ValueError):
        return None
    return decoding.existing(folder / PARTIAL, shape) if before == what else None
