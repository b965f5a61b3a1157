"""Which data a run trains on: `data:` in the spec and `--data NAME|PATH` (flag > spec > fashion-mnist)."""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from ..errors import UsageError, did_you_mean

DEFAULT_DATA = "fashion-mnist"
NAMES = ("fashion-mnist", "mnist", "kmnist", "cifar10", "cifar100")  # named.py registers one reader for each, in order
MAX_SIDE = 4096  # the spec's input allows sides up to this
HOLD_OUT = 0.1  # a folder without val/ or test/ gives this share of each class to each missing split
READS = ("auto", "memory", "disk")  # a folder's decoded images: in memory where they fit (auto), or read from disk

_SIDE = {"type": "integer", "minimum": 1, "maximum": MAX_SIDE}
_SHARE = {"type": "number", "exclusiveMinimum": 0, "maximum": 0.5}
# One schema for both forms (no oneOf), so a wrong value gets its own message, not "not valid under any schema":
# string keywords apply to the string form, object keywords to the mapping.
DATA_SCHEMA = {
    "type": ["string", "object"], "minLength": 1, "additionalProperties": False, "minProperties": 1,
    "properties": {
        "name": {"enum": list(NAMES)},
        "folder": {"type": "string", "minLength": 1},
        "resize": {**_SIDE, "type": ["integer", "array"], "items": _SIDE, "minItems": 2, "maxItems": 2},
        "channels": {"enum": [1, 3]},
        "store": _SIDE,
        "read": {"enum": list(READS)},
        "normalize": {"type": "boolean"},
        "val": _SHARE,
        "test": _SHARE,
    },
}
CONVERSIONS = ("resize", "channels", "store", "read", "normalize", "val", "test")


@dataclass(frozen=True)
class DataChoice:
    """A named dataset or a folder, and how its images are converted before training."""

    name: str | None = DEFAULT_DATA
    folder: str | None = None  # absolute path of an image folder (then name is None)
    resize: tuple[int, int] | None = None  # (H, W)
    channels: int | None = None  # 1 = grey, 3 = RGB; None: as the data comes
    store: int | None = None  # a folder's images kept at this side (short side resized, centre cropped square), cropped
    # to the model's input as they train (random-resized crop) and are judged (resize and centre crop)
    read: str = "auto"  # a folder's decoded images held in memory where they fit, else read from the cache by index
    normalize: bool = False  # per-channel mean/std of the training split, else pixels in [0, 1] (the study's)
    val: float = HOLD_OUT
    test: float = HOLD_OUT

    @property
    def label(self) -> str:
        return self.name or self.folder or "?"

    def as_mapping(self) -> dict:
        """The spec's `data:` mapping that means this choice (config.yaml keeps it; resume and eval read it back)."""
        mapping: dict[str, object] = {"name": self.name} if self.name else {"folder": self.folder}
        if self.resize:
            mapping["resize"] = list(self.resize)
        for key in ("channels", "store", "normalize"):
            if getattr(self, key):
                mapping[key] = getattr(self, key)
        if self.folder:
            mapping.update(val=self.val, test=self.test)
        if self.read != "auto":
            mapping["read"] = self.read
        return mapping


def _source(text: str, where: str) -> dict:
    """A name or a folder path, as written after --data or as `data: TEXT` in a spec."""
    if text in NAMES:
        return {"name": text}
    path = Path(text).expanduser()
    if path.is_dir():
        return {"folder": str(path.resolve())}
    if path.exists():
        raise UsageError(f"{where} {text}: is a file; give a dataset name ({', '.join(NAMES)}) or a folder of images")
    looks_like_path = "/" in text or text.startswith((".", "~"))
    hint = "no such folder" if looks_like_path else f"not a dataset name{did_you_mean(text, NAMES)} and no such folder"
    raise UsageError(f"{where} {text}: {hint} (names: {', '.join(NAMES)})")


def choose_data(spec_data, flag: str | dict | None = None, spec_file: str | None = None) -> DataChoice:
    """flag > spec > fashion-mnist. The flag replaces the spec's source and keeps its conversions; a mapping as
    the flag is a whole choice (a run folder's, on resume or eval)."""
    if isinstance(flag, dict):
        mapping = dict(flag)
    else:
        if isinstance(spec_data, str):
            mapping = _source(spec_data, f"{spec_file or 'spec'}: data:")
        else:
            mapping = dict(spec_data or {})
            if "name" in mapping and "folder" in mapping:
                raise UsageError("data: give 'name' or 'folder', not both", spec_file)
            if "folder" in mapping:
                mapping.update(_source(mapping["folder"], f"{spec_file or 'spec'}: data: folder:"))
        if flag is not None:
            mapping = {key: value for key, value in mapping.items() if key in CONVERSIONS}
            mapping.update(_source(flag, "--data"))
    if mapping.get("store") is not None and "folder" not in mapping:
        raise UsageError("data: store keeps a folder's images at a size: a named dataset is kept as it comes (use "
                         "resize)", spec_file)
    if mapping.get("store") is not None and mapping.get("resize") is not None:
        raise UsageError("data: give resize (every image to that size) or store (kept at that side, cropped to the "
                         "input as it trains), not both", spec_file)
    if mapping.get("read", "auto") != "auto" and "folder" not in mapping:
        raise UsageError("data: read says where a folder's decoded images are read from: a named dataset is held in "
                         "memory", spec_file)
    resize = mapping.get("resize")
    if isinstance(resize, int):
        resize = (resize, resize)
    if "folder" not in mapping:
        mapping.setdefault("name", DEFAULT_DATA)
    return DataChoice(name=mapping.get("name"), folder=mapping.get("folder"), resize=tuple(resize) if resize else None,
                      channels=mapping.get("channels"), store=mapping.get("store"), read=mapping.get("read", "auto"),
                      normalize=bool(mapping.get("normalize", False)),
                      val=mapping.get("val", HOLD_OUT), test=mapping.get("test", HOLD_OUT))
