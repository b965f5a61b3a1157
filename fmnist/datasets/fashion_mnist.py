"""The real Fashion-MNIST's four IDX files: where they are (Debian's package, torchvision's layout, a named folder),
read and verified by fmnist itself (magic numbers, shapes, lengths, labels and the published MD5s)."""
from __future__ import annotations

import gzip
import hashlib
import os
import zlib
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ..errors import UsageError, one_line

CLASS_NAMES = ("T-shirt/top", "Trouser", "Pullover", "Dress", "Coat", "Sandal", "Shirt", "Sneaker", "Bag", "Ankle boot")
IMAGE_SHAPE = (1, 28, 28)  # (C, H, W) of every image
DEBIAN_DIR = Path("/usr/share/datasets/fashion-mnist")
HOW_TO_GET = ("get it with 'apt-get install dataset-fashion-mnist' (Debian/Ubuntu), or 'fmnist data --download' "
              "where the internet is reachable, or point --data-dir / $FMNIST_DATA at a folder holding the four IDX files")


@dataclass(frozen=True)
class IdxFile:
    """What one published file must be: name, IDX magic, shape and the MD5 of its decompressed bytes."""

    name: str
    magic: int
    shape: tuple[int, ...]
    md5: str


# MD5s of the decompressed files as published by Zalando (the same figures torchvision once listed).
FILES = {
    "train_images": IdxFile("train-images-idx3-ubyte", 2051, (60_000, 28, 28), "f4a8712d7a061bf5bd6d2ca38dc4d50a"),
    "train_labels": IdxFile("train-labels-idx1-ubyte", 2049, (60_000,), "9018921c3c673c538a1fc5bad174d6f9"),
    "test_images": IdxFile("t10k-images-idx3-ubyte", 2051, (10_000, 28, 28), "8181f5470baa50b63fa0f6fddb340f0a"),
    "test_labels": IdxFile("t10k-labels-idx1-ubyte", 2049, (10_000,), "15d484375f8d13e6eb1aabb0c3f46965"),
}


@dataclass
class DataSource:
    """Where the four files were found, and how that place was chosen."""

    how: str
    paths: dict[str, Path]

    @property
    def directory(self) -> Path:
        return next(iter(self.paths.values())).parent


def _find_in(directory: Path) -> dict[str, Path] | None:
    paths = {}
    for key, spec in FILES.items():
        for candidate in (directory / spec.name, directory / f"{spec.name}.gz"):
            if candidate.is_file():
                paths[key] = candidate
                break
        else:
            return None
    return paths


def named_folder(data_dir: str | Path | None) -> tuple[str, str | Path | None]:
    """(how it was named, the data folder the user names): --data-dir, else $FMNIST_DATA; None when neither does."""
    return ("--data-dir", data_dir) if data_dir else ("$FMNIST_DATA", os.environ.get("FMNIST_DATA"))


def candidates(data_dir: str | Path | None) -> list[tuple[str, Path]]:
    """The places looked at, in order, each with how it was chosen; a folder the user names is the only place looked."""
    named = named_folder(data_dir)
    if named[1]:
        root = Path(named[1])
        return [(named[0], root), (f"{named[0]} (torchvision layout)", root / "FashionMNIST" / "raw")]
    return [("torchvision layout in ./data", Path("data") / "FashionMNIST" / "raw"),
            ("Debian package dataset-fashion-mnist", DEBIAN_DIR)]


def find(data_dir: str | Path | None = None, create: bool = False) -> DataSource | None:
    """The four files where they are, or None. A folder the user names must exist (a typo is an error, not a new empty
    folder) unless `create` (a download will make it)."""
    named = named_folder(data_dir)
    if named[1] and not create and not Path(named[1]).is_dir():
        raise UsageError(f"{named[0]} {named[1]}: no such folder; {HOW_TO_GET}")
    for how, directory in candidates(data_dir):
        paths = _find_in(directory)
        if paths:
            return DataSource(f"{how}: {directory}", paths)
    return None


