"""A folder of the user's own images in torchvision's ImageFolder layout: one sub-folder per class, optionally
under train/, val/ and test/. Scanned (names and sizes only), then checked from the image headers, then decoded once."""
from __future__ import annotations

import hashlib
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image

from ..errors import UsageError
from .images import READ_ERRORS, fit_image, fit_stored, open_image, unreadable

SPLITS = ("train", "val", "test")
GREY_MODES = {"1", "L", "LA", "La", "I", "I;16", "I;16B", "I;16L", "I;16N", "F"}  # one channel; every other mode is RGB
LAYOUT = "FOLDER/<class>/<image>, or FOLDER/train/<class>/<image> with optional val/ and test/"


def image_suffixes() -> set[str]:
    Image.init()
    return {suffix.lower() for suffix in Image.registered_extensions()}


@dataclass
class FolderFile:
    path: str  # relative to the folder
    label: int
    split: str  # train, val, test, or "" where the split is held out of the class folders
    size: int  # bytes and modification time: a changed folder is noticed without reading every image
    mtime_ns: int


@dataclass
class FolderScan:
    root: Path
    files: list[FolderFile]
    class_names: tuple[str, ...]
    splits: tuple[str, ...]  # the split folders present (none: one folder per class)

    def fingerprint(self) -> str:
        """The cache's key: every file's path, size and modification time, class and split."""
        return self._digest(with_times=True)

    def contents(self) -> str:
        """Which images, of which size, in which class and split: recorded with a run, so a resume or an eval on a
        folder that changed since is refused (modification times are left out: a copied folder is the same data)."""
        return self._digest(with_times=False)

    def _digest(self, with_times: bool) -> str:
        digest = hashlib.sha256()
        for item in self.files:
            time = f"\0{item.mtime_ns}" if with_times else ""
            digest.update(f"{item.path}\0{item.size}{time}\0{item.label}\0{item.split}\n".encode())
        digest.update("\0".join(self.class_names).encode())
        return digest.hexdigest()


def _visible_dirs(folder: Path) -> list[Path]:
    return sorted(p for p in folder.iterdir() if p.is_dir() and not p.name.startswith("."))


def _images_under(folder: Path, suffixes: set[str], root: Path) -> list[Path]:
    """Regular image files under `folder`, nested folders included. A link (to a file or a folder) is followed only
    when it stays inside the dataset's `root`: one to /usr/share would pull in pictures that are not the dataset's.
    Each real folder is read once (a link back up the tree is not a loop); an unreadable folder is an error, not
    silently fewer images."""
    def refuse(error: OSError):
        raise UsageError(f"cannot read this folder ({error.strerror})", error.filename)

    inside = os.path.realpath(root) + os.sep
    found, seen = [], set()
    for directory, subdirs, names in os.walk(folder, followlinks=True, onerror=refuse):
        real = os.path.realpath(directory)
        if real in seen or not (real + os.sep).startswith(inside) or inside.startswith(real + os.sep):
            subdirs[:] = []  # read already, outside the dataset, or an ancestor of it
            continue
        seen.add(real)
        subdirs[:] = sorted(d for d in subdirs if not d.startswith("."))
        candidates = (Path(directory) / n for n in sorted(names) if not n.startswith(".") and Path(n).suffix.lower() in suffixes)
        # a dangling link stays in, to be named by the scan; a FIFO, socket or device is not an image file
        found += [path for path in candidates if not path.exists() or (path.is_file() and os.path.realpath(path).startswith(inside))]
    return found


def scan_folder(root: Path) -> FolderScan:
    """The folder's classes and image files (by suffix), without opening any image."""
    root = Path(root)
    try:
        os.listdir(root)
    except OSError as error:
        raise UsageError(f"cannot read the folder ({error.strerror})", str(root)) from None
    splits = tuple(s for s in SPLITS if (root / s).is_dir())
    if splits and "train" not in splits:
        raise UsageError(f"has {'/'.join(splits)}/ but no train/ folder (layout: {LAYOUT})", str(root))
    class_root = root / "train" if splits else root
    class_names = tuple(p.name for p in _visible_dirs(class_root))
    if not class_names:
        raise UsageError(f"no class folders in {class_root} (layout: {LAYOUT})", str(root))
    if len(class_names) == 1:
        raise UsageError(f"only one class folder ('{class_names[0]}'): a classifier needs at least 2", str(class_root))
    suffixes = image_suffixes()
    files = []
    for split in splits or ("",):
        split_root = root / split if split else root
        unknown = sorted({p.name for p in _visible_dirs(split_root)} - set(class_names))
        if unknown:
            raise UsageError(f"class folder '{unknown[0]}' is not among train/'s classes ({', '.join(class_names)})", str(split_root))
        for label, name in enumerate(class_names):
            paths = _images_under(split_root / name, suffixes, root) if (split_root / name).is_dir() else []
            if not paths and split in ("", "train"):
                raise UsageError(f"class folder '{name}' holds no images (files ending in .png, .jpg, ... count)",
                                 str(split_root / name))
            for path in paths:
                try:
                    stat = path.stat()
                except OSError as error:  # a dangling link, or a file removed while we looked
                    raise UsageError(f"cannot read this image ({error.strerror})", str(path)) from None
                files.append(FolderFile(str(path.relative_to(root)), label, split, stat.st_size, stat.st_mtime_ns))
    return FolderScan(root, files, class_names, splits)


def native_shape(scan: FolderScan, channels: int | None, resize: tuple[int, int] | None) -> tuple[int, int, int]:
    """(C, H, W) every image becomes, from the headers; images that differ need `channels` / `resize` to convert."""
    first: dict[str, tuple[str, Any]] = {}
    for item in scan.files:
        path = scan.root / item.path
        try:
            with open_image(path) as image:
                size, grey = (image.height, image.width), image.mode in GREY_MODES
        except READ_ERRORS as error:
            raise unreadable(path, error) from None
        if resize is None:
            _same("size", first, item.path, size, lambda s: f"{s[1]}x{s[0]}", "resize: N")
        if channels is None:
            _same("channels", first, item.path, grey, lambda g: "grey" if g else "colour", "channels: 3 (or 1)")
    height, width = resize or first["size"][1]
    return (channels or (1 if first["channels"][1] else 3), height, width)


def _same(what: str, first: dict, path: str, value, show, fix: str) -> None:
    if what not in first:
        first[what] = (path, value)
    elif first[what][1] != value:
        raise UsageError(f"images differ in {what}: {first[what][0]} is {show(first[what][1])}, {path} is {show(value)}; "
                         f"add data: {{{fix}}} to the spec (or --set data.{fix.split(':')[0]}=...) to convert them")


def decode(scan: FolderScan, shape: tuple[int, int, int], progress=None, stored: bool = False) -> tuple[np.ndarray, np.ndarray]:
    """All images as one uint8 (N, C, H, W) array in memory, in scan order, and their labels, in this process;
    `progress(done)` as it goes. (The cache decodes with every core: datasets/decoding.py.)"""
    channels, height, width = shape
    images = np.empty((len(scan.files), height, width, channels), dtype=np.uint8)
    for index, item in enumerate(scan.files):
        path = scan.root / item.path
        try:
            with open_image(path) as opened:
                images[index] = fit_stored(opened, channels, height) if stored else fit_image(opened, shape)
        except READ_ERRORS as error:
            raise unreadable(path, error) from None
        if progress:
            progress(index + 1)
    labels = np.fromiter((item.label for item in scan.files), dtype=np.int64, count=len(scan.files))
    return np.ascontiguousarray(images.transpose(0, 3, 1, 2)), labels
