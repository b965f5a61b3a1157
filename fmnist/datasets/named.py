"""The named datasets: Fashion-MNIST (its Debian package or IDX files, MD5-checked by fmnist) and MNIST, KMNIST,
CIFAR-10 and CIFAR-100, read by torchvision's own dataset classes in their usual layout under the data folder."""
from __future__ import annotations

import contextlib
import io
import pickle
import socket
from abc import ABC, abstractmethod
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from ..errors import UsageError, one_line
from . import fashion_mnist
from .choice import NAMES

DOWNLOAD_TIMEOUT_S = 20  # per connection: offline, torchvision's mirrors fail fast instead of hanging


@dataclass
class Raw:
    """A dataset as read: uint8 (N, C, H, W) images and int64 labels per published split, and where it came from."""

    train_x: torch.Tensor
    train_y: torch.Tensor
    test_x: torch.Tensor
    test_y: torch.Tensor
    class_names: tuple[str, ...]
    how: str  # where it was found
    check: str  # how it was verified


class NamedDataset(ABC):
    """One published dataset: its shape and classes are known before a byte is read."""

    name: str
    shape: tuple[int, int, int]
    classes: int
    val_per_class: int  # validation images held out of the training split per class (fixed seed)
    flip: bool = True  # augmentation's default: False where a mirror image changes the label (digits, characters)
    light_on_black: bool = False  # how `predict` prepares a photo: inverted and centred like the dataset, or as it is
    train_size: int = 0  # published split sizes: the memory check needs them before reading
    test_size: int = 0
    subfolder: str = ""  # where its files live under the data folder
    needs: str = ""  # the files to put there, for the not-found message
    check: str = ""  # how the files are verified, as `fmnist data` and the run's start line say

    @abstractmethod
    def locate(self, data_dir: str | None, download: bool) -> str:
        """Where its files are (downloading them if allowed and missing); an error that says where to put them."""

    @abstractmethod
    def read(self, data_dir: str | None, download: bool) -> Raw:
        """Both published splits as uint8 (N, C, H, W) tensors, verified."""


DATASETS: dict[str, NamedDataset] = {}


def register(cls: type[NamedDataset]) -> type[NamedDataset]:
    """One reader per name of choice.NAMES (the names the schema and --data offer without importing this module)."""
    if cls.name in DATASETS or cls.name not in NAMES:
        raise ValueError(f"dataset {cls.name}: registered twice, or not among choice.NAMES")
    DATASETS[cls.name] = cls()
    return cls


def data_defaults(choice) -> dict:
    """Settings the data decides unless the spec or a flag does: no flip for digits and characters."""
    return {"flip": DATASETS[choice.name].flip if choice.name else True}


def data_root(data_dir: str | None) -> tuple[Path, str]:
    """(the data folder, how it was chosen): --data-dir, else $FMNIST_DATA, else ./data; a named one must exist."""
    how, folder = fashion_mnist.named_folder(data_dir)
    if not folder:
        return Path("data"), "./data"
    root = Path(folder).expanduser()
    if not root.is_dir():
        raise UsageError(f"{how} {root}: no such folder")
    return root, how


class TorchvisionDataset(NamedDataset):
    """Read through torchvision's class of the same name, which also checks (and downloads) the files."""

    torchvision_class: str
    files: tuple[str, ...]  # what must be in the subfolder before torchvision is asked to read it

    def locate(self, data_dir: str | None, download: bool) -> str:
        root, how = data_root(data_dir)
        folder = root / self.subfolder
        missing = [name for name in self.files if not (folder / name).is_file()]
        if missing:
            if not download:
                raise self._missing(root, f"no {missing[0]}")
            self._download(root)
        return f"{how}: {folder}"

    def read(self, data_dir: str | None, download: bool) -> Raw:
        root, how = data_root(data_dir)
        try:
            train, test = self._open(root, download=False)
        except RuntimeError as error:  # torchvision's "Dataset not found or corrupted"
            if not download:
                raise self._missing(root, "torchvision: " + one_line(error, 100)) from None
            train, test = self._download(root)
        except (AssertionError, ValueError, OSError, EOFError, KeyError, pickle.UnpicklingError) as error:
            # files that pass torchvision's check but do not parse: truncated IDX, a damaged pickle
            raise UsageError(f"{self.name}: corrupt file ({type(error).__name__}: {one_line(error, 80)})",
                             str(root / self.subfolder)) from None
        images = [self._images(split) for split in (train, test)]
        labels = [torch.as_tensor(np.asarray(split.targets), dtype=torch.int64) for split in (train, test)]
        for split, y in zip(("train", "test"), labels):
            if len(y) and (int(y.min()) < 0 or int(y.max()) >= self.classes):
                raise UsageError(f"{self.name} {split} labels outside 0-{self.classes - 1}", str(root / self.subfolder))
        names = tuple(str(name) for name in train.classes)
        return Raw(images[0], labels[0], images[1], labels[1], names, f"{how}: {root / self.subfolder}", self.check)

    def _open(self, root: Path, download: bool):
        from torchvision import datasets

        cls = getattr(datasets, self.torchvision_class)
        return cls(str(root), train=True, download=download), cls(str(root), train=False, download=download)

    def _images(self, split) -> torch.Tensor:
        data = split.data
        if isinstance(data, np.ndarray):  # CIFAR: (N, H, W, C)
            return torch.from_numpy(np.ascontiguousarray(data.transpose(0, 3, 1, 2)))
        return data.unsqueeze(1).contiguous()  # the MNIST family: (N, H, W) tensor

    def _missing(self, root: Path, reason: str) -> UsageError:
        return UsageError(f"{self.name} not found or not intact in {root / self.subfolder} ({reason}); "
                          f"put {self.needs} there (or point --data-dir at the folder holding {self.subfolder}/), "
                          f"or run 'fmnist data --data {self.name} --download' where the internet is reachable")

    def _download(self, root: Path):
        # what the download makes and a failure leaves empty: the data folder itself, or the dataset's folder in it
        folder = root if not root.exists() else root / Path(self.subfolder).parts[0]
        made = folder if not folder.exists() else None
        timeout = socket.getdefaulttimeout()
        socket.setdefaulttimeout(DOWNLOAD_TIMEOUT_S)
        try:  # torchvision prints its progress and each failed mirror: the user gets one line instead
            with contextlib.redirect_stdout(io.StringIO()), contextlib.redirect_stderr(io.StringIO()):
                return self._open(root, download=True)
        except Exception as error:  # offline: URLError, RuntimeError, OSError from several mirrors
            if made is not None:
                _remove_empty(made)
            raise UsageError(f"{self.name} is not in {root / self.subfolder} and torchvision's download failed "
                             f"({_download_problem(error)}); put {self.needs} there "
                             f"(or point --data-dir at the folder holding {self.subfolder}/)") from None
        finally:
            socket.setdefaulttimeout(timeout)


