"""Training hyper-parameters: names, defaults (the study's recipe) and their rules, in one place.

The spec schema's `train:` section and the runner's CLI flags are both made from this table.
"""
from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True)
class HParam:
    name: str
    default: Any
    schema: dict  # JSON Schema for the value
    help: str


LOSSES = ("softmax", "sigmoid", "sigmoid-ce")
STUDY_SIGMOID = "sigmoid"  # the reading of the study's sigmoid closest to its Table 1 (docs/results.md, The sigmoid column)
PRECISIONS = ("auto", "fp32", "bf16")  # --precision: auto = bf16 where the device does it natively
MAX_CROP_PAD = 14  # half a 28-pixel image: a larger shift would crop the object out entirely
AUGMENT_MAPPING = {"type": "object", "additionalProperties": False,
                   "properties": {"crop": {"type": "integer", "minimum": 0, "maximum": MAX_CROP_PAD},
                                  "flip": {"type": "boolean"}}}
MAX_MIX_ALPHA = 100  # Beta(a, a) is a spike at 0.5 long before this
OPTIMIZERS = ("adam", "adamw", "sgd")
SCHEDULES = ("constant", "cosine", "onecycle", "plateau")

MAX_SEED = 2**32 - 1  # numpy's (and so Optuna's samplers') limit; torch takes any of these


def _number(low: float, high: float | None = None, low_open: bool = False, high_open: bool = False) -> dict:
    """A number schema; high None: no upper bound (a huge learning rate fails cleanly as a NaN loss, it crashes nothing)."""
    schema = {"type": "number", ("exclusiveMinimum" if low_open else "minimum"): low}
    if high is not None:
        schema["exclusiveMaximum" if high_open else "maximum"] = high
    return schema


def _integer(low: int, high: int) -> dict:
    return {"type": "integer", "minimum": low, "maximum": high}


HPARAMS: dict[str, HParam] = {h.name: h for h in (
    HParam("batch_size", 128, _integer(1, 65_536), "images per training step"),
    HParam("lr", 4e-3, _number(0, low_open=True), "learning rate (the peak one under a schedule)"),
    HParam("rs", 1e-3, _number(0), "L2 regularisation strength (the optimizer's weight_decay)"),
    HParam("num_epochs", 10, _integer(1, 10_000), "training epochs"),
    HParam("dropout", None, _number(0, 1, high_open=True), "override p of every dropout layer (default: as written in the spec)"),
    HParam("loss", "softmax", {"enum": list(LOSSES)}, "softmax = cross-entropy; sigmoid = one-vs-all binary cross-entropy (the study's sigmoid); sigmoid-ce = sigmoid outputs fed to cross-entropy"),
    HParam("augment", False, {"oneOf": [{"type": "boolean"}, AUGMENT_MAPPING]},
           "random crop and horizontal flip, per sample (a mapping {crop: N, flip: BOOL} sets both and turns it on)"),
    HParam("crop_pad", 1, _integer(0, MAX_CROP_PAD),
           "augmentation: zero border before the random crop back to size (shifts of up to +-N pixels)"),
    HParam("flip", True, {"type": "boolean"}, "augmentation: random horizontal flip (off for digits and text)"),
    HParam("erase", 0.0, _number(0, 1),
           "random erasing: with this probability per training image, a random rectangle (2-33% of it) is filled with random pixels"),
    HParam("mixup", None, _number(0, MAX_MIX_ALPHA, low_open=True),
           "mixup: blend each training batch with a shuffled copy, share drawn from Beta(a, a) with this a (e.g. 0.2); the loss is blended alike"),
    HParam("cutmix", None, _number(0, MAX_MIX_ALPHA, low_open=True),
           "cutmix: paste a rectangle of a shuffled copy, its area from Beta(a, a) with this a (e.g. 1.0); with --mixup too, each batch uses one"),
    HParam("optimizer", "adam", {"enum": list(OPTIMIZERS)}, "adam (the study's), adamw or sgd"),
    HParam("momentum", 0.9, _number(0, 1, high_open=True), "sgd momentum"),
    HParam("nesterov", False, {"type": "boolean"}, "sgd with Nesterov momentum"),
    HParam("schedule", "constant", {"enum": list(SCHEDULES)}, "learning-rate schedule over the whole run, per step"),
    HParam("warmup_epochs", 0, _number(0, 10_000), "linear warm-up before the schedule (onecycle: 30% of the run if 0)"),
    HParam("label_smoothing", 0.0, _number(0, 1, high_open=True), "label smoothing of the targets"),
    HParam("patience", None, _integer(1, 10_000), "early stopping: stop when validation accuracy has not improved for N epochs"),
    HParam("ema", None, _number(0, 1, low_open=True, high_open=True),
           "keep an exponential moving average of the weights with this decay (e.g. 0.999); it is evaluated, saved and tested"),
    HParam("clip_grad", None, _number(0, low_open=True), "clip the gradients' global L2 norm to this before each step"),
    HParam("tta", False, {"type": "boolean"},
           "test-time flip: validation, test, eval and predict average the logits of each image and its mirror"),
    HParam("seed", 0, _integer(0, MAX_SEED), "seed for initialisation, shuffling, dropout and augmentation (the split is fixed)"),
)}

