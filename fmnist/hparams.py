"""Training hyper-parameters: names, defaults (the study's recipe) and their rules, in one place.

TrainConfig is the table: a typed frozen dataclass whose fields carry their rules and help; the spec schema's `train:`
section, the runner's CLI flags (HPARAMS) and the docs are all made from its fields.
"""
from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass
from typing import Any, Callable

from .durations import MAX_MINUTES, PATTERN, read_minutes


@dataclass(frozen=True)
class HParam:
    name: str
    default: Any
    schema: dict  # JSON Schema for the value
    help: str
    read: Callable[[Any], Any] | None = None  # the value as the run uses it (a duration's minutes); raises ValueError


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
MAX_EPOCHS = 10_000  # also the cap of a budgeted run: its budget decides when it stops
BUDGET_SCHEMA = {"oneOf": [{"type": "number", "exclusiveMinimum": 0, "maximum": MAX_MINUTES},
                           {"type": "string", "pattern": PATTERN}]}


def _number(low: float, high: float | None = None, low_open: bool = False, high_open: bool = False) -> dict:
    """A number schema; high None: no upper bound (a huge learning rate fails cleanly as a NaN loss, it crashes nothing)."""
    schema = {"type": "number", ("exclusiveMinimum" if low_open else "minimum"): low}
    if high is not None:
        schema["exclusiveMaximum" if high_open else "maximum"] = high
    return schema


def _integer(low: int, high: int) -> dict:
    return {"type": "integer", "minimum": low, "maximum": high}


def setting(default, schema: dict, help: str, read: Callable[[Any], Any] | None = None):
    """A TrainConfig field: its default (the study's recipe), its rule (JSON Schema), its help and, for a value written
    in more than one way (a duration), how it is read into the one the run uses; in one place."""
    return dataclasses.field(default=default, metadata={"schema": schema, "help": help, "read": read})


@dataclass(frozen=True)
class TrainConfig:
    """A run's resolved training settings, typed; every field's default, rule and help are the one table that the spec's
    `train:` schema, the command-line flags and the docs are made from (HPARAMS)."""

    batch_size: int = setting(128, _integer(1, 65_536), "images per training step")
    lr: float = setting(4e-3, _number(0, low_open=True), "learning rate (the peak one under a schedule)")
    rs: float = setting(1e-3, _number(0), "L2 regularisation strength (the optimizer's weight_decay)")
    num_epochs: int = setting(10, _integer(1, MAX_EPOCHS), "training epochs")
    budget: float | None = setting(None, BUDGET_SCHEMA,
                                   "train for this much time instead of a number of epochs (90s, 60m, 1.5h; a bare "
                                   "number is minutes): the schedule runs over elapsed training time and training "
                                   "stops when it is spent", read=read_minutes)
    dropout: float | None = setting(None, _number(0, 1, high_open=True),
                                    "override p of every dropout layer (default: as written in the spec)")
    loss: str = setting("softmax", {"enum": list(LOSSES)},
                        "softmax = cross-entropy; sigmoid = one-vs-all binary cross-entropy (the study's sigmoid); "
                        "sigmoid-ce = sigmoid outputs fed to cross-entropy")
    augment: bool = setting(False, {"oneOf": [{"type": "boolean"}, AUGMENT_MAPPING]},
                            "random crop and horizontal flip, per sample (a mapping {crop: N, flip: BOOL} sets both and "
                            "turns it on)")
    crop_pad: int = setting(1, _integer(0, MAX_CROP_PAD),
                            "augmentation: zero border before the random crop back to size (shifts of up to +-N pixels)")
    flip: bool = setting(True, {"type": "boolean"}, "augmentation: random horizontal flip (off for digits and text)")
    erase: float = setting(0.0, _number(0, 1), "random erasing: with this probability per training image, a random "
                                               "rectangle (2-33% of it) is filled with random pixels")
    mixup: float | None = setting(None, _number(0, MAX_MIX_ALPHA, low_open=True),
                                  "mixup: blend each training batch with a shuffled copy, share drawn from Beta(a, a) "
                                  "with this a (e.g. 0.2); the loss is blended alike")
    cutmix: float | None = setting(None, _number(0, MAX_MIX_ALPHA, low_open=True),
                                   "cutmix: paste a rectangle of a shuffled copy, its area from Beta(a, a) with this a "
                                   "(e.g. 1.0); with --mixup too, each batch uses one")
    optimizer: str = setting("adam", {"enum": list(OPTIMIZERS)}, "adam (the study's), adamw or sgd")
    momentum: float = setting(0.9, _number(0, 1, high_open=True), "sgd momentum")
    nesterov: bool = setting(False, {"type": "boolean"}, "sgd with Nesterov momentum")
    schedule: str = setting("constant", {"enum": list(SCHEDULES)}, "learning-rate schedule over the whole run, per step")
    warmup_epochs: float = setting(0, _number(0, 10_000),
                                   "linear warm-up before the schedule (onecycle: 30% of the run if 0)")
    label_smoothing: float = setting(0.0, _number(0, 1, high_open=True), "label smoothing of the targets")
    patience: int | None = setting(None, _integer(1, 10_000),
                                   "early stopping: stop when validation accuracy has not improved for N epochs")
    ema: float | None = setting(None, _number(0, 1, low_open=True, high_open=True),
                                "keep an exponential moving average of the weights with this decay (e.g. 0.999); it "
                                "is evaluated, saved and tested")
    clip_grad: float | None = setting(None, _number(0, low_open=True),
                                      "clip the gradients' global L2 norm to this before each step")
    tta: bool = setting(False, {"type": "boolean"},
                        "test-time flip: validation, test, eval and predict average the logits of each image and its "
                        "mirror")
    seed: int = setting(0, _integer(0, MAX_SEED),
                        "seed for initialisation, shuffling, dropout and augmentation (the split is fixed)")
    sync_bn: bool = setting(True, {"type": "boolean"},
                            "with several processes (torchrun, --nproc): batch norm over the global batch, as one "
                            "process computes it; off: over each rank's share (less communication, the statistics "
                            "of a smaller batch, so results change with the process count)")

    def as_dict(self) -> dict[str, Any]:
        """The settings as plain data (config.yaml, summary.json, checkpoints)."""
        return dataclasses.asdict(self)

    def replace(self, **changes: Any) -> "TrainConfig":
        """The same settings with `changes` (a search trial's point, a grid cell's augmentation and loss)."""
        return dataclasses.replace(self, **changes)


