"""A grid's cells: one spec x augmentation x output layer each, run as `fmnist run CELL.yaml`, the resolved spec (its
--set overrides applied, every setting written out in `train:`), in its own process and folder."""
from __future__ import annotations

import json
import sys
from dataclasses import dataclass
from pathlib import Path

import yaml

from ...hparams import LOSSES
from ...runner.preflight import RunOptions
from ...runner.rundir import atomic_write
from ..results import read_result

LOSS_TITLES = {"softmax": "Softmax", "sigmoid": "Sigmoid", "sigmoid-ce": "Sigmoid (CE)"}  # the study's two titles, then ours
# The study's column order: per output layer, without then with augmentation.
COLUMNS = tuple((f"{'Augment.' if augment else 'No Augment.'} {LOSS_TITLES[loss]}", augment, loss)
                for loss in LOSSES for augment in (False, True))
CELL_LOCKS = ".cells"  # the grid's own files (claims on cells, the cells' specs); a cell's folder belongs to its run


@dataclass
class Cell:
    spec_file: str
    model: str
    augment: bool
    loss: str
    folder: Path
    document: dict  # the cell's resolved spec: the spec as loaded (overrides applied), every setting in `train:`
    options: RunOptions  # device, data and speed levers
    remote: dict | None = None  # the result of a cell another machine ran (grid --storage)
    result_file: Path | None = None  # grid --results: the cell's committed result, which counts as finished

    @property
    def name(self) -> str:
        return self.folder.name

    @property
    def summary(self) -> dict | None:
        """The finished cell's summary.json (or its result from the shared study); None while it is not finished
        (or when the file is damaged)."""
        committed = read_result(self.result_file) if self.result_file else None
        if committed:  # written from the cell's summary.json when it finished, plus where it ran
            return committed
        path = self.folder / "summary.json"
        try:
            summary = json.loads(path.read_text())
        except (OSError, ValueError):
            return self.remote
        return summary if isinstance(summary, dict) and isinstance(summary.get("test_acc"), (int, float)) \
            and isinstance(summary.get("epochs"), list) else None

    @property
    def damaged(self) -> bool:
        """summary.json is there but unreadable: the cell is reported, not re-run over it or crashed on."""
        return (self.folder / "summary.json").exists() and self.summary is None

    @property
    def spec_path(self) -> Path:
        """Where the cell's resolved spec is written: beside the claims, not in the run folder its run makes."""
        return self.folder.parent / CELL_LOCKS / f"{self.name}.yaml"

    def command(self) -> list[str]:
        """A cell that has begun (config.yaml is there) resumes or restarts in its folder; a new one starts there,
        from its resolved spec."""
        run = [sys.executable, "-m", "fmnist", "run"]
        if (self.folder / "config.yaml").is_file():
            threads = ["--threads", str(self.options.threads)] if self.options.threads else []
            return [*run, "--resume", str(self.folder), "--device", self.options.device, *threads]
        self.spec_path.parent.mkdir(parents=True, exist_ok=True)
        atomic_write(self.spec_path, yaml.safe_dump(self.document, sort_keys=False, allow_unicode=True).encode())
        return [*run, str(self.spec_path), "--run-dir", str(self.folder), *where_flags(self.options)]


def where_flags(options: RunOptions) -> list[str]:
    """The run options that are not spec settings (device, data, speed levers), as `fmnist run` flags."""
    flags = ["--device", options.device, "--precision", options.precision, "--fast" if options.fast else "--plain"]
    if isinstance(options.data, str):
        flags += ["--data", options.data]
    if options.data_dir:
        flags += ["--data-dir", str(options.data_dir)]
    if options.train_limit is not None:
        flags += ["--train-limit", str(options.train_limit)]
    if options.threads:
        flags += ["--threads", str(options.threads)]
    if options.log:
        flags += ["--log", options.log]
    return flags


def make_cells(specs: list[tuple[str, dict, dict]], augments: list[bool], losses: list[str], out: Path,
               options: RunOptions) -> list[Cell]:
    """specs: (file, the spec's plain data, its resolved settings) in table order; each cell gets them with its
    augmentation and loss written into its spec's `train:`."""
    cells = []
    for spec_file, document, hparams in specs:
        for _, augment, loss in COLUMNS:
            if augment in augments and loss in losses:
                name = f"{document['name']}-{'aug' if augment else 'noaug'}-{loss}"
                train = {key: value for key, value in {**hparams.as_dict(), "augment": augment, "loss": loss}.items()
                         if value is not None}  # unset (dropout as written) stays unset
                cells.append(Cell(spec_file, document["name"], augment, loss, out / name, {**document, "train": train},
                                  options))
    return cells