def _as_dict(self) -> dict:
    """The settings as plain data (config.yaml, summary.json, checkpoints)."""
    return dataclasses.asdict(self)


def _replace(self, **changes) -> "TrainConfig":
    """The same settings with `changes` (a search trial's point, a grid cell's augmentation and loss)."""
    return dataclasses.replace(self, **changes)


# A run's resolved settings, typed: one frozen field per HPARAMS entry, with its default (the table stays their one
# source), read as config.lr rather than by string key.
TrainConfig = dataclasses.make_dataclass(
    "TrainConfig", [(name, Any, dataclasses.field(default=h.default)) for name, h in HPARAMS.items()], frozen=True,
    namespace={"as_dict": _as_dict, "replace": _replace, "__doc__": "A run's resolved training settings (HPARAMS)."})


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


def value_problem(name: str, value) -> str | None:
    """Why `value` is not allowed for hyper-parameter `name`, or None; NaN and infinities are never allowed
    (JSON Schema's minimum/maximum comparisons are false for NaN, so they would pass)."""
    import jsonschema

    if value is None and HPARAMS[name].default is None:  # 'not set': e.g. dropout as written in the spec
        return None
    if isinstance(value, float) and not math.isfinite(value):
        return "must be a finite number"
    try:
        jsonschema.validate(value, HPARAMS[name].schema)
    except jsonschema.ValidationError as error:
        return error.message
    return None


def resolve(spec_train: dict, flags: dict, data_defaults: dict | None = None) -> "TrainConfig":
    """CLI flag > spec `train:` section > the data's defaults (no flip for digits) > the study's defaults; flags given
    as None are not set."""
    from .errors import UsageError

    given = {name: value for name, value in flags.items() if value is not None}
    for name, value in given.items():
        problem = value_problem(name, value)
        if problem:
            raise UsageError(f"--{name.replace('_', '-')} {value}: {problem}")
    train = _augment_mapping(spec_train)
    defaults = {name: h.default for name, h in HPARAMS.items()} | (data_defaults or {})
    return TrainConfig(**{name: given.get(name, train.get(name, defaults[name])) for name in HPARAMS})


def _augment_mapping(train: dict) -> dict:
    """`augment: {crop: N, flip: B}` -> augment on, crop_pad N, flip B (the flat settings the trainer reads)."""
    augment = train.get("augment")
    if not isinstance(augment, dict):
        return dict(train)
    flat = {key: value for key, value in train.items() if key != "augment"}
    flat["augment"] = True
    if "crop" in augment:
        flat["crop_pad"] = augment["crop"]
    if "flip" in augment:
        flat["flip"] = augment["flip"]
    return flat