def locate(data_dir: str | Path | None = None) -> DataSource:
    """The four files, or one line that says where it looked and how to get them."""
    source = find(data_dir)
    if source is None:
        looked = ", ".join(str(directory) for _, directory in candidates(data_dir))
        raise UsageError(f"Fashion-MNIST not found (looked in {looked}); {HOW_TO_GET}")
    return source


def _open(path: Path):
    return gzip.open(path, "rb") if path.suffix == ".gz" else open(path, "rb")


def _read_exactly(stream, size: int, path: Path, before: int, problem: str) -> bytes:
    """`size` bytes, or the file's size as far as read (`before` + what came) in the error `problem` names."""
    data = stream.read(size)
    if len(data) != size:
        raise UsageError(problem.format(got=f"{before + len(data):,}"), str(path))
    return data


def _check_intact(stream, expected: IdxFile) -> None:
    """A wrong header in a .gz may be damage, which gzip only notices further on: read on (bounded) to tell."""
    if isinstance(stream, gzip.GzipFile):
        stream.read(4 + 4 * len(expected.shape) + int(np.prod(expected.shape)) + 1)


def read_idx(path: Path, expected: IdxFile, verify_checksum: bool = True) -> np.ndarray:
    """One IDX file as a uint8 array, after checking its magic number, shape, length and checksum.

    The header is checked first and no more than the expected bytes (+1, to see that nothing follows) are read,
    so a huge file or a gzip bomb costs no more than a real one.
    """
    where = str(path)
    try:
        with _open(path) as stream:
            header = 4 + 4 * len(expected.shape)
            head = _read_exactly(stream, 4, path, 0, "truncated file: {got} bytes, not an IDX header")
            magic = int.from_bytes(head, "big")
            if magic != expected.magic:
                _check_intact(stream, expected)
                raise UsageError(f"not a Fashion-MNIST {expected.name} file: IDX magic number {magic}, expected {expected.magic}", where)
            dims = _read_exactly(stream, 4 * len(expected.shape), path, 4, "truncated file: {got} bytes, not an IDX header")
            shape = tuple(int.from_bytes(dims[4 * i: 4 * i + 4], "big") for i in range(len(expected.shape)))
            if shape != expected.shape:
                _check_intact(stream, expected)
                raise UsageError(f"holds shape {shape}, expected {expected.shape}", where)
            size = header + int(np.prod(shape))
            body = _read_exactly(stream, size - header, path, header, f"truncated or padded: {{got}} bytes, expected {size:,}")
            if stream.read(1):
                raise UsageError(f"truncated or padded: more than the {size:,} bytes expected", where)
    except (OSError, EOFError, zlib.error) as error:  # gzip.BadGzipFile is an OSError; flipped bytes inside are zlib's
        reason = getattr(error, "strerror", None) or one_line(error, 1000)
        raise UsageError(f"corrupt file: {reason} (re-install or re-download it)", where) from None
    if verify_checksum:
        digest = hashlib.md5(head + dims + body).hexdigest()
        if digest != expected.md5:
            raise UsageError(f"checksum mismatch: MD5 {digest}, published {expected.md5} (corrupt or altered)", where)
    return np.frombuffer(body, dtype=np.uint8).reshape(shape)


def read_dataset(source: DataSource, verify_checksum: bool = True) -> dict[str, np.ndarray]:
    """All four files, verified; labels must be 0-9."""
    arrays = {key: read_idx(source.paths[key], spec, verify_checksum) for key, spec in FILES.items()}
    for key in ("train_labels", "test_labels"):
        if arrays[key].max() >= len(CLASS_NAMES):
            raise UsageError(f"labels outside 0-{len(CLASS_NAMES) - 1} (max {arrays[key].max()})", str(source.paths[key]))
    return arrays


