"""The study: created or joined (SQLite in --out, or a shared database), its pruner, the optimisation loop that runs
trials until the study holds enough, and the --out folder's one study."""
from __future__ import annotations

import json
from pathlib import Path

from ...choices import PRUNERS
from ...errors import TrainingError, UsageError
from ..storage import create_or_join, shared_storage
from .fidelity import RUNG_FACTOR
from .objective import trial_sampler

def _pruners(least: int = 1, most: int | str = "auto"):
    """How hopeless trials are stopped, by name; the multi-fidelity ones (Hyperband, successive halving) compare
    trials at the same resource and give the survivors more. The resource, from `least` (the first rung) to `most`, is
    what the search's fidelity reports (fidelity.py): epochs, milliseconds of training, or training images."""
    import optuna

    return dict(zip(PRUNERS, (
        lambda: optuna.pruners.HyperbandPruner(min_resource=least, max_resource=most, reduction_factor=RUNG_FACTOR),
        lambda: optuna.pruners.SuccessiveHalvingPruner(min_resource=least, reduction_factor=RUNG_FACTOR),
        lambda: optuna.pruners.MedianPruner(n_startup_trials=3, n_warmup_steps=1),
        optuna.pruners.NopPruner,
    ), strict=True))


def open_study(storage: str | None, name: str, out: Path, seed: int, pruner: str = "hyperband",
               resources: tuple[int, int | str] = (1, "auto")):
    """A study that is created or, when it exists, continued; SQLite in `out` unless a database URL is given."""
    import optuna

    url = storage or f"sqlite:///{(out / 'search.db').resolve()}"
    if storage is None:  # several workers on one SQLite file wait for each other's writes (up to a minute)
        make_storage = lambda: optuna.storages.RDBStorage(url, engine_kwargs={"connect_args": {"timeout": 60}})  # noqa: E731
    else:  # a killed worker's trial is failed once it stops beating, and its point is tried again, once
        make_storage = lambda: shared_storage(url, retry_stale=True)  # noqa: E731
    return create_or_join(url, "the study", make_storage, study_name=name, direction="maximize",
                          pruner=_pruners(*resources)[pruner](), sampler=trial_sampler(seed, 0))


def finished_trials(study) -> int:
    import optuna

    states = (optuna.trial.TrialState.COMPLETE, optuna.trial.TrialState.PRUNED)
    return len(study.get_trials(deepcopy=False, states=states))


def optimise(study, objective, trials: int, seconds: float | None = None, after_trial=None) -> None:
    """Run trials until the study (all workers together) holds `trials` finished ones, or `seconds` have passed;
    after_trial(study, trial) is called as each of this worker's trials ends."""
    import optuna
    from optuna.study import MaxTrialsCallback

    states = (optuna.trial.TrialState.COMPLETE, optuna.trial.TrialState.PRUNED)
    remaining = trials - finished_trials(study)
    if remaining > 0:
        study.optimize(objective, n_trials=remaining, timeout=seconds,
                       callbacks=[MaxTrialsCallback(trials, states=states), *([after_trial] if after_trial else [])],
                       catch=(TrainingError,), gc_after_trial=True)
    if not study.get_trials(deepcopy=False, states=(optuna.trial.TrialState.COMPLETE,)):
        if seconds and not study.get_trials(deepcopy=False, states=(optuna.trial.TrialState.FAIL,)):
            raise TrainingError(f"no trial finished within the time budget ({seconds / 60:g} min): give it more "
                                f"--minutes, or fewer epochs per trial; the stopped trials are stored")
        raise TrainingError(f"no trial finished: all {len(study.trials)} failed (see the lines above); "
                            f"the space or the fixed settings cannot train")


STUDY_MARK = ".fmnist-study"  # the name of the study an --out folder belongs to


def check_out_owner(out: Path, name: str) -> None:
    """An --out folder holds one study (STUDY_MARK, written once its study is open): its retrains, search.json and
    plots are named for that study alone."""
    mark = out / STUDY_MARK
    owner = mark.read_text().strip() if mark.is_file() else _study_in(out / "search.json")
    if owner and owner != name:
        raise UsageError(f"--out {out} holds study '{owner}' (its search.json, plots and retrains); give study '{name}' "
                         f"its own --out")


def _study_in(search_json: Path) -> str | None:
    try:
        return str(json.loads(search_json.read_text())["study"])
    except (OSError, ValueError, KeyError, TypeError):
        return None
