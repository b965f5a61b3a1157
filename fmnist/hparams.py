"""Training hyper-parameters: names, defaults (the study's recipe) and their rules, in one place.

The spec schema's `train:` section and the runner's CLI flags are both made from this table.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True)
class HParam:
    name: str
    default: Any
    schema: dict  # JSON Schema for the value
    help: str


LOSSES = ("softmax", "sigmoid")
OPTIMIZERS = ("adam", "adamw", "sgd")
SCHEDULES = ("constant", "cosine", "onecycle")

HPARAMS: dict[str, HParam] = {h.name: h for h in (
    HParam("batch_size", 128, {"type": "integer", "minimum": 1}, "images per training step"),
    HParam("lr", 4e-3, {"type": "number", "exclusiveMinimum": 0}, "learning rate (the peak one under a schedule)"),
    HParam("rs", 1e-3, {"type": "number", "minimum": 0}, "L2 regularisation strength (the optimizer's weight_decay)"),
    HParam("num_epochs", 10, {"type": "integer", "minimum": 1}, "training epochs"),
    HParam("dropout", None, {"type": "number", "minimum": 0, "exclusiveMaximum": 1},
           "override p of every dropout layer (default: as written in the spec)"),
    HParam("loss", "softmax", {"enum": list(LOSSES)}, "softmax = cross-entropy; sigmoid = one-vs-all binary cross-entropy"),
    HParam("augment", False, {"type": "boolean"}, "random crop (pad 4) and horizontal flip, per sample"),
    HParam("optimizer", "adam", {"enum": list(OPTIMIZERS)}, "adam (the study's), adamw or sgd"),
    HParam("momentum", 0.9, {"type": "number", "minimum": 0, "exclusiveMaximum": 1}, "sgd momentum"),
    HParam("nesterov", False, {"type": "boolean"}, "sgd with Nesterov momentum"),
    HParam("schedule", "constant", {"enum": list(SCHEDULES)}, "learning-rate schedule over the whole run, per step"),
    HParam("warmup_epochs", 0, {"type": "number", "minimum": 0}, "linear warm-up before the schedule (onecycle: 30% of the run if 0)"),
    HParam("label_smoothing", 0.0, {"type": "number", "minimum": 0, "exclusiveMaximum": 1}, "label smoothing of the targets"),
    HParam("seed", 0, {"type": "integer", "minimum": 0}, "seed for initialisation, shuffling, dropout and augmentation (the split is fixed)"),
)}

TRAIN_SCHEMA = {
    "type": "object",
    "additionalProperties": False,
    "properties": {name: h.schema for name, h in HPARAMS.items()},
}


# The study's search: learning rate and L2 strength log-uniform, batch size from a set, epochs in a range.
DEFAULT_SPACE = {
    "lr": {"low": 1e-4, "high": 1e-2, "log": True},
    "rs": {"low": 1e-5, "high": 1e-2, "log": True},
    "batch_size": {"choices": [32, 64, 128, 256]},
    "num_epochs": {"low": 5, "high": 15},
}
SPACE_SCHEMA = {
    "type": "object",
    "additionalProperties": False,
    "properties": {name: {"oneOf": [
        {"type": "object", "required": ["low", "high"], "additionalProperties": False,
         "properties": {"low": {"type": "number"}, "high": {"type": "number"}, "log": {"type": "boolean"}}},
        {"type": "object", "required": ["choices"], "additionalProperties": False,
         "properties": {"choices": {"type": "array", "minItems": 1}}},
    ]} for name in ("lr", "rs", "batch_size", "num_epochs", "dropout")},
}


def resolve(spec_train: dict, flags: dict) -> dict:
    """CLI flag > spec `train:` section > the study's defaults; flags given as None are not set."""
    import jsonschema

    from .errors import UsageError

    given = {name: value for name, value in flags.items() if value is not None}
    for name, value in given.items():
        try:
            jsonschema.validate(value, HPARAMS[name].schema)
        except jsonschema.ValidationError as error:
            raise UsageError(f"--{name.replace('_', '-')} {value}: {error.message}") from None
    return {name: given.get(name, spec_train.get(name, h.default)) for name, h in HPARAMS.items()}
