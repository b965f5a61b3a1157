"""--init: the weights a fresh run starts from, read and checked before any run folder exists.

A file is a plain state dict (torchvision's, timm's), one under 'state_dict' or 'model', or an fmnist checkpoint
(verified against its digest, as `fmnist eval` verifies it); torchvision:NAME is torchvision's published weights.
Whatever cannot be a start (an empty, truncated or foreign file, a run folder, a run's last.pt, weights holding NaN,
a file none of whose tensors fits the model) is one line that says what it is and what to give instead.
"""
from __future__ import annotations

import pickle
import warnings
import zipfile
from dataclasses import dataclass
from pathlib import Path

import torch

from ..builder.weights import TORCHVISION, load_mapped, map_state_dict, torchvision_order, torchvision_weights
from ..errors import UsageError, one_line
from .checkpoint import FORMAT, Checkpoint

STATE_DICT_KEYS = ("model", "state_dict", "model_state_dict")  # where training scripts keep the weights in a dict
_UNREADABLE = (pickle.UnpicklingError, RuntimeError, EOFError, zipfile.BadZipFile, ValueError, OSError, KeyError,
               AttributeError, TypeError, IndexError, UnicodeDecodeError)  # torch.load's reasons vary with the damage


@dataclass
class InitialWeights:
    """--init: the state dict read, where it came from, and whether a head without partner may stay fresh."""

    state: dict
    source: str
    fresh_head: bool
    order: list[str] | None = None  # the file's tensors in the order its network uses them, where it can be built

    def load_into(self, model) -> str:
        return load_mapped(model, self.state, self.source, self.fresh_head, self.order)


def initial_weights(spec, init: str | None, fresh_head: bool) -> InitialWeights | None:
    """--init's weights, already checked against the spec's model (built on the meta device: no memory)."""
    if init is None:
        return None
    from ..builder.build import build_model

    order = torchvision_order(init[len(TORCHVISION):], tuple(spec.input)) if init.startswith(TORCHVISION) else None
    weights = InitialWeights(read_weights(init), init, fresh_head, order)
    try:
        with torch.device("meta"):
            mapping = map_state_dict(weights.state, build_model(spec, check_expect=False), fresh_head, order)
    except UsageError as error:
        raise UsageError(error.message, init) from None
    if not mapping.state:
        raise UsageError(f"none of the file's {len(weights.state)} tensors fits the model, so nothing would be "
                         f"loaded and training would start from scratch: give weights of this architecture", init)
    return weights


def read_weights(source: str) -> dict:
    """The state dict named by --init, every tensor finite; anything else is a UsageError that says what it is."""
    if not source.strip():
        raise UsageError("--init '': no weights file named (an unset variable?)")
    if source.startswith(TORCHVISION):
        return _finite(torchvision_weights(source[len(TORCHVISION):]), source)
    path = Path(source)
    if path.is_dir():
        hint = f": start from its best epoch, --init {path / 'best.pt'}" if (path / "config.yaml").is_file() else ""
        raise UsageError(f"a folder, not a weights file{' (an fmnist run folder)' if hint else ''}{hint}", source)
    if not path.is_file():
        raise UsageError("no such weights file (a .pt/.pth state dict, an fmnist checkpoint, or torchvision:NAME)", source)
    if path.stat().st_size == 0:
        raise UsageError("an empty file, not weights", source)
    loaded = _load(path, source)
    if isinstance(loaded, dict) and loaded.get("format") == FORMAT:
        loaded = _checkpoint_weights(path, source)
    for key in STATE_DICT_KEYS:
        if isinstance(loaded, dict) and isinstance(loaded.get(key), dict):
            loaded = loaded[key]
            break
    if not isinstance(loaded, dict) or not any(isinstance(value, torch.Tensor) for value in loaded.values()):
        raise UsageError(f"holds {_what(loaded)}, not a state dict of tensors (save model.state_dict())", source)
    names = [key for key in loaded if not isinstance(key, str)]
    if names:
        raise UsageError(f"holds a dict whose keys are not all tensor names (e.g. {names[0]!r}): not a state dict", source)
    return _finite(loaded, source)


def _load(path: Path, source: str):
    """torch.load, safely (weights_only: no code in the file runs) and quietly (its pickle warnings are for its own
    developers, several lines long)."""
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            return torch.load(path, map_location="cpu", weights_only=True)
    except _UNREADABLE as error:
        if not zipfile.is_zipfile(path):  # torch.save writes a zip archive; torch's own text here is about its defaults
            raise UsageError("cannot read weights: not a complete file written by torch.save (truncated, or a plain "
                             "pickle or another format); save model.state_dict() with torch.save", source) from None
        raise UsageError(f"cannot read weights: {one_line(error, 100)} (save model.state_dict(), not the model)",
                         source) from None


def _checkpoint_weights(path: Path, source: str) -> dict:
    """An fmnist checkpoint's model, verified as `fmnist eval` verifies it; a run's last.pt is no start."""
    checkpoint = Checkpoint.load(path)
    if checkpoint.model is None:
        run = path.parent
        raise UsageError(f"a run's last.pt (what --resume continues from, optimizer and all), not weights to start "
                         f"from: give --init {run / 'best.pt'}, or continue that run with 'fmnist run --resume {run}'",
                         source)
    return checkpoint.model


def _finite(state: dict, source: str) -> dict:
    """Weights holding NaN or infinity cannot be trained from: refused, naming the first such tensor."""
    for name, tensor in state.items():
        if isinstance(tensor, torch.Tensor) and tensor.is_floating_point() and not bool(torch.isfinite(tensor).all()):
            raise UsageError(f"tensor '{name}' holds NaN or infinity: these weights cannot be trained from", source)
    return state


def _what(value) -> str:
    """What a file holds, in a few words, when it is not a state dict."""
    if isinstance(value, dict):
        return "a dict without tensors" if value else "an empty dict"
    return f"a {type(value).__name__}"
