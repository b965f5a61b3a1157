"""The real Fashion-MNIST: find its four IDX files, verify them, split 50k/10k, hold them as uint8 tensors."""
from __future__ import annotations

import gzip
import hashlib
import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from ..errors import UsageError

CLASS_NAMES = ("T-shirt/top", "Trouser", "Pullover", "Dress", "Coat", "Sandal", "Shirt", "Sneaker", "Bag", "Ankle boot")
DEBIAN_DIR = Path("/usr/share/datasets/fashion-mnist")
VALIDATION_PER_CLASS = 1_000  # 10 x 1,000 = the study's 10,000 validation images
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

    def to(self, device: torch.device) -> "Splits":
        moved = {name: getattr(self, name).to(device) for name in ("train_x", "train_y", "val_x", "val_y", "test_x", "test_y")}
        return Splits(**moved, class_names=self.class_names)


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


def candidates(data_dir: str | Path | None) -> list[tuple[str, Path]]:
    """The places looked at, in order, each with how it was chosen; a folder the user names is the only place looked."""
    named = ("--data-dir", data_dir) if data_dir else ("$FMNIST_DATA", os.environ.get("FMNIST_DATA"))
    if named[1]:
        root = Path(named[1])
        return [(named[0], root), (f"{named[0]} (torchvision layout)", root / "FashionMNIST" / "raw")]
    return [("torchvision layout in ./data", Path("data") / "FashionMNIST" / "raw"),
            ("Debian package dataset-fashion-mnist", DEBIAN_DIR)]


def locate(data_dir: str | Path | None = None, download: bool = False) -> DataSource:
    """Find the four files; with download=True, fall back to torchvision's download into the named folder or ./data."""
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


def _read_bytes(path: Path) -> bytes:
    try:
        if path.suffix == ".gz":
            with gzip.open(path, "rb") as stream:
                return stream.read()
        return path.read_bytes()
    except (OSError, EOFError, gzip.BadGzipFile) as error:
        raise UsageError(f"corrupt file: {error} (re-install or re-download it)", str(path)) from None


def read_idx(path: Path, expected: IdxFile, verify_checksum: bool = True) -> np.ndarray:
    """One IDX file as a uint8 array, after checking its magic number, shape, length and checksum."""
    raw = _read_bytes(path)
    where = str(path)
    if len(raw) < 8:
        raise UsageError(f"truncated file: {len(raw)} bytes, not an IDX header", where)
    magic = int.from_bytes(raw[:4], "big")
    if magic != expected.magic:
        raise UsageError(f"not a Fashion-MNIST {expected.name} file: IDX magic number {magic}, expected {expected.magic}", where)
    ndim = magic & 0xFF
    header = 4 + 4 * ndim
    shape = tuple(int.from_bytes(raw[4 + 4 * i: 8 + 4 * i], "big") for i in range(ndim))
    if shape != expected.shape:
        raise UsageError(f"holds shape {shape}, expected {expected.shape}", where)
    if len(raw) != header + int(np.prod(shape)):
        raise UsageError(f"truncated or padded: {len(raw):,} bytes, expected {header + int(np.prod(shape)):,}", where)
    if verify_checksum and hashlib.md5(raw).hexdigest() != expected.md5:
        raise UsageError(f"checksum mismatch: MD5 {hashlib.md5(raw).hexdigest()}, published {expected.md5} (corrupt or altered)", where)
    return np.frombuffer(raw, dtype=np.uint8, offset=header).reshape(shape)


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
    val_parts = [order[labels[order] == c][:per_class] for c in range(int(labels.max()) + 1)]
    val = torch.cat(val_parts).sort().values
    keep = torch.ones(len(labels), dtype=torch.bool)
    keep[val] = False
    rest = keep.nonzero().squeeze(1)
    train = rest[torch.randperm(len(rest), generator=generator)]  # shuffled anew, so --train-limit takes a mix of all classes
    return train, val


def load_splits(source: DataSource, train_limit: int | None = None, verify_checksum: bool = True) -> Splits:
    """The study's split: 60,000 -> 50,000 train / 10,000 validation (stratified, fixed seed), 10,000 test."""
    arrays = read_dataset(source, verify_checksum)
    images = torch.from_numpy(arrays["train_images"].copy()).unsqueeze(1)
    labels = torch.from_numpy(arrays["train_labels"].astype(np.int64))
    train, val = stratified_split(labels, VALIDATION_PER_CLASS)
    if train_limit is not None:
        train = train[:train_limit]
    return Splits(
        train_x=images[train], train_y=labels[train],
        val_x=images[val], val_y=labels[val],
        test_x=torch.from_numpy(arrays["test_images"].copy()).unsqueeze(1),
        test_y=torch.from_numpy(arrays["test_labels"].astype(np.int64)),
    )
