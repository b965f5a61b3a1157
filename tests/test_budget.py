"""Training to a time budget: how it is written, the schedule over elapsed time, the stop mid-epoch, what config.yaml
and summary.json record, resume with what is left, and the budget in a search, a grid and a data-parallel run."""
from __future__ import annotations

import json
import math
import re
import signal

import pytest
import torch
import yaml

from conftest import TINY_SPEC, only_run, spawn, wait_until
from fmnist.hparams import TrainConfig
from fmnist.machine import cpu_model
from fmnist.runner.budget import BudgetClock
from fmnist.runner.optim import make_optimizer, make_schedule

QUICK = ("--train-limit", "3000", "--val-limit", "500", "--threads", "1")


def one_line(err: str) -> bool:
    return err.startswith("fmnist: ") and len(err.strip().splitlines()) == 1 and "Traceback" not in err


def dry_run(cli, *args) -> dict:
    code, out, err = cli("run", *args, "--dry-run")
    assert (code, err) == (0, ""), err
    return yaml.safe_load(out)["hparams"]


def test_a_budget_is_read_from_flags_and_specs_and_replaces_the_epoch_count(cli, write_spec):
    spec = write_spec(TINY_SPEC)
    assert dry_run(cli, spec, "--budget", "90s")["budget"] == 1.5
    assert dry_run(cli, spec, "--budget", "1.5h")["budget"] == 90
    hparams = dry_run(cli, spec, "--budget", "45")  # a bare number is minutes
    assert (hparams["budget"], hparams["num_epochs"]) == (45, 10_000)  # the epochs are only a cap
    budgeted = write_spec(TINY_SPEC + "train: {budget: 20m, lr: 0.002}\n", "budgeted.yaml")
    assert dry_run(cli, budgeted)["budget"] == 20
    by_epochs = dry_run(cli, budgeted, "--num-epochs", "3")  # a flag's length of training replaces the spec's
    assert (by_epochs["budget"], by_epochs["num_epochs"], by_epochs["lr"]) == (None, 3, 0.002)
    assert dry_run(cli, write_spec(TINY_SPEC + "train: {num_epochs: 4}\n", "e.yaml"), "--budget", "2m")["budget"] == 2


@pytest.mark.parametrize("args, message", [
    (("--budget", "5", "--num-epochs", "3"), "--budget and --num-epochs 3: give one (a budget decides the number of epochs)"),
    (("--budget", "0s"), "--budget 0s: must be more than 0 and at most 10,080 minutes (a week)"),
    (("--budget", "2d"), "--budget 2d: '2d' is not a duration: write it as 90s, 60m or 1.5h (a bare number is minutes)"),
    (("--budget", "nan"), "--budget nan: 'nan' is not a duration"),
    (("--budget", "1h", "--schedule", "onecycle", "--warmup-epochs", "2"),
     "warmup_epochs 2 with a budget and the onecycle schedule: the epochs a budget buys are not known in advance"),
])
def test_a_bad_budget_is_one_line(cli, write_spec, args, message):
    code, out, err = cli("run", write_spec(TINY_SPEC), *args, "--dry-run")
    assert code == 2 and out == "" and one_line(err) and message in err, err


def test_a_bad_budget_in_a_spec_points_at_its_line(cli, write_spec):
    code, _, err = cli("validate", write_spec(TINY_SPEC + "train:\n  lr: 0.01\n  budget: 60x\n"))
    assert code == 2 and "spec.yaml:5: train.budget: '60x' is not a duration: write it as 90s, 60m or 1.5h" in err
    code, _, err = cli("run", write_spec(TINY_SPEC + "train: {budget: 60m, num_epochs: 5}\n"), "--dry-run")
    assert code == 2 and one_line(err) and "train: budget and num_epochs 5: give one" in err


def schedule_at(name: str, fractions: list[float], budget_minutes: float = 1.0) -> list[float]:
    """The learning rate a budgeted schedule gives after one step at each share of the budget spent."""
    model = torch.nn.Linear(2, 2)
    hparams = TrainConfig(budget=budget_minutes, schedule=name, lr=0.1, optimizer="sgd")
    optimizer = make_optimizer(model, hparams, fused=False)
    clock = BudgetClock(budget_minutes)
    schedule = make_schedule(optimizer, hparams, steps_per_epoch=10, clock=clock)
    rates = []
    for fraction in fractions:
        clock.load_state_dict({"spent": fraction * budget_minutes * 60})
        optimizer.step()
        schedule.step()
        rates.append(optimizer.param_groups[0]["lr"])
    return rates


