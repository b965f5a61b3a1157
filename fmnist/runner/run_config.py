"""A run folder's config.yaml as a typed record: written once, when the run starts; read back by resume, eval,
predict, export, compare, `fmnist runs` and the result files through `RunConfig.from_mapping`, the one place where a
folder made by an older fmnist is upgraded (runs from before --data trained on Fashion-MNIST; before machine.threads,
the thread count was not recorded; before world_size, every run was one process)."""
from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from ..errors import UsageError
from ..hparams import HPARAMS, TrainConfig, resolve, value_problem

FASHION_MNIST = "fashion-mnist"  # what every run trained on before --data existed


@dataclass(frozen=True)
class RunData:
    """The data a run trained on: what was chosen, where it was found, how it was split and prepared."""

    dataset: str = FASHION_MNIST
    choice: str | dict | None = None  # the data: mapping that means this choice (resume and eval choose it again)
    source: str | None = None
    verified: bool = True
    check: str | None = None
    data_dir: str | None = None
    train_limit: int | None = None
    val_limit: int | None = None
    train: int | None = None
    validation: int | None = None
    test: int | None = None
    contents: str | None = None  # a folder's fingerprint: its images must not change under a resume
    input: list[int] | None = None
    light_on_black: bool = True  # predict prepares photos as the data was (Fashion-MNIST: light object, dark ground)
    normalization: dict | None = None

    @classmethod
    def from_mapping(cls, raw: dict) -> "RunData":
        known = {item.name for item in dataclasses.fields(cls)}
        return cls(**{key: value for key, value in raw.items() if key in known})

    def as_mapping(self) -> dict[str, Any]:
        """As config.yaml holds it (check_unchanged compares its split sizes, contents and statistics)."""
        return dataclasses.asdict(self)


@dataclass(frozen=True)
class RunConfig:
    """Everything a run was started with; `hparams` are kept as written (a newer fmnist fills in new settings)."""

    spec: dict
    hparams: dict
    spec_file: str | None = None
    overrides: list[str] = field(default_factory=list)
    init: dict | None = None  # {weights, fresh_head} of --init
    device: str | None = None
    speed: dict = field(default_factory=dict)  # {fast, precision, ...}: the speed levers it trained with
    log: str | None = None
    data: RunData = field(default_factory=RunData)
    versions: dict = field(default_factory=dict)
    machine: dict = field(default_factory=dict)
    command: str | None = None
    created: str = ""
    world_size: int = 1  # processes that trained it together (torch.distributed)
    budget: dict | None = None  # a budgeted run, once ended: the minutes, the epochs and steps they bought, on what

    @property
    def name(self) -> str:
        return str(self.spec.get("name", "?"))

    @property
    def threads(self) -> int | None:
        """The CPU threads the run trained with, None for a run that did not record them."""
        threads = self.machine.get("threads")
        return threads if isinstance(threads, int) and not isinstance(threads, bool) and threads > 0 else None

    @property
    def precision(self) -> str | None:
        return self.speed.get("precision")

    def settings(self) -> TrainConfig:
        """The run's hyper-parameters (a run from an older fmnist gets today's defaults for settings it lacks)."""
        return resolve(self.hparams, {})

    def to_mapping(self) -> dict[str, Any]:
        return dataclasses.asdict(self)  # the data section too: asdict recurses into RunData

    def write_text(self) -> str:
        return yaml.safe_dump(self.to_mapping(), sort_keys=False)

    @classmethod
    def from_mapping(cls, raw: Any, where: str) -> "RunConfig":
        """config.yaml's data, checked (a mapping with the spec and valid hyper-parameters) and upgraded."""
        if not isinstance(raw, dict) or not isinstance(raw.get("spec"), dict) or not isinstance(raw.get("hparams"), dict):
            raise UsageError("config.yaml is not an fmnist run config (needs 'spec' and 'hparams' mappings)", where)
        for name, value in raw["hparams"].items():
            problem = value_problem(name, value) if name in HPARAMS else "not a setting fmnist knows"
            if problem:
                raise UsageError(f"damaged config.yaml: hparams.{name} {value!r}: {problem}", where)
        data = raw.get("data") if raw.get("data") is not None else {}
        if not isinstance(data, dict):
            raise UsageError("damaged config.yaml: 'data' must be a mapping", where)
        upgraded = {key: value for key, value in raw.items() if value is not None}
        for key in ("speed", "versions", "machine"):  # older folders may lack them, or hold something else
            if not isinstance(upgraded.get(key, {}), dict):
                upgraded[key] = {}
        known = {item.name for item in dataclasses.fields(cls)}
        upgraded = {key: value for key, value in upgraded.items() if key in known}
        upgraded["data"] = RunData.from_mapping(data)
        return cls(**upgraded)

    @classmethod
    def read(cls, folder: Path) -> "RunConfig":
        """FOLDER/config.yaml, or a UsageError saying what is wrong with it."""
        path = Path(folder) / "config.yaml"
        try:
            raw = yaml.safe_load(path.read_text())
        except OSError as error:
            raise UsageError(f"unreadable config.yaml: {error.strerror}", str(path)) from None
        except yaml.YAMLError as error:
            mark = getattr(error, "problem_mark", None)
            raise UsageError(f"damaged config.yaml: not valid YAML{f' (line {mark.line + 1})' if mark else ''}",
                             str(path)) from None
        return cls.from_mapping(raw, str(path))
