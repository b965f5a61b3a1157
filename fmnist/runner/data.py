"""The real Fashion-MNIST: find its four IDX files, verify them, split 50k/10k, hold them as uint8 tensors."""
from __future__ import annotations

import gzip
import hashlib
import os
import zlib
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from ..errors import UsageError, one_line

CLASS_NAMES = ("T-shirt/top", "Trouser", "Pullover", "Dress", "Coat", "Sandal", "Shirt", "Sneaker", "Bag", "Ankle boot")
IMAGE_SHAPE = (1, 28, 28)  # (C, H, W) of every image
DEBIAN_DIR = Path("/usr/share/datasets/fashion-mnist")
VALIDATION_PER_CLASS = 1_000  # 10 x 1,000 = the study's 10,000 validation images
VALIDATION_SHARE_CAP = 6  # validation takes at most 1/6 of each class
SPLIT_SEED = 0  # fixed, so every run, grid cell and search trial is judged on the same validation images
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


@dataclass
class Splits:
    """Images as uint8 (N, C, H, W) tensors and labels as int64, per split; the trainer's only view of data."""

    train_x: torch.Tensor
    train_y: torch.Tensor
    val_x: torch.Tensor
    val_y: torch.Tensor
    test_x: torch.Tensor
    test_y: torch.Tensor
    class_names: tuple[str, ...] = CLASS_NAMES
    normalization: dict | None = None  # {"mean": [...], "std": [...]} per channel of the training split, when asked for

    def to(self, device: torch.device) -> "Splits":
        moved = {name: getattr(self, name).to(device) for name in ("train_x", "train_y", "val_x", "val_y", "test_x", "test_y")}
        return Splits(**moved, class_names=self.class_names, normalization=self.normalization)


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


def locate(data_dir: str | Path | None = None, download: bool = False, create: bool = False) -> DataSource:
    """Find the four files; with download=True, fall back to torchvision's download into the named folder or ./data.

    A folder the user names must exist (a typo is an error, not a new empty folder) unless `create` (fmnist data --download).
    """
    named = named_folder(data_dir)
    if named[1] and not create and not Path(named[1]).is_dir():
        raise UsageError(f"{named[0]} {named[1]}: no such folder; {HOW_TO_GET}")
    places = candidates(data_dir)
    for how, directory in places:
        paths = _find_in(directory)
        if paths:
            return DataSource(f"{how}: {directory}", paths)
    if download:
        return _download(places[0][1] if data_dir or os.environ.get("FMNIST_DATA") else Path("data"))
    looked = ", ".join(str(directory) for _, directory in places)
    raise UsageError(f"Fashion-MNIST not found (looked in {looked}); {HOW_TO_GET}")


def _download(root: Path) -> DataSource:
    from torchvision.datasets import FashionMNIST

    try:
        root.mkdir(parents=True, exist_ok=True)
        FashionMNIST(str(root), train=True, download=True)
        FashionMNIST(str(root), train=False, download=True)
    except Exception as error:  # torchvision raises bare RuntimeError/URLError when offline
        raise UsageError(f"torchvision's download failed ({type(error).__name__}: {str(error).splitlines()[0][:120]}); {HOW_TO_GET}") from None
    paths = _find_in(root / "FashionMNIST" / "raw")
    if not paths:
        raise UsageError(f"torchvision's download left no IDX files in {root / 'FashionMNIST' / 'raw'}; {HOW_TO_GET}")
    return DataSource(f"torchvision download: {root / 'FashionMNIST' / 'raw'}", paths)


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


def stratified_split(labels: torch.Tensor, per_class: int, seed: int = SPLIT_SEED) -> tuple[torch.Tensor, torch.Tensor]:
    """(train indices, validation indices): `per_class` images of each class, drawn with a fixed seed, go to validation."""
    generator = torch.Generator().manual_seed(seed)
    order = torch.randperm(len(labels), generator=generator)
    members = [order[labels[order] == c] for c in range(int(labels.max()) + 1)]
    # at most a sixth of a class (Fashion-MNIST: exactly 1,000 of 6,000), so a small dataset keeps images to train on
    val_parts = [m[:min(per_class, len(m) // VALIDATION_SHARE_CAP)] for m in members]
    val = torch.cat(val_parts).sort().values
    keep = torch.ones(len(labels), dtype=torch.bool)
    keep[val] = False
    rest = keep.nonzero().squeeze(1)
    train = rest[torch.randperm(len(rest), generator=generator)]  # shuffled anew, so --train-limit takes a mix of all classes
    return train, val
