"""Images read from the cache file by index, for data that does not fit in memory.

Each batch is read with one pread per image, in file order, into a fresh buffer. Under a memory limit this is what
keeps training at the disk's speed: gathering a batch from a memory map instead faults its pages in one at a time,
and each fault reclaims a page of the limit first (benchmarks/data_speed.py measures both; docs/data.md has the
figures). A view (`narrow`) reads nothing; indexing reads.
"""
from __future__ import annotations

import os
from pathlib import Path
from dataclasses import dataclass, replace

import numpy as np
import torch

from ..errors import StorageError


@dataclass(frozen=True)
class DiskImages:
    """uint8 (N, C, H, W) images in a file at byte `offset`, rows `start` to `stop`; what indexing gives lands on
    `device`."""

    path: str
    offset: int
    image_shape: tuple[int, int, int]
    start: int
    stop: int
    device: torch.device = torch.device("cpu")

    @property
    def shape(self) -> torch.Size:
        return torch.Size((self.stop - self.start, *self.image_shape))

    @property
    def dtype(self) -> torch.dtype:
        return torch.uint8

    def __len__(self) -> int:
        return self.stop - self.start

    @property
    def image_bytes(self) -> int:
        return int(np.prod(self.image_shape))

    def narrow(self, dim: int, start: int, length: int) -> "DiskImages":
        """Rows start..start+length as a view, like torch.Tensor.narrow along dim 0: nothing is read."""
        if dim != 0 or not 0 <= start <= start + length <= len(self):
            raise IndexError(f"narrow({dim}, {start}, {length}) outside {len(self)} images")
        return replace(self, start=self.start + start, stop=self.start + start + length)

    def to(self, device: torch.device) -> "DiskImages":
        """The same images, read onto `device` (the pixels stay on disk until a batch is read)."""
        return replace(self, device=torch.device(device))

    def __getitem__(self, key) -> torch.Tensor:
        """Images read from disk: an int, a slice (read as one range), or a tensor or array of indices."""
        if isinstance(key, int):
            return self._read_range(*slice(key, key + 1 if key != -1 else None).indices(len(self))[:2])[0]
        if isinstance(key, slice):
            first, last, step = key.indices(len(self))
            if step != 1:
                return self[torch.arange(first, last, step)]
            return self._read_range(first, max(first, last))
        index = key.detach().cpu().numpy() if isinstance(key, torch.Tensor) else np.asarray(key)
        return self._gather(index.astype(np.int64, copy=False).reshape(-1))

    def _read_range(self, first: int, last: int) -> torch.Tensor:
        """Rows first..last-1, in one read."""
        out = read_whole(Path(self.path), self.offset + (self.start + first) * self.image_bytes,
                         (last - first, *self.image_shape))
        return torch.from_numpy(out).to(self.device)

    def _gather(self, index: np.ndarray) -> torch.Tensor:
        if len(index) and (index.min() < -len(self) or index.max() >= len(self)):
            raise IndexError(f"an index is outside {len(self)} images")
        index = np.where(index < 0, index + len(self), index)
        out = np.empty((len(index), *self.image_shape), dtype=np.uint8)
        rows = out.data.cast("B")
        size = self.image_bytes
        try:
            descriptor = os.open(self.path, os.O_RDONLY)
            try:
                for position in np.argsort(index, kind="stable"):  # in file order: the disk reads forward
                    row = self.start + int(index[position])
                    _read_fully(descriptor, rows[position * size:(position + 1) * size], self.offset + row * size)
            finally:
                os.close(descriptor)
        except OSError as error:
            raise _unreadable(error, self.path) from None
        return torch.from_numpy(out).to(self.device)


def read_whole(path: Path, offset: int, shape: tuple[int, ...]) -> np.ndarray:
    """uint8 images of `shape` at byte `offset` of the file, read into memory in one pass, then dropped from the page
    cache (held twice otherwise, until the kernel needs the room)."""
    images = np.empty(shape, dtype=np.uint8)
    try:
        descriptor = os.open(path, os.O_RDONLY)
        try:
            _read_fully(descriptor, images.data.cast("B"), offset)
            if hasattr(os, "posix_fadvise"):
                os.posix_fadvise(descriptor, 0, 0, os.POSIX_FADV_DONTNEED)
        finally:
            os.close(descriptor)
    except OSError as error:
        raise _unreadable(error, path) from None
    return images


def _read_fully(descriptor: int, target: memoryview, position: int) -> None:
    """Fill `target` from the file at `position` (a read may return less than asked; the file ending early is an
    error, not zeros)."""
    done = 0
    while done < len(target):
        got = os.preadv(descriptor, [target[done:]], position + done)
        if got == 0:
            raise OSError(0, f"it ends {len(target) - done:,} bytes early (changed or cut since it was written)")
        done += got


def _unreadable(error: OSError, path) -> StorageError:
    return StorageError(f"cannot read the decoded images from the cache: {error.strerror or error}; delete the cache "
                        f"folder to decode again", str(path))
