"""The search's pictures: every trial's best validation accuracy with the best so far, and the parameters'
importances once enough trials are complete."""
from __future__ import annotations

from pathlib import Path

MIN_TRIALS_FOR_IMPORTANCES = 5  # fewer finished trials give importances that are noise


def plot_search(study, out: Path, title: str, report=print) -> list[str]:
    """search_history.png (every trial's best validation accuracy in %, and the best so far) and, with enough
    trials, param_importances.png; returns the files written. Optuna's plot style does not leak into later plots."""
    import warnings

    import optuna

    from ...runner.plots import integer_ticks, pyplot, save_figure

    plt = pyplot()  # set up by fmnist whoever plots first: a writable config folder, no display

    complete = [t for t in study.get_trials(deepcopy=False) if t.state == optuna.trial.TrialState.COMPLETE]
    # a pruned trial at the best validation accuracy it reached before it was stopped
    pruned = [t for t in study.get_trials(deepcopy=False) if t.state == optuna.trial.TrialState.PRUNED and t.intermediate_values]
    written = []
    if complete:
        figure, axes = plt.subplots(figsize=(7, 4.5))
        numbers, values = [t.number for t in complete], [100 * t.value for t in complete]
        best = [max(values[:i + 1]) for i in range(len(values))]
        axes.plot(numbers, values, "o", color="tab:blue", label="trial (best validation epoch)")
        if pruned:
            axes.plot([t.number for t in pruned], [100 * max(t.intermediate_values.values()) for t in pruned], "x",
                      color="tab:gray", label="pruned trial (its best epoch before it stopped)")
        last = max(t.number for t in study.get_trials(deepcopy=False))  # the best holds until the last trial
        axes.plot([*numbers, last], [*best, best[-1]], "-", color="tab:red", drawstyle="steps-post", label="best so far")
        axes.set_xlabel("trial")
        integer_ticks(axes.xaxis)
        axes.set_ylabel("validation accuracy (%)")
        stopped = f", {len(pruned)} pruned" if pruned else ""
        axes.set_title(f"{title}: search history ({len(complete)} complete trials{stopped})")
        axes.grid(alpha=0.3)
        axes.legend(loc="best", fontsize="small", framealpha=0.8)
        save_figure(figure, out / "search_history.png")
        written.append("search_history.png")
    if len(complete) < MIN_TRIALS_FOR_IMPORTANCES:
        report(f"parameter importances need at least {MIN_TRIALS_FOR_IMPORTANCES} complete trials "
               f"({len(complete)} so far): not plotted")
        return written
    from optuna.visualization import matplotlib as optuna_plots

    with plt.rc_context(), warnings.catch_warnings():  # Optuna sets its own style: keep it inside
        warnings.simplefilter("ignore")  # Optuna marks its matplotlib plots experimental
        try:
            axes = optuna_plots.plot_param_importances(study)
        except (ValueError, RuntimeError) as error:  # e.g. every trial drew the same values
            report(f"parameter importances not plotted ({' '.join(str(error).split())[:100]})")
            return written
        axes.set_title(f"{title}: parameter importances for validation accuracy")
        save_figure(axes.figure, out / "param_importances.png")
    written.append("param_importances.png")
    return written
