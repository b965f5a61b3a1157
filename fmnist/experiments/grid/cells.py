"""A grid's cells: one spec x augmentation x output layer each, run as `fmnist run CELL.yaml`, the resolved spec (its
--set overrides applied, every setting written out in `train:`), in its own process and folder."""
from __future__ import annotations

import json
import sys
from dataclasses import dataclass
from pathlib import Path

import yaml

from ...hparams import LOSSES, TrainConfig
from ...runner.options import RunOptions
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
    plugins: tuple[str, ...] = ()  # the grid's --plugin files and modules: its cells' processes load them too

    @property
    def name(self) -> str:
        return self.folder.name

    def read_summary(self) -> dict | None:
        """The finished cell's result (its committed result file, its summary.json, or its result from the shared
        study); None while it is not finished, or when summary.json is damaged. Reads the disk each time."""
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

    def is_damaged(self) -> bool:
        """summary.json is there but unreadable: the cell is reported, not re-run over it or crashed on."""
        return (self.folder / "summary.json").exists() and self.read_summary() is None

    @property
    def spec_path(self) -> Path:
        """Where the cell's resolved spec is written: beside the claims, not in the run folder its run makes."""
        return self.folder.parent / CELL_LOCKS / f"{self.name}.yaml"

    def write_spec(self) -> None:
        """The cell's resolved spec, where command() reads it for a cell that has not begun."""
        self.spec_path.parent.mkdir(parents=True, exist_ok=True)
        atomic_write(self.spec_path, yaml.safe_dump(self.document, sort_keys=False, allow_unicode=True).encode())

    def has_begun(self) -> bool:
        return (self.folder / "config.yaml").is_file()

    def command(self, begun: bool) -> list[str]:
        """The cell's `fmnist run`: one that has begun resumes or restarts in its folder; a new one starts there,
        from its resolved spec (write_spec())."""
        run = [sys.executable, "-m", "fmnist", *(word for plugin in self.plugins for word in ("--plugin", plugin)), "run"]
        if begun:
            threads = ["--threads", str(self.options.threads)] if self.options.threads else []
            return [*run, "--resume", str(self.folder), "--device", self.options.device, *threads]
        return [*run, str(self.spec_path), "--run-dir", str(self.folder), *self.options.to_argv()]


def make_cells(specs: list[tuple[str, dict, TrainConfig]], augments: list[bool], losses: list[str], out: Path,
               options: RunOptions, plugins: tuple[str, ...] = ()) -> list[Cell]:
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
                                  options, plugins=plugins))
    return cells
