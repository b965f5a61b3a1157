"""From a data choice to the trainer's Splits: plan it (shape, classes, room) before any run folder exists, then
load it through the one fast path: uint8 (N, C, H, W) tensors, split by index with a fixed seed."""
from __future__ import annotations

import math
import sys
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

import torch

from ..errors import StorageError, UsageError
from .splits import SPLIT_SEED, Splits, stratified_split
from . import cache
from .choice import DataChoice
from .convert import channel_statistics, convert_images
from .decoding import Bar, Layout
from .disk_images import DiskImages, read_whole
from .folder import FolderScan, decode, native_shape, scan_folder
from .memory import check_room, short_of_room, size_text
from .named import DATASETS, NamedDataset

DECODE_PROGRESS_FROM = 2_000  # images: fewer decode in about a second, without a bar


@dataclass
class DataPlan:
    """A dataset located and sized, with the shape its images will have; nothing decoded yet."""

    choice: DataChoice
    data_dir: str | None
    shape: tuple[int, int, int]  # (C, H, W) the model sees, after conversion
    classes: int
    light_on_black: bool  # predict prepares photos like the dataset (inverted, centred) or as they are
    how: str  # where it was found
    check: str  # how it is verified
    dataset: NamedDataset | None = None
    scan: FolderScan | None = None
    download: bool = True  # a named dataset missing when it is read is fetched by torchvision
    notes: list[str] = field(default_factory=list)  # what loading did (the cache), for the run's start lines
    view: tuple[int, int] | None = None  # stored images are cropped to the spec's (H, W): check_fits sets it
    order: tuple[FolderScan, tuple[int, int, int]] | None = None  # a folder's files in split order, each split's size
    device: torch.device = torch.device("cpu")  # where training runs: a set that fits there is moved there whole

    @property
    def label(self) -> str:
        return self.choice.label

    def locate(self) -> None:
        """Find a named dataset's files (fetching them where allowed); a folder was found when it was planned."""
        if self.dataset is not None:
            self.how = self.dataset.locate(self.data_dir, self.download)

    def conversion(self) -> dict:
        return _conversion(self.choice)


def _conversion(choice: DataChoice) -> dict:
    """What a folder's cached images were converted with, and how they are ordered (the split's shares): the cache's
    key."""
    return {"resize": list(choice.resize) if choice.resize else None, "channels": choice.channels,
            "store": choice.store, "val": choice.val, "test": choice.test}


def plan_data(choice: DataChoice, data_dir: str | None, device: torch.device, find: bool = True,
              download: bool = True) -> DataPlan:
    """Locate the data (a named one only when `find`; a missing one is downloaded if `download` and the network
    allows) and work out its shape and size; refuses what would not fit in memory."""
    if choice.folder:
        return _plan_folder(choice, Path(choice.folder), data_dir, device)
    dataset = DATASETS[choice.label]
    native = dataset.shape
    shape = (choice.channels or native[0], *(choice.resize or native[1:]))
    check_room(choice.label, dataset.train_size + dataset.test_size, shape, device, native)
    data = DataPlan(choice, data_dir, shape, dataset.classes, dataset.light_on_black, "", dataset.check,
                    dataset=dataset, download=download)
    if find:
        data.locate()
    return data


def _plan_folder(choice: DataChoice, root: Path, data_dir: str | None, device: torch.device) -> DataPlan:
    if not root.is_dir():
        raise UsageError("no such folder of images", str(root))
    scan = scan_folder(root)
    order = ordered_scan(scan, choice)
    manifest = cache.peek(root, _conversion(choice), order[0].fingerprint())
    stored = (choice.store, choice.store) if choice.store else choice.resize
    shape = tuple(manifest["shape"][1:]) if manifest else native_shape(scan, choice.channels, stored)
    if choice.read == "memory":  # asked to hold it all: refused now if it cannot be (auto and disk read by index)
        check_room(f"{root} (data: {{read: memory}})", len(scan.files), shape, device)
    layout = "/".join(scan.splits) + " folders" if scan.splits else "one folder per class"
    return DataPlan(choice, data_dir, shape, len(scan.class_names), False,
                    f"image folder {root} ({len(scan.files):,} images, {len(scan.class_names)} classes, {layout})",
                    "every image decoded by Pillow", scan=scan, device=device, order=order)