HPARAMS: dict[str, HParam] = {item.name: HParam(item.name, item.default, item.metadata["schema"], item.metadata["help"],
                                             item.metadata["read"]) for item in dataclasses.fields(TrainConfig)}


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
SPACE_SCHEMA: dict[str, Any] = {
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
        _read(name, value)  # first: a duration's own message says more than a failed oneOf
        jsonschema.validate(value, HPARAMS[name].schema)
    except ValueError as error:
        return str(error)
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
    given, train = _one_length(given), _one_length(train, "train:")
    if "budget" in given or "num_epochs" in given:  # a flag's length of training replaces the spec's
        train = {name: value for name, value in train.items() if name not in ("budget", "num_epochs")}
    defaults = {name: h.default for name, h in HPARAMS.items()} | (data_defaults or {})
    values: dict[str, Any] = {name: given.get(name, train.get(name, defaults[name])) for name in HPARAMS}
    values = {name: _read(name, value) for name, value in values.items()}
    if values["budget"] is not None:
        values["num_epochs"] = MAX_EPOCHS  # only the cap: the budget decides when training stops
        if values["schedule"] == "onecycle" and values["warmup_epochs"]:
            raise UsageError(f"warmup_epochs {values['warmup_epochs']:g} with a budget and the onecycle schedule: the "
                             f"epochs a budget buys are not known in advance; one-cycle warms up over the first 30% of "
                             f"the budget, leave warmup_epochs out")
    return TrainConfig(**values)


def _read(name: str, value: Any) -> Any:
    """A setting's value as the run uses it: '60m' -> 60.0 for a budget; others as they are."""
    read = HPARAMS[name].read
    return read(value) if read is not None and value is not None else value


def _one_length(settings: dict, where: str = "") -> dict:
    """How long to train is one choice: a budget or an epoch count, not both from one place (a budgeted run's own
    record, with the epoch cap the budget set, is not a conflict)."""
    from .errors import UsageError

    epochs = settings.get("num_epochs")
    if settings.get("budget") is not None and epochs is not None and epochs != MAX_EPOCHS:
        names = ("train: budget", "num_epochs") if where else ("--budget", "--num-epochs")
        raise UsageError(f"{names[0]} and {names[1]} {epochs}: give one (a budget decides the number of epochs)")
    return settings


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
