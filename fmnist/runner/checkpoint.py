"""The checkpoint format: what best.pt and last.pt hold, written with fmnist's format tag and a digest of every tensor,
and read back safely (weights_only: no code in a file can run) and checked, so a damaged or foreign file is one line."""
from __future__ import annotations

import hashlib
import io
import pickle
import warnings
import zipfile
from dataclasses import asdict, dataclass, fields
from pathlib import Path

import torch

from ..atomic import atomic_write
from ..errors import UsageError, one_line

FORMAT = "fmnist-checkpoint-v1"


@dataclass
class Checkpoint:
    """One epoch of a run: best.pt (the best validation epoch: its model, for eval, predict, export and the test) or
    last.pt (the last finished epoch: everything a resume needs). A field a kind does not hold stays None."""

    epoch: int
    spec: dict  # the spec's plain data, to refuse another run's file
    hparams: dict
    model: dict | None = None  # best.pt: the weights that are tested (the EMA's, when on)
    optimizer: dict | None = None
    val_acc: float | None = None
    class_names: list[str] | None = None
    trainer: dict | None = None  # last.pt: model, optimizer, schedule, RNG states
    history: list[dict] | None = None
    best: dict | None = None  # last.pt: {epoch, val_acc} of the best epoch so far

    REQUIRED = {"last.pt": ("epoch", "trainer", "history", "best", "spec", "hparams"),
                "best.pt": ("epoch", "model", "spec", "hparams")}

    def save(self, path: Path) -> None:
        """Written whole or not at all, with the format tag and the digest of its tensors."""
        payload = {key: value for key, value in asdict(self).items() if value is not None}
        buffer = io.BytesIO()
        torch.save({"format": FORMAT, "digest": tensor_digest(payload), **payload}, buffer)
        atomic_write(path, buffer.getvalue())

    @classmethod
    def load(cls, path: Path) -> "Checkpoint":
        """The checkpoint at `path`, checked: fmnist's format, the keys its kind (by file name) needs, its digest,
        finite weights; anything else is one clear line."""
        data = _load_checked(path, cls.REQUIRED.get(path.name, ()))
        known = {item.name for item in fields(cls)}
        return cls(**{key: value for key, value in data.items() if key in known})


def tensor_digest(value, hasher=None) -> str:
    """SHA-256 over every tensor inside a checkpoint (names, dtypes, shapes, bytes): a changed byte or a NaN written
    over the weights no longer matches."""
    hasher = hasher or hashlib.sha256()
    if isinstance(value, torch.Tensor):
        flat = value.detach().cpu().contiguous().reshape(-1)
        hasher.update(f"{value.dtype}{tuple(value.shape)}".encode())
        hasher.update(flat.view(torch.uint8).numpy().tobytes() if flat.numel() else b"")
    elif isinstance(value, dict):
        for key in sorted(value, key=str):
            hasher.update(str(key).encode())
            tensor_digest(value[key], hasher)
    elif isinstance(value, (list, tuple)):
        for item in value:
            tensor_digest(item, hasher)
    return hasher.hexdigest()


def _load_checked(path: Path, required: tuple[str, ...]) -> dict:
    """A checkpoint written by fmnist, loaded safely (weights_only: no code runs) and checked against its digest;
    anything else is one clear line."""
    if not path.is_file():
        raise UsageError("no such checkpoint", str(path))
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # torch's pickle warnings are for its own developers, several lines long
            checkpoint = torch.load(path, map_location="cpu", weights_only=True)
    except (pickle.UnpicklingError, RuntimeError, EOFError, zipfile.BadZipFile, ValueError, OSError, KeyError,
            AttributeError, TypeError, IndexError, UnicodeDecodeError) as error:
        first = one_line(error, 150)
        raise UsageError(f"damaged or not an fmnist checkpoint ({first})", str(path)) from None
    if not isinstance(checkpoint, dict) or checkpoint.get("format") != FORMAT:
        raise UsageError(f"not an fmnist checkpoint (expected format {FORMAT})", str(path))
    missing = [key for key in required if key not in checkpoint]
    if missing:
        raise UsageError(f"damaged or not an fmnist checkpoint (it lacks {', '.join(missing)})", str(path))
    digest = checkpoint.pop("digest", None)
    payload = {key: value for key, value in checkpoint.items() if key != "format"}
    if digest is not None and digest != tensor_digest(payload):
        raise UsageError("damaged checkpoint: its weights do not match the digest written with them", str(path))
    weights = checkpoint.get("model", checkpoint.get("trainer", {}).get("model") if isinstance(checkpoint.get("trainer"), dict) else None)
    if isinstance(weights, dict) and any(isinstance(t, torch.Tensor) and t.is_floating_point() and not bool(torch.isfinite(t).all())
                                         for t in weights.values()):
        raise UsageError("damaged checkpoint: its weights hold NaN or infinity", str(path))
    return checkpoint
