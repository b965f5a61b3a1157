"""Grids on several machines sharing one table through a database: Optuna's GridSampler hands out the cells nobody
has taken, each result is kept in the study, and a cell whose machine stopped beating is handed out again."""
from __future__ import annotations

import time
from pathlib import Path

from .cells import Cell
from .pool import GridInterrupted, run_cells

SHARED_POLL_S = 2.0


def _result_of(summary: dict) -> dict:
    """The part of a cell's summary.json another machine needs for its table (no confusion matrix, no paths)."""
    keep = ("name", "test_acc", "test_loss", "per_class_acc", "best_val_acc", "best_epoch", "epochs", "train_seconds",
            "params", "hparams", "device")
    return {key: summary[key] for key in keep if key in summary}


def _cell_states(study) -> dict[str, tuple[str, dict | None]]:
    """cell name -> (state of its newest trial, its result if complete); a complete result wins over later attempts."""
    states: dict[str, tuple[str, dict | None]] = {}
    for trial in study.get_trials(deepcopy=False):
        name = trial.params.get("cell")
        if name is None or states.get(name, ("",))[0] == "COMPLETE":
            continue
        states[name] = (trial.state.name, trial.user_attrs.get("result"))
    return states


def open_shared(storage: str, name: str, cells: list[Cell]):
    """The grid's study: created by the first worker, joined by the others; one grid point per cell."""
    import optuna

    from ..storage import create_or_join, shared_storage

    optuna.logging.set_verbosity(optuna.logging.ERROR)
    sampler = optuna.samplers.GridSampler({"cell": [cell.name for cell in cells]}, seed=0)
    return create_or_join(storage, "the grid's study", study_name=name, sampler=sampler, direction="maximize",
                          make_storage=lambda: shared_storage(storage))


class CellFailed(Exception):
    """A shared cell's run did not finish; its trial is marked failed, so a later grid asks for it again."""


def run_shared(cells: list[Cell], study, out: Path, report, keep: str = "all") -> dict[str, str]:
    """Take cells nobody has taken from the shared study, one at a time, until every cell is done everywhere.

    The first pass is Optuna's GridSampler (trial k gets cell k, so workers never collide); a cell that failed or
    whose worker died is asked for again by name. Results go into the study, so every worker's table is complete.
    """
    import warnings

    import optuna

    by_name = {cell.name: cell for cell in cells}
    tried: set[str] = set()
    failures: dict[str, str] = {}

    def objective(trial) -> float:  # one cell; Optuna records it as the trial's value and result
        name = trial.suggest_categorical("cell", list(by_name))
        tried.add(name)
        cell = by_name[name]
        if cell.read_summary() is None:
            failures.update(run_cells([cell], 1, out, report, keep))
        summary = cell.read_summary()
        if summary is None:
            raise CellFailed(name)
        trial.set_user_attr("result", _result_of(summary))
        return summary["test_acc"]

    waited = False
    try:
        while True:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")  # heartbeats are marked experimental; they work as documented
                optuna.storages.fail_stale_trials(study)
            states = _cell_states(study)
            todo = [n for n in by_name if states.get(n, ("",))[0] not in ("COMPLETE", "RUNNING") and n not in tried]
            if not todo:
                if not any(state == "RUNNING" for state, _ in states.values()):
                    break
                if not waited:
                    report("waiting for the cells other workers are running")
                    waited = True
                time.sleep(SHARED_POLL_S)
                continue
            if len(study.trials) >= len(cells):  # the grid's first pass is handed out: ask for a missing cell by name
                study.enqueue_trial({"cell": todo[0]})
            study.optimize(objective, n_trials=1, catch=(CellFailed,))
    except KeyboardInterrupt:
        raise GridInterrupted.of(cells) from None
    for name, (state, result) in _cell_states(study).items():
        if name in by_name and by_name[name].read_summary() is None and state == "COMPLETE":
            by_name[name].remote = result  # run on another machine: its figures come from the study
    return failures