def _download_problem(error: Exception) -> str:
    """torchvision's failure in a few words: its 'Tried https://mirror/, )' lists mirrors and no reason when offline."""
    text = one_line(error, 300)
    if "Tried " in text:
        return f"{text.split(' Tried ')[0].rstrip(':')}: no mirror could be reached (offline?)"
    return f"{type(error).__name__}: {one_line(error, 100)}"


def _remove_empty(root: Path) -> None:
    """Folders a failed download made and left empty."""
    for folder in sorted((p for p in root.rglob("*") if p.is_dir()), key=lambda p: len(p.parts), reverse=True):
        with contextlib.suppress(OSError):
            folder.rmdir()
    with contextlib.suppress(OSError):
        root.rmdir()


@register
class FashionMNIST(TorchvisionDataset):
    """Read and verified by fmnist itself (fashion_mnist.py): Debian's package, torchvision's layout or a named folder;
    downloaded, where allowed, through torchvision like the others (time-limited, cleaned up on failure)."""

    name, shape, classes, val_per_class = "fashion-mnist", (1, 28, 28), 10, 1_000
    light_on_black = True
    train_size, test_size = 60_000, 10_000
    torchvision_class, subfolder = "FashionMNIST", "FashionMNIST/raw"
    needs = "the four IDX files (train/t10k images and labels, .gz or not)"
    check = "magic numbers, sizes, labels and the published MD5s (fmnist)"

    def locate(self, data_dir: str | None, download: bool) -> str:
        return self._source(data_dir, download).how

    def read(self, data_dir: str | None, download: bool) -> Raw:
        source = self._source(data_dir, download)
        arrays = fashion_mnist.read_dataset(source)
        return Raw(torch.from_numpy(arrays["train_images"].copy()).unsqueeze(1),
                   torch.from_numpy(arrays["train_labels"].astype(np.int64)),
                   torch.from_numpy(arrays["test_images"].copy()).unsqueeze(1),
                   torch.from_numpy(arrays["test_labels"].astype(np.int64)),
                   fashion_mnist.CLASS_NAMES, source.how, self.check)

    def _source(self, data_dir: str | None, download: bool) -> fashion_mnist.DataSource:
        source = fashion_mnist.find(data_dir)
        if source is None and download:
            _, folder = fashion_mnist.named_folder(data_dir)
            self._download(Path(folder).expanduser() if folder else Path("data"))
            source = fashion_mnist.find(data_dir)
        return source or fashion_mnist.locate(data_dir)  # locate says where it looked and how to get it


class MNISTFamily(TorchvisionDataset):
    """28x28 grey digits or characters in four IDX files: mirroring changes their meaning, so no flip by default."""

    shape, classes, val_per_class, flip, light_on_black = (1, 28, 28), 10, 1_000, False, True
    train_size, test_size = 60_000, 10_000
    files = ("train-images-idx3-ubyte", "train-labels-idx1-ubyte", "t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte")
    needs = "the four uncompressed IDX files (train-images-idx3-ubyte, ...)"
    check = "torchvision: the four IDX files present and parsed (it checks MD5s when it downloads)"


@register
class MNIST(MNISTFamily):
    name, torchvision_class, subfolder = "mnist", "MNIST", "MNIST/raw"


@register
class KMNIST(MNISTFamily):
    name, torchvision_class, subfolder = "kmnist", "KMNIST", "KMNIST/raw"


@register
class CIFAR10(TorchvisionDataset):
    name, shape, classes, val_per_class = "cifar10", (3, 32, 32), 10, 500
    train_size, test_size = 50_000, 10_000
    torchvision_class, subfolder = "CIFAR10", "cifar-10-batches-py"
    files = (*(f"data_batch_{n}" for n in range(1, 6)), "test_batch", "batches.meta")
    needs = "the extracted python batches (data_batch_1..5, test_batch, batches.meta)"
    check = "torchvision: the published MD5 of every batch file"


@register
class CIFAR100(TorchvisionDataset):
    name, shape, classes, val_per_class = "cifar100", (3, 32, 32), 100, 50
    train_size, test_size = 50_000, 10_000
    torchvision_class, subfolder, files = "CIFAR100", "cifar-100-python", ("train", "test", "meta")
    needs = "the extracted python files (train, test, meta)"
    check = "torchvision: the published MD5 of every file"


if tuple(DATASETS) != NAMES:  # a name the schema offers must have a reader, in the same order
    raise ImportError(f"datasets without a reader: {sorted(set(NAMES) - set(DATASETS))}")
