"""Hyper-parameter search with Optuna: the study's space, pruning at the search's fidelity, resumable SQLite storage by
default, and Optuna's own distributed mode when several workers share one database URL.

space.py (what is searched), fidelity.py (how a trial is judged before its end), objective.py (one trial), study.py
(the study and its loop), plots.py (its pictures), records.py (its files to commit), run.py (`fmnist search` from
start to end).
"""
from .fidelity import FIDELITIES
from .objective import Pruning, make_objective, trial_sampler, worker_name
from .plots import plot_search
from .run import SearchSettings, run_search
from .space import check_space, choose_space, parse_space_flag, suggest
from .study import finished_trials, open_study, optimise

__all__ = ["FIDELITIES", "Pruning", "SearchSettings", "check_space", "choose_space", "finished_trials", "make_objective",
           "open_study", "optimise", "parse_space_flag", "plot_search", "run_search", "suggest", "trial_sampler",
           "worker_name"]