def test_the_schedule_follows_the_time_spent_not_the_steps_taken():
    # cosine: half the peak at half the budget, whatever the number of steps before
    assert schedule_at("cosine", [0.5])[0] == pytest.approx(0.05)
    assert schedule_at("cosine", [0.1, 0.2, 0.3, 0.4, 0.5])[-1] == pytest.approx(0.05)
    assert schedule_at("cosine", [0.25, 1.0]) == pytest.approx([0.1 * 0.5 * (1 + math.cos(math.pi / 4)), 0.0])
    # one-cycle: up from lr/25 over the first 30% of the budget, down to almost nothing at its end
    start, peak, end = schedule_at("onecycle", [0.0, 0.3, 1.0])
    assert start == pytest.approx(0.1 / 25, rel=1e-3) and peak == pytest.approx(0.1, rel=1e-3) and end < 1e-5
    assert schedule_at("constant", [0.3, 0.9]) == [0.1, 0.1]


def test_a_budgeted_run_stops_mid_epoch_when_spent_and_records_what_it_bought(cli, write_spec, real_data, tmp_path):
    spec = write_spec(TINY_SPEC + "train: {schedule: cosine, batch_size: 32}\n")
    code, out, err = cli("run", spec, *QUICK, "--budget", "3s", "--out", tmp_path)
    assert (code, err) == (0, ""), err
    run = only_run(tmp_path)
    summary = json.loads((run / "summary.json").read_text())
    bought = summary["budget"]
    assert bought["minutes"] * 60 == pytest.approx(3) and 3 <= bought["spent_seconds"] < 3.5
    epochs = summary["epochs"]
    assert 3 <= sum(row["seconds"] for row in epochs) < 3.5
    steps_per_epoch = 3000 // 32 + 1
    assert bought["steps"] == round(bought["epochs"] * steps_per_epoch)
    assert len(epochs) - 1 < bought["epochs"] < len(epochs)  # the last epoch was cut where the budget ran out
    assert summary["stopped"].startswith(f"the budget of 3 s is spent: it bought {bought['epochs']:.2f} epochs")
    assert cpu_model() in bought["machine"]
    config = yaml.safe_load((run / "config.yaml").read_text())
    assert config["budget"] == bought and config["hparams"]["budget"] == 0.05
    assert re.search(rf"epoch +{len(epochs)}  train loss .* budget 3(\.\d+)? s/3 s", out), out


def test_a_resumed_budgeted_run_trains_for_what_is_left(cli, write_spec, real_data, tmp_path):
    spec = write_spec(TINY_SPEC + "train: {batch_size: 32}\n")
    process = spawn("run", spec, *QUICK, "--budget", "3s", "--run-dir", tmp_path / "r", cwd=tmp_path)
    metrics = tmp_path / "r" / "metrics.csv"
    wait_until(lambda: metrics.is_file() and len(metrics.read_text().splitlines()) >= 2, process,
               what="an epoch saved")
    process.send_signal(signal.SIGINT)
    assert process.wait(timeout=60) == 130
    saved = torch.load(tmp_path / "r" / "last.pt", weights_only=True)
    spent_before = saved["trainer"]["clock"]["spent"]
    assert 0 < spent_before < 3
    code, out, err = cli("run", "--resume", tmp_path / "r")
    assert (code, err) == (0, ""), err
    assert f"after epoch {saved['epoch']} of a budget of 3 s" in out
    bought = json.loads((tmp_path / "r" / "summary.json").read_text())["budget"]
    assert 3 <= bought["spent_seconds"] < 3.5  # the saved seconds counted once, not a new budget
    assert bought["epochs"] > saved["epoch"]