def check_fits(data: DataPlan, spec) -> None:
    """The spec's input and classes against the data, with the conversion that would make them agree; images stored
    larger (data: {store: N}) are cropped to the input, which sets the plan's view."""
    wanted = tuple(spec.input)
    if data.choice.store:
        if wanted[0] != data.shape[0] or max(wanted[1:]) > data.choice.store:
            raise UsageError(f"spec wants input {wanted}; {data.label} is stored at {data.shape}, cropped to the input: "
                             f"write input: [{data.shape[0]}, H, W] with H and W at most {data.choice.store}, or store "
                             f"larger", spec.file)
        data.view = (wanted[1], wanted[2])
    elif wanted != data.shape:
        fix = {}
        if wanted[1:] != data.shape[1:]:
            fix["resize"] = wanted[1] if wanted[1] == wanted[2] else list(wanted[1:])
        if wanted[0] != data.shape[0]:
            fix["channels"] = wanted[0]
        text = ", ".join(f"{key}: {value}" for key, value in fix.items())
        convertible = wanted[0] in (1, 3) or wanted[0] == data.shape[0]
        hint = f"add data: {{{text}}} to convert, or write input: {list(data.shape)}" if convertible \
            else f"write input: {list(data.shape)}"
        raise UsageError(f"spec wants input {wanted}; {data.label} gives {data.shape}; {hint}", spec.file)
    if spec.classes != data.classes:
        raise UsageError(f"spec has classes: {spec.classes}; {data.label} has {data.classes} classes "
                         f"(end with 'fc {data.classes}' and write classes: {data.classes})", spec.file)


def split_sizes(splits: Splits) -> dict:
    return {"train": len(splits.train_y), "validation": len(splits.val_y), "test": len(splits.test_y)}


def check_unchanged(recorded: dict, data: DataPlan, splits: Splits, where: str) -> None:
    """The data a run recorded in config.yaml against the data found now (a resume, an eval on the run's own data):
    a folder whose images changed would resume or test on other splits than the run's."""
    then = {key: recorded.get(key) for key in ("train", "validation", "test")}
    now = split_sizes(splits)
    if data.scan is not None and recorded.get("contents") not in (None, data.scan.contents()):
        changed = "its images were added, removed or changed"
    elif all(isinstance(count, int) for count in then.values()) and then != now:
        changed = "/".join(map(str, then.values())) + " train/validation/test images then, " + "/".join(map(str, now.values())) + " now"
    elif splits.normalization != recorded.get("normalization"):
        changed = "its statistics changed"
    else:
        return
    raise UsageError(f"the data changed since this run started ({data.label}: {changed}); put it back as it was, or "
                     f"start a new run", where)


def load_data(data: DataPlan, train_limit: int | None = None, val_limit: int | None = None) -> Splits:
    """The three splits as uint8 tensors on the CPU, converted, with the normalisation statistics if asked for."""
    if data.scan is not None:
        splits = _load_folder(data, data.scan)
    elif data.dataset is not None:
        splits = _load_named(data, data.dataset)
    else:
        raise UsageError(f"{data.label}: neither a named dataset nor a folder")
    splits.view = data.view
    if train_limit is not None:  # a view: nothing is read
        kept = min(train_limit, len(splits.train_y))
        splits.train_x, splits.train_y = splits.train_x.narrow(0, 0, kept), splits.train_y.narrow(0, 0, kept)
    if val_limit is not None:
        kept = min(val_limit, len(splits.val_y))
        splits.val_x, splits.val_y = splits.val_x.narrow(0, 0, kept), splits.val_y.narrow(0, 0, kept)
    if data.choice.normalize:
        mean, std = channel_statistics(splits.train_x)
        splits.normalization = {"mean": mean, "std": std}
    return splits


