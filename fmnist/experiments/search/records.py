"""A search as small files to commit: each finished trial as it ends, the search's result, its plots and each
retrained seed's run."""
from __future__ import annotations

from pathlib import Path

from ...errors import StorageError

def trial_record(trial) -> dict:
    """A finished trial as data: its point, state, best validation accuracy, each judgement's (val_acc_per_epoch, at
    the resources in `judged_at`: epochs, ms of training or training images, as the search's fidelity), worker and
    times."""
    ended, started = trial.datetime_complete, trial.datetime_start
    return {"number": trial.number, "state": trial.state.name, "value": trial.value, "params": trial.params,
            "val_acc_per_epoch": [trial.intermediate_values[epoch] for epoch in sorted(trial.intermediate_values)],
            "judged_at": sorted(trial.intermediate_values),
            "worker": trial.user_attrs.get("worker"), "started": started.isoformat(timespec="seconds") if started else None,
            "ended": ended.isoformat(timespec="seconds") if ended else None,
            "seconds": round((ended - started).total_seconds(), 1) if ended and started else None}


def write_trials(study, folder: Path) -> None:
    """Every finished trial of the study (this worker's and the others') as trial-NNNN.json in `folder`, written as
    it ends, so the search survives its database as files to commit."""
    from ...runner.rundir import atomic_write, strict_json

    folder.mkdir(parents=True, exist_ok=True)
    for trial in study.get_trials(deepcopy=False):
        target = folder / f"trial-{trial.number:04d}.json"
        if trial.state.is_finished() and not target.exists():
            atomic_write(target, (strict_json(trial_record(trial)) + "\n").encode())


def keep_results(folder: Path, out: Path, result: dict, retrained: dict[int, dict]) -> None:
    """The search as small files to commit: its result, its plots and each retrained seed's run (like a grid cell's
    result): best.json for the first seed, best-seedS.json for the others."""
    from ...runner.rundir import atomic_write, strict_json

    try:
        folder.mkdir(parents=True, exist_ok=True)
    except OSError as error:
        raise StorageError(f"--results {folder}: cannot create it ({error.strerror}); the search is kept in {out}") from None
    atomic_write(folder / "search.json", (out / "search.json").read_bytes())
    for plot in result["plots"]:
        atomic_write(folder / plot, (out / plot).read_bytes())
    for position, (seed, run_result) in enumerate(retrained.items()):
        target = folder / ("best.json" if position == 0 else f"best-seed{seed}.json")
        atomic_write(target, (strict_json(run_result) + "\n").encode())