def test_a_search_with_a_per_trial_budget_judges_trials_at_rungs_of_time_inside_epochs(cli, write_spec, real_data,
                                                                                        tmp_path):
    import optuna

    from fmnist.experiments.search.objective import rungs_ms

    assert rungs_ms(9) == [20_000, 60_000, 180_000]  # a 27th of 9 minutes, then 3 times more, the end left to its epoch
    code, out, err = cli("search", write_spec(TINY_SPEC), "--train-limit", "20000", "--val-limit", "300", "--threads",
                         "1", "--budget", "3s", "--fidelity", "time", "--trials", "3", "--no-retrain", "--out", tmp_path)
    assert (code, err) == (0, ""), err
    assert "num_epochs" not in out.splitlines()[0]  # the budget decides a trial's length: it is not searched
    study = optuna.load_study(study_name="tiny-search", storage=f"sqlite:///{tmp_path / 'search.db'}")
    rungs = [111, 333, 999]  # milliseconds of training: a 27th of 3 s, then 3 and 9 times that
    for trial in study.trials:
        reported = sorted(trial.intermediate_values)
        assert reported[0] == 111  # the first judgement is the first rung, long before a 20,000-image epoch ends
        assert all(rung in reported for rung in rungs if rung <= reported[-1])  # and every rung it lived to
        assert "num_epochs" not in trial.params
    complete = [t for t in study.trials if t.state == optuna.trial.TrialState.COMPLETE]
    assert complete and all(max(t.intermediate_values) >= 3000 for t in complete)
    assert out.count("the budget of 3 s is spent") == len(complete)


def test_a_search_by_images_trains_each_trial_on_a_ninth_then_a_third_then_all(cli, write_spec, real_data, tmp_path):
    import optuna

    code, out, err = cli("search", write_spec(TINY_SPEC), *QUICK, "--num-epochs", "2", "--fidelity", "images",
                         "--pruner", "halving", "--trials", "5", "--no-retrain", "--out", tmp_path)
    assert (code, err) == (0, ""), err
    assert "trial 0 · 333 images · epoch" not in out  # the progress bar needs a terminal; the lines below say it
    study = optuna.load_study(study_name="tiny-search", storage=f"sqlite:///{tmp_path / 'search.db'}")
    for trial in study.trials:  # judged after 333 and 1,000 of the 3,000 training images, then complete
        reported = sorted(trial.intermediate_values)
        if trial.state == optuna.trial.TrialState.COMPLETE:
            assert reported == [333, 1000]
        else:
            assert trial.state == optuna.trial.TrialState.PRUNED and reported in ([333], [333, 1000])
    pruned = [t for t in study.trials if t.state == optuna.trial.TrialState.PRUNED]
    assert pruned and out.count("pruned after 333 training images") + out.count("pruned after 1,000 training images") \
        == len(pruned)
    assert json.loads((tmp_path / "search.json").read_text())["fidelity"] == "images"


def test_fidelity_time_needs_a_budget(cli, write_spec):
    code, out, err = cli("search", write_spec(TINY_SPEC), "--fidelity", "time", "--trials", "2", "--no-retrain")
    assert code == 2 and one_line(err) and "--fidelity time judges trials at rungs of a per-trial --budget" in err


def test_a_grid_cell_trains_for_the_grids_budget(cli, write_spec, tmp_path):
    from fmnist.experiments.grid.cells import make_cells
    from fmnist.hparams import resolve
    from fmnist.runner.options import RunOptions

    spec = write_spec(TINY_SPEC + "train: {num_epochs: 4}\n")
    budgeted = resolve({"num_epochs": 4}, {"budget": "2s"})  # as `fmnist grid SPEC --budget 2s` resolves it
    (cell,) = make_cells([(str(spec), yaml.safe_load(spec.read_text()), budgeted)], [False], ["softmax"], tmp_path,
                         RunOptions())
    cell.write_spec()  # the spec the cell's own `fmnist run` reads
    hparams = dry_run(cli, cell.spec_path)
    assert (hparams["budget"], hparams["num_epochs"]) == (pytest.approx(2 / 60), 10_000)


@pytest.mark.timeout(240)
def test_processes_of_a_budgeted_run_stop_together(write_spec, real_data, tmp_path):
    spec = write_spec(TINY_SPEC + "train: {batch_size: 16}\n")
    process = spawn("run", spec, "--nproc", "2", "--threads", "1", "--train-limit", "3000", "--val-limit", "500",
                    "--budget", "3s", "--run-dir", tmp_path / "r", cwd=tmp_path)
    out, err = process.communicate(timeout=200)
    assert process.returncode == 0, err
    summary = json.loads((tmp_path / "r" / "summary.json").read_text())
    assert summary["stopped"].startswith("the budget of 3 s is spent") and summary["budget"]["spent_seconds"] >= 3
    assert yaml.safe_load((tmp_path / "r" / "config.yaml").read_text())["world_size"] == 2