def _load_named(data: DataPlan, dataset: NamedDataset) -> Splits:
    raw = dataset.read(data.data_dir, data.download)
    data.how = raw.how
    train_x = convert_images(raw.train_x, data.choice.channels, data.choice.resize)
    test_x = convert_images(raw.test_x, data.choice.channels, data.choice.resize)
    train, val = stratified_split(raw.train_y, dataset.val_per_class)
    return Splits(train_x[train], raw.train_y[train], train_x[val], raw.train_y[val], test_x, raw.test_y,
                  class_names=raw.class_names)


def _load_folder(data: DataPlan, scan: FolderScan) -> Splits:
    """The folder's splits, decoded into the cache first where they are not there yet: stored in split order, so each
    split is a range of the file; held in memory where they fit, else read from the file by index as training goes."""
    ordered, (train, val, test) = data.order or ordered_scan(scan, data.choice)
    root, conversion = scan.root, data.conversion()
    cached = cache.load(root, conversion, ordered.fingerprint())
    if cached:
        layout, _, manifest = cached
        data.notes.append(f"decoded images from the cache ({cache.cache_dir(root, conversion)}, made "
                          f"{manifest['created']})")
        images = _resident(data, layout)
    else:
        decoded = _decode(data, ordered, root, conversion)
        images = decoded if isinstance(decoded, torch.Tensor) else _resident(data, decoded)
    labels = torch.tensor([item.label for item in ordered.files], dtype=torch.long)
    train_x, val_x, test_x = images.narrow(0, 0, train), images.narrow(0, train, val), images.narrow(0, train + val, test)
    train_y, val_y, test_y = labels.narrow(0, 0, train), labels.narrow(0, train, val), labels.narrow(0, train + val, test)
    return Splits(train_x, train_y, val_x, val_y, test_x, test_y, class_names=scan.class_names)


def _resident(data: DataPlan, layout: Layout) -> torch.Tensor | DiskImages:
    """The cached images read into memory where they fit there (data: {read: auto}) or are asked to be (read:
    memory), else a reader that takes them from the file by index (read: disk, or too big)."""
    need = int(math.prod(layout.shape))
    short = short_of_room(need, data.device)  # on a GPU, the whole set goes there, or batches as they are read
    if data.choice.read == "memory" or data.choice.read == "auto" and short is None:
        return torch.from_numpy(read_whole(layout.path, layout.offset, layout.shape))
    why = f"they need {size_text(need)} and {size_text(short[1])} is free" \
        if short is not None and data.choice.read == "auto" else "as asked (data: {read: disk})"
    data.notes.append(f"decoded images read from the cache by index as training goes, not held in memory: {why}")
    return DiskImages(str(layout.path), layout.offset, layout.shape[1:], 0, layout.shape[0])


def _decode(data: DataPlan, ordered: FolderScan, root: Path, conversion: dict) -> Layout | torch.Tensor:
    """Decode the folder into the cache, with every core (where it is in the file); where the cache folder cannot be
    written, into memory (if it fits there: it says so either way)."""
    folder = cache.cache_dir(root, conversion)
    problem = cache.writable(folder)
    if problem is None:
        title = f"decoding {len(ordered.files):,} images (once: then read from the cache)"
        with Bar(title) as bar:
            kept, workers = cache.decode(root, conversion, ordered, data.shape,
                                   bar if len(ordered.files) >= DECODE_PROGRESS_FROM else None)
        loaded = cache.load(root, conversion, ordered.fingerprint())
        if loaded is None:
            raise StorageError(f"the cache just written in {folder} cannot be read back", str(root))
        earlier = f" ({kept:,} of them kept from an interrupted decode)" if kept else ""
        data.notes.append(f"decoded {len(ordered.files):,} images{earlier} with {workers} process{'es' * (workers != 1)} "
                          f"into the cache {folder}")
        return loaded[0]
    check_room(f"{root} (the cache folder {folder} cannot be written: {problem}; so in memory)", len(ordered.files),
               data.shape, torch.device("cpu"))
    with _progress(len(ordered.files)) as advance:
        images, _ = decode(ordered, data.shape, advance, stored=data.choice.store is not None)
    data.notes.append(f"decoded {len(ordered.files):,} images into memory: the cache folder {folder} cannot be written "
                      f"({problem}; $FMNIST_CACHE sets another)")
    return torch.from_numpy(images)


