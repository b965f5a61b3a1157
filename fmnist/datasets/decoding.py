"""A folder of images decoded once into the cache: every core decoding chunks of images in a process pool, each
chunk written into a preallocated file at its place, the finished chunks noted as they end, so an interrupted decode
keeps them and the next run decodes only the rest.

A cache is used only once its manifest is written, after every chunk: a half-written one never is. A file that
changes while the folder is decoded (its size or time no longer the scan's) stops the decode in one line.
"""
from __future__ import annotations

import os
import signal
import sys
import time
from concurrent.futures import FIRST_COMPLETED, ProcessPoolExecutor, wait
from dataclasses import dataclass
from multiprocessing import get_context
from pathlib import Path

import numpy as np

from ..console import plain_interval
from ..errors import StorageError, UsageError, one_line
from .folder import FolderScan
from .images import READ_ERRORS, fit_image, fit_stored, open_image, unreadable

CHUNK = 512  # images a worker decodes in one go: about a second of work for small images, a few for photos
CHUNK_BYTES = 16 * 2**20  # and at most this much decoded: a worker holds one chunk in memory
CHUNK_ENV = "FMNIST_DECODE_CHUNK"  # another chunk size (a test, a slow disk)


def chunk_size(image_bytes: int) -> int:
    """Images per chunk: CHUNK, fewer for large images ($FMNIST_DECODE_CHUNK: that many instead)."""
    text = os.environ.get(CHUNK_ENV, "").strip()
    if text.isdigit() and int(text) > 0:
        return int(text)
    return max(1, min(CHUNK, CHUNK_BYTES // max(1, image_bytes)))


WORKERS_ENV = "FMNIST_DECODE_WORKERS"  # fewer decoding processes than cores (a shared machine, a benchmark)


def decode_workers() -> int:
    """Every core this process may use ($FMNIST_DECODE_WORKERS: that many instead)."""
    text = os.environ.get(WORKERS_ENV, "").strip()
    if text.isdigit() and int(text) > 0:
        return int(text)
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except AttributeError:  # not Linux
        return max(1, os.cpu_count() or 1)


@dataclass(frozen=True)
class Layout:
    """Where the images go: a .npy file of uint8 (N, C, H, W), its header `offset` bytes long."""

    path: Path
    offset: int
    shape: tuple[int, int, int, int]

    @property
    def image_bytes(self) -> int:
        return self.shape[1] * self.shape[2] * self.shape[3]


class FileChanged(UsageError):
    """An image changed while the folder was being decoded."""


def create(path: Path, shape: tuple[int, int, int, int]) -> Layout:
    """A .npy file of `shape` uint8, its whole size allocated now: a disk without room says so here, in one line,
    not as a failed write half-way (ENOSPC), or a crash (a write into a mapped page the disk cannot hold)."""
    header = _npy_header(shape)
    size = len(header) + int(np.prod(shape))
    descriptor = os.open(path, os.O_RDWR | os.O_CREAT | os.O_TRUNC, 0o644)
    try:
        os.write(descriptor, header)
        if hasattr(os, "posix_fallocate"):
            os.posix_fallocate(descriptor, 0, size)
        else:
            os.ftruncate(descriptor, size)
    except OSError:
        os.close(descriptor)
        path.unlink(missing_ok=True)
        raise
    os.close(descriptor)
    return Layout(path, len(header), shape)


def existing(path: Path, shape: tuple[int, int, int, int]) -> Layout | None:
    """The layout of a partial file made by create() for `shape`, or None when it is not that."""
    header = _npy_header(shape)
    try:
        with open(path, "rb") as stream:
            if stream.read(len(header)) != header:
                return None
        if path.stat().st_size != len(header) + int(np.prod(shape)):
            return None
    except OSError:
        return None
    return Layout(path, len(header), shape)


def _npy_header(shape: tuple[int, ...]) -> bytes:
    """The .npy header of a C-ordered uint8 array of `shape` (numpy's format 1.0), so np.load can map the file."""
    import io

    buffer = io.BytesIO()
    np.lib.format.write_array_header_1_0(buffer, {"descr": "|u1", "fortran_order": False, "shape": tuple(shape)})
    return buffer.getvalue()


def _decode_chunk(root: str, files: list[tuple[str, int, int]], first: int, layout: Layout, stored: bool) -> int:
    """In a worker: decode `files` (path, size, mtime_ns) into the file at their places from `first`, each resized to
    the layout's size or, `stored`, its short side resized and its centre cropped; returns how many. A file whose
    size or time is not the scan's is refused: it changed since the folder was scanned."""
    channels, height, width = layout.shape[1:]
    block = np.empty((len(files), channels, height, width), dtype=np.uint8)
    for position, (relative, size, mtime_ns) in enumerate(files):
        path = Path(root) / relative
        try:
            stat = path.stat()
        except OSError as error:
            raise FileChanged(f"changed while the folder was decoded ({error.strerror}); run again", str(path)) from None
        if (stat.st_size, stat.st_mtime_ns) != (size, mtime_ns):
            raise FileChanged("changed while the folder was decoded (its size or time is not what the scan saw); run "
                              "again: the images decoded so far are kept only if the folder is as it was", str(path))
        try:
            with open_image(path) as opened:
                pixels = fit_stored(opened, channels, height) if stored else fit_image(opened, (channels, height, width))
                block[position] = pixels.transpose(2, 0, 1)
        except READ_ERRORS as error:
            raise unreadable(path, error) from None
    descriptor = os.open(layout.path, os.O_WRONLY)
    try:
        os.pwrite(descriptor, block.tobytes(), layout.offset + first * layout.image_bytes)
    finally:
        os.close(descriptor)
    return len(files)


def _quiet_worker() -> None:
    """A worker leaves Ctrl-C to the decoding process, which stops the pool and keeps what is done, and ends itself
    when that process is gone (killed by the OOM killer or SIGKILL: nothing else would tell it)."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    signal.signal(signal.SIGTERM, signal.SIG_DFL)
    import threading

    parent = os.getppid()
    threading.Thread(target=_end_with, args=(parent,), daemon=True).start()


def _end_with(parent: int) -> None:
    """Exit this worker as soon as `parent` is no longer its parent (re-parented: the parent died)."""
    while os.getppid() == parent:
        time.sleep(0.5)
    os._exit(1)


def decode_into(scan: FolderScan, layout: Layout, done_log: Path, progress=None, stored: bool = False) -> int:
    """Decode the images not in `done_log` into `layout`'s file in chunks, with every core; each finished chunk is
    appended to `done_log` as its range; returns how many processes decoded. progress(images done, images in all) as
    chunks end. Interrupted, the finished chunks stay noted; a problem in an image is one line (UsageError), a full
    disk one line (StorageError)."""
    size = chunk_size(layout.image_bytes)
    todo = [range(start, min(start + size, gap.stop)) for gap in missing(read_done(done_log), len(scan.files))
            for start in range(gap.start, gap.stop, size)]
    done = len(scan.files) - sum(len(chunk) for chunk in todo)
    if progress:
        progress(done, len(scan.files))
    if not todo:
        return 0
    context = get_context("spawn")  # the decoding process holds torch's threads: a forked worker could deadlock
    workers = min(decode_workers(), len(todo))
    pool = ProcessPoolExecutor(max_workers=workers, mp_context=context, initializer=_quiet_worker)
    pending: dict = {}
    try:
        queue = iter(todo)
        for chunk in queue:
            pending[_submit(pool, scan, chunk, layout, stored)] = chunk
            if len(pending) >= 2 * workers:
                break
        while pending:
            finished_now, _ = wait(pending, return_when=FIRST_COMPLETED)
            for future in finished_now:
                chunk = pending.pop(future)
                future.result()  # a worker's problem is raised here, as its own one-line error
                with open(done_log, "a") as log:
                    log.write(f"{chunk.start} {chunk.stop}\n")
                done += len(chunk)
                if progress:
                    progress(done, len(scan.files))
                following = next(queue, None)
                if following is not None:
                    pending[_submit(pool, scan, following, layout, stored)] = following
    except OSError as error:
        raise StorageError(f"cannot write the decoded images: {error.strerror or one_line(error)} (the chunks decoded so "
                           f"far are kept for the next run)", str(layout.path)) from None
    finally:
        for future in pending:
            future.cancel()
        pool.shutdown(wait=True, cancel_futures=True)
    return workers


def _submit(pool, scan: FolderScan, chunk: range, layout: Layout, stored: bool):
    files = [(item.path, item.size, item.mtime_ns) for item in (scan.files[index] for index in chunk)]
    return pool.submit(_decode_chunk, str(scan.root), files, chunk.start, layout, stored)


def missing(done: list[range], total: int) -> list[range]:
    """The ranges of images 0..total-1 that no range in `done` covers."""
    gaps, position = [], 0
    for finished in sorted(done, key=lambda r: r.start):
        if finished.start > position:
            gaps.append(range(position, min(finished.start, total)))
        position = max(position, finished.stop)
    if position < total:
        gaps.append(range(position, total))
    return [gap for gap in gaps if len(gap)]


def images_done(done_log: Path, total: int) -> int:
    """How many of the `total` images the chunks in `done_log` hold."""
    return total - sum(len(gap) for gap in missing(read_done(done_log), total))


def read_done(done_log: Path) -> list[range]:
    """The ranges of images a decode finished, from its log (a line cut short by a kill is ignored)."""
    try:
        lines = done_log.read_text().splitlines()
    except OSError:
        return []
    ranges = []
    for line in lines:
        parts = line.split()
        if len(parts) == 2 and all(part.isdigit() for part in parts) and int(parts[0]) < int(parts[1]):
            ranges.append(range(int(parts[0]), int(parts[1])))
    return ranges


class Bar:
    """A progress bar with images/s and time left on a terminal; a plain line now and then otherwise."""

    def __init__(self, title: str, every: float | None = None):
        self.title, self.every = title, every if every is not None else plain_interval()
        self.bar = None
        self.task = None
        self.started = time.monotonic()
        self.said = self.started
        self.first: tuple[float, int] | None = None  # when and where the first report came (a resumed decode starts on)

    def __enter__(self):
        if sys.stderr.isatty():
            from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

            self.bar = Progress(TextColumn(self.title), BarColumn(), MofNCompleteColumn(),
                                TextColumn("{task.fields[rate]:,.0f} images/s"), TimeRemainingColumn(), transient=True)
            self.bar.__enter__()
        return self

    def __call__(self, done: int, total: int) -> None:
        now = time.monotonic()
        if self.first is None:
            self.first = (now, done)
        elapsed = now - self.first[0]
        rate = (done - self.first[1]) / elapsed if elapsed > 0 else 0.0
        if self.bar is not None:
            if self.task is None:
                self.task = self.bar.add_task("decode", total=total, rate=0.0)
            self.bar.update(self.task, completed=done, rate=rate)
        elif now - self.said >= self.every and done < total:
            self.said = now
            left = (total - done) / rate if rate > 0 else float("nan")
            print(f"{self.title}: {done:,}/{total:,} images, {rate:,.0f} images/s, about {left / 60:.1f} min left",
                  file=sys.stderr, flush=True)

    def __exit__(self, *exc):
        if self.bar is not None:
            self.bar.__exit__(*exc)
        return False