def ordered_scan(scan: FolderScan, choice: DataChoice) -> tuple[FolderScan, tuple[int, int, int]]:
    """The folder's files in split order (train, shuffled with the fixed seed; validation; test), with each split's
    size: validation and test are held out of train/ by their shares, per class, where their folders are missing."""
    labels = torch.tensor([item.label for item in scan.files], dtype=torch.long)
    parts = {split: torch.tensor([i for i, f in enumerate(scan.files) if f.split == split], dtype=torch.long)
             for split in ("", "train", "val", "test")}
    pool = torch.cat([parts[""], parts["train"]])  # what validation and test are held out of, when missing
    val, test = parts["val"], parts["test"]
    shares = [("test", choice.test) if not len(test) else None, ("val", choice.val) if not len(val) else None]
    held = _hold_out(labels, pool, [s for s in shares if s], len(scan.class_names), scan.root)
    train = held.pop("train")
    test, val = held.get("test", test), held.get("val", val)
    trained = torch.bincount(labels[train], minlength=len(scan.class_names))
    if (trained == 0).any():
        name = scan.class_names[int((trained == 0).nonzero()[0])]
        raise UsageError(f"class '{name}' has no training image (all of its images went to validation or test); add "
                         f"images of it or hold out smaller shares (data: {{val: ..., test: ...}})", str(scan.root))
    train = train[torch.randperm(len(train), generator=torch.Generator().manual_seed(SPLIT_SEED))]  # for --train-limit
    order = torch.cat([train, val, test]).tolist()
    return FolderScan(scan.root, [scan.files[i] for i in order], scan.class_names, scan.splits), (len(train), len(val),
                                                                                                 len(test))


def _hold_out(labels: torch.Tensor, pool: torch.Tensor, shares: list[tuple[str, float]], classes: int, root: Path) -> dict:
    """Stratified: each named split takes its share of every class of `pool` (fixed seed); the rest is 'train'."""
    generator = torch.Generator().manual_seed(SPLIT_SEED)
    result: dict[str, list[torch.Tensor]] = {name: [] for name, _ in shares}
    train = []
    for label in range(classes):
        members = pool[labels[pool] == label]
        members = members[torch.randperm(len(members), generator=generator)]
        start = 0
        for name, share in shares:
            count = int(round(len(members) * share))
            result[name].append(members[start:start + count])
            start += count
        train.append(members[start:])
    out = {name: torch.cat(parts).sort().values for name, parts in result.items()}
    out["train"] = torch.cat(train)
    for name, indices in out.items():
        if not len(indices):
            raise UsageError(f"too few images to hold out a {name} split ({len(pool):,} images in {classes} classes); "
                             f"add more images or give a {name}/ folder", str(root))
    return out


@contextmanager
def _progress(total: int):
    """A progress bar on a terminal for a long first decode (removed when it ends, however it ends)."""
    if total < DECODE_PROGRESS_FROM or not sys.stderr.isatty():
        yield None
        return
    from rich.progress import Progress

    with Progress(transient=True) as bar:
        task = bar.add_task("decoding images (once: then cached)", total=total)
        yield lambda done: bar.update(task, completed=done)
