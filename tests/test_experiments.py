"""`fmnist grid` (Table 1 layout, resume) and `fmnist search` (SQLite resume, two workers on one PostgreSQL study)."""
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import yaml

from tests.conftest import PNG_SIGNATURE, only_run

TINY_A = "name: tiny_a\nlayers: [conv 3x3x4, relu, pool 2x2, fc 10]\n"
TINY_B = "name: tiny_b\nlayers: [pool 2x2, fc 10]\n"
QUICK = ("--num-epochs", "1", "--train-limit", "300", "--val-limit", "500")


def test_grid_prints_the_study_layout_and_resume_skips_finished_cells(cli, write_spec, real_data, tmp_path):
    a, b = write_spec(TINY_A, "a.yaml"), write_spec(TINY_B, "b.yaml")
    code, out, err = cli("grid", a, b, *QUICK, "--out", tmp_path / "t1", "--jobs", "2")
    assert (code, err) == (0, "")
    header = "| Model | No Augment. Softmax | Augment. Softmax | No Augment. Sigmoid | Augment. Sigmoid | Epoch s |"
    table = (tmp_path / "t1" / "table.md").read_text().splitlines()
    assert table[0] == header and table[1] == "|---|---|---|---|---|---|"
    assert [row.split(" | ")[0] for row in table[2:]] == ["| tiny_a", "| tiny_b"]
    assert header in out and "8 cells (0 finished already)" in out
    for column in range(1, 5):  # the best of each column is bold, and only it
        cells = [row.split(" | ")[column] for row in table[2:]]
        values = [float(c.strip("*%")) for c in cells]
        assert [c.startswith("**") for c in cells] == [v == max(values) for v in values]
    summary = json.loads((tmp_path / "t1" / "tiny_a-aug-sigmoid" / "summary.json").read_text())
    assert summary["hparams"]["augment"] is True and summary["hparams"]["loss"] == "sigmoid"
    assert f"{100 * summary['test_acc']:.2f}" in (tmp_path / "t1" / "table.csv").read_text()
    assert (tmp_path / "t1" / "table.csv").read_text().splitlines()[0] == \
        "model,No Augment. Softmax,Augment. Softmax,No Augment. Sigmoid,Augment. Sigmoid,epoch_seconds"

    shutil.rmtree(tmp_path / "t1" / "tiny_b-noaug-sigmoid")  # as if that cell had never run
    finished = {p: p.stat().st_mtime for p in (tmp_path / "t1").glob("*/summary.json")}
    code, out, _ = cli("grid", a, b, *QUICK, "--out", tmp_path / "t1")
    assert code == 0 and "8 cells (7 finished already)" in out
    assert out.count("[8/8] tiny_b-noaug-sigmoid: test") == 1
    assert all(p.stat().st_mtime == t for p, t in finished.items())


def test_grid_runs_one_switch_and_reports_a_failed_cell(cli, write_spec, real_data, tmp_path):
    a = write_spec(TINY_A, "a.yaml")
    code, out, err = cli("grid", a, *QUICK, "--augment", "off", "--loss", "softmax", "--lr", "1e30", "--out", tmp_path)
    assert code == 1
    assert "[1/1] tiny_a-noaug-softmax: FAILED (exit 1): fmnist: error: the loss became NaN/inf" in out
    assert "1 cell(s) failed" in err
    assert (tmp_path / "table.md").read_text().splitlines()[0] == "| Model | No Augment. Softmax | Epoch s |"


def test_a_cell_runs_its_resolved_spec_so_set_reaches_it(cli, write_spec, real_data, tmp_path):
    a = write_spec(TINY_A, "a.yaml")
    code, out, err = cli("grid", a, *QUICK, "--augment", "off", "--loss", "softmax", "--set", "layers.1=conv 3x3x6",
                         "--set", "train.lr=0.002", "--out", tmp_path)
    assert (code, err) == (0, ""), err
    cell_spec = yaml.safe_load((tmp_path / ".cells" / "tiny_a-noaug-softmax.yaml").read_text())
    config = yaml.safe_load((tmp_path / "tiny_a-noaug-softmax" / "config.yaml").read_text())
    assert cell_spec["layers"][0] == config["spec"]["layers"][0] == "conv 3x3x6"
    assert cell_spec["train"]["lr"] == config["hparams"]["lr"] == 0.002 and config["hparams"]["loss"] == "softmax"
    assert config["spec_file"] == str(tmp_path / ".cells" / "tiny_a-noaug-softmax.yaml")


def test_search_resumes_from_its_sqlite_file_and_retrains_the_best(cli, write_spec, real_data, tmp_path):
    spec = write_spec(TINY_A, "a.yaml")
    args = ("search", spec, "--train-limit", "300", "--val-limit", "500", "--space", "num_epochs=1:2", "--out", tmp_path)
    code, out, err = cli(*args, "--trials", "2", "--no-retrain")
    assert (code, err) == (0, "")
    assert "0 of 2 trials finished" in out and "trial 1:" in out
    code, out, err = cli(*args, "--trials", "3", "--results", tmp_path / "kept")
    assert (code, err) == (0, "")
    best = json.loads((tmp_path / "kept" / "best.json").read_text())
    assert best["hparams"]["lr"] == json.loads((tmp_path / "search.json").read_text())["best_params"]["lr"]
    assert "confusion" not in best and best["machine"]["cpu_class"] and (tmp_path / "kept" / "search_history.png").is_file()
    assert "2 of 3 trials finished" in out and "trial 2:" in out and "trial 0:" not in out
    result = json.loads((tmp_path / "search.json").read_text())
    assert result["trials"] == 3 and 0 <= result["best_trial"] <= 2
    assert set(result["best_params"]) == {"lr", "rs", "batch_size", "num_epochs"}
    retrain = json.loads((Path(result["retrain"]["run"]) / "summary.json").read_text())
    assert retrain["hparams"]["lr"] == result["best_params"]["lr"] and retrain["test_acc"] == result["retrain"]["test_acc"]
    assert (tmp_path / "search_history.png").read_bytes().startswith(PNG_SIGNATURE)
    assert result["plots"] == ["search_history.png"] and "parameter importances need at least 5 complete trials" in out
    code, out, err = cli(*args, "--trials", "1", "--no-retrain")  # a study that holds more: no new trial
    assert (code, err) == (0, "") and "3 (--trials 1: no new trial) trials finished" in out and "trial 3:" not in out


def test_a_trial_honours_the_runs_callbacks_early_stopping_and_tensorboard(cli, write_spec, real_data, tmp_path):
    import optuna

    spec = write_spec(TINY_A, "a.yaml")  # a learning rate of 1e-30 never improves on epoch 1: patience 1 stops at 2
    code, out, err = cli("search", spec, "--train-limit", "300", "--val-limit", "500", "--space", "num_epochs=6:6", "--space", "lr=1e-30:1e-30",
                         "--patience", "1", "--log", "tensorboard", "--trials", "1", "--no-retrain", "--out", tmp_path)
    assert (code, err) == (0, "")
    assert "trial 0: best val" in out and "(early stop after epoch 2: no validation improvement for 1 epoch(s)" in out
    (trial,) = optuna.load_study(study_name="tiny_a-search", storage=f"sqlite:///{tmp_path / 'search.db'}").trials
    assert sorted(trial.intermediate_values) == [1, 2]
    events = list((tmp_path / "tensorboard" / "trial-0").glob("events.out.tfevents.*"))
    assert events and events[0].stat().st_size > 0


def test_a_multi_fidelity_pruner_stops_the_weak_trials_after_their_first_epochs(cli, write_spec, real_data, tmp_path):
    import optuna

    spec = write_spec(TINY_A, "a.yaml")
    code, out, err = cli("search", spec, "--train-limit", "300", "--val-limit", "500", "--space", "num_epochs=3:3", "--trials", "6",
                         "--pruner", "halving", "--no-retrain", "--out", tmp_path)
    assert (code, err) == (0, "")
    assert json.loads((tmp_path / "search.json").read_text())["pruner"] == "halving"
    study = optuna.load_study(study_name="tiny_a-search", storage=f"sqlite:///{tmp_path / 'search.db'}")
    pruned = [t for t in study.trials if t.state == optuna.trial.TrialState.PRUNED]
    assert pruned and all(len(t.intermediate_values) < 3 for t in pruned) and out.count("pruned at epoch") == len(pruned)


def test_search_plots_say_percent_and_keep_optunas_style_to_themselves(tmp_path):
    import matplotlib
    import optuna

    from fmnist.experiments.search import plot_search

    study = optuna.create_study(direction="maximize")
    for number in range(6):
        study.add_trial(optuna.trial.create_trial(
            params={"lr": 10 ** -(2 + number % 3), "batch_size": [64, 128][number % 2]}, value=0.80 + number / 100,
            distributions={"lr": optuna.distributions.FloatDistribution(1e-5, 1e-1, log=True),
                           "batch_size": optuna.distributions.CategoricalDistribution([64, 128])}))
    for reached in ({1: 0.7, 2: 0.75}, {}):  # pruned trials: one after two epochs, one before its first ended
        study.add_trial(optuna.trial.create_trial(state=optuna.trial.TrialState.PRUNED, params={"lr": 1e-3, "batch_size": 64},
                                                  distributions=study.trials[0].distributions, intermediate_values=reached))
    import fmnist.runner.plots  # noqa: F401 (its once-per-process matplotlib set-up, done before `before`, as in a run)

    before = dict(matplotlib.rcParams)
    written = plot_search(study, tmp_path, "CNN_2", report=lambda line: None)
    assert written == ["search_history.png", "param_importances.png"]
    assert dict(matplotlib.rcParams) == before  # no ggplot leaking into the run plots drawn after
    assert all((tmp_path / name).read_bytes().startswith(PNG_SIGNATURE) for name in written)


def test_bad_search_input(cli, write_spec):
    spec = write_spec(TINY_A, "a.yaml")
    code, _, err = cli("search", spec, "--space", "lr=1:0.1")
    assert code == 2 and "--space lr=1:0.1: lr: low 1.0 is above high 0.1" in err
    code, _, err = cli("search", spec, "--space", "momentum=0.1:0.9")
    assert code == 2 and "--space momentum=0.1:0.9: expected NAME=LOW:HIGH or NAME=A,B,C" in err
    code, _, err = cli("search", spec, "--storage", "postgresql://nobody@127.0.0.1:1/none", "--trials", "1")
    assert code == 2 and "cannot open the study" in err and len(err.splitlines()) == 1
    code, _, err = cli("search", spec, "--seeds", "0")
    assert code == 2 and "--seeds 0: must be from 1 to 100" in err
    code, _, err = cli("search", spec, "--seeds", "3", "--seed", "4294967294")
    assert code == 2 and "--seeds 3 from --seed 4294967294 goes past the largest seed, 4294967295" in err


# ---- a real PostgreSQL server, two workers, one study ----

def test_two_workers_share_one_study_on_postgresql(postgres, write_spec, real_data, tmp_path):
    spec = write_spec(TINY_A, "a.yaml")
    env = {**os.environ, "PYTHONUNBUFFERED": "1", "OMP_NUM_THREADS": "1"}
    workers = [subprocess.Popen([sys.executable, "-m", "fmnist.cli", "search", str(spec), "--trials", "6", "--storage", postgres,
                                 "--study", "shared", "--train-limit", "300", "--val-limit", "500", "--space", "num_epochs=1:2", "--no-retrain",
                                 "--out", str(tmp_path / f"worker{i}")], env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                text=True) for i in range(2)]
    outputs = [worker.communicate(timeout=300) for worker in workers]
    assert [worker.returncode for worker in workers] == [0, 0], outputs
    import optuna

    study = optuna.load_study(study_name="shared", storage=postgres)
    finished = [t for t in study.trials if t.state.is_finished()]
    assert len(finished) >= 6
    assert len({t.user_attrs["worker"] for t in finished}) == 2  # both workers ran trials of the one study
    assert [t.number for t in study.trials] == list(range(len(study.trials)))
    seen_as_best = {json.loads((tmp_path / f"worker{i}" / "search.json").read_text())["best_trial"] for i in range(2)}
    assert study.best_trial.number in seen_as_best  # the worker that finished last reports the study's one best


def test_two_grids_on_two_machines_share_cells_through_postgresql(postgres, write_spec, real_data, tmp_path):
    spec = write_spec(TINY_A, "a.yaml")
    env = {**os.environ, "PYTHONUNBUFFERED": "1", "OMP_NUM_THREADS": "1"}
    workers = [subprocess.Popen([sys.executable, "-m", "fmnist", "grid", str(spec), *QUICK, "--storage", postgres,
                                 "--study", "table", "--out", str(tmp_path / f"machine{i}")], env=env,
                                stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True) for i in range(2)]
    outputs = [worker.communicate(timeout=300) for worker in workers]
    assert [worker.returncode for worker in workers] == [0, 0], outputs
    ran = [line.split("] ")[1].split(":")[0] for out, _ in outputs for line in out.splitlines() if line.startswith("[")]
    assert sorted(ran) == sorted(["tiny_a-noaug-softmax", "tiny_a-aug-softmax", "tiny_a-noaug-sigmoid", "tiny_a-aug-sigmoid"])
    for i in range(2):  # each machine's table has all four cells, those run elsewhere from the study
        row = (tmp_path / f"machine{i}" / "table.md").read_text().splitlines()[2]
        assert row.count("%") == 4 and "–" not in row, row
    import optuna

    study = optuna.load_study(study_name="table", storage=postgres)
    assert sorted(t.params["cell"] for t in study.trials if t.state.name == "COMPLETE") == sorted(ran)
    code = subprocess.run([sys.executable, "-m", "fmnist", "grid", str(spec), *QUICK, "--storage", postgres, "--study", "table",
                           "--out", str(tmp_path / "machine2")], env=env, capture_output=True, text=True)
    assert code.returncode == 0 and "[" not in "".join(l[:1] for l in code.stdout.splitlines())  # nothing left to run
    assert (tmp_path / "machine2" / "table.md").read_text().count("%") == 4


def test_grid_results_are_files_that_finish_a_table_without_the_run_folders(cli, write_spec, real_data, tmp_path):
    spec = write_spec(TINY_A, "a.yaml")
    args = ("grid", spec, *QUICK, "--loss", "softmax", "--results", tmp_path / "results", "--keep", "none")
    code, out, err = cli(*args, "--out", tmp_path / "g1")
    assert (code, err) == (0, "")
    files = sorted(p.name for p in (tmp_path / "results").iterdir())
    assert files == ["tiny_a-aug-softmax.json", "tiny_a-noaug-softmax.json"]
    result = json.loads((tmp_path / "results" / "tiny_a-aug-softmax.json").read_text())
    assert result["hparams"]["augment"] is True and "confusion" not in result
    assert {"test_acc", "per_class_acc", "epochs", "train_seconds", "data", "versions", "machine"} <= set(result)
    assert result["machine"]["cpu_class"] in ("AVX-512 with bf16", "AVX-512", "AVX2", "other")
    # the grid command the user typed makes it again; the cell's internal run command is kept beside it
    assert result["command"] == "fmnist " + " ".join(map(str, (*args, "--out", tmp_path / "g1")))
    assert result["run_command"].startswith("fmnist run ") and "/.cells/tiny_a-aug-softmax.yaml" in result["run_command"]
    assert not list((tmp_path / "g1").glob("*/*.pt"))  # --keep none: results only
    table = (tmp_path / "g1" / "table.md").read_text()
    assert f"{100 * result['test_acc']:.2f}%" in table and "Ran on: " in table
    code, out, err = cli(*args, "--out", tmp_path / "g2")  # another machine, no run folders: nothing to run
    assert (code, err) == (0, "") and "2 cells (2 finished already)" in out
    assert (tmp_path / "g2" / "table.md").read_text().splitlines()[:3] == table.splitlines()[:3]


def test_a_diverging_trial_fails_alone_and_a_search_of_only_those_says_so(cli, write_spec, real_data, tmp_path):
    spec = write_spec(TINY_A, "a.yaml")
    code, out, err = cli("search", spec, "--lr", "1e30", "--trials", "2", *QUICK, "--out", tmp_path / "s")
    assert code == 1 and len(err.splitlines()) == 1
    assert "no trial finished: all 2 failed" in err
    assert out.count("failed (the loss became NaN/inf at epoch 1") == 2  # both trials ran, each reported in a line
    assert (tmp_path / "s" / "search.db").is_file()


def test_a_time_budget_ends_the_search_then_the_best_is_retrained(cli, write_spec, real_data, tmp_path):
    spec = write_spec(TINY_A, "a.yaml")
    args = ("search", spec, "--train-limit", "300", "--val-limit", "500", "--space", "num_epochs=2:2", "--trials", "500", "--out", tmp_path)
    code, out, err = cli(*args, "--minutes", "0.1", "--results", tmp_path / "kept")
    assert (code, err) == (0, ""), err
    result = json.loads((tmp_path / "search.json").read_text())
    assert result["minutes"] == 0.1 and 1 <= result["trials"] < 500 and "retrain" in result  # the budget ended them
    best = json.loads((tmp_path / "kept" / "best.json").read_text())
    assert best["test_acc"] == result["retrain"]["test_acc"]
    searched = sum(json.loads(path.read_text())["seconds"] for path in (tmp_path / "kept" / "trials").glob("*.json"))
    assert best["startup_seconds"] < searched  # the retrain's own start-up, not the search's time before it


def test_a_trial_still_running_when_the_budget_is_spent_stops_at_its_next_epoch(cli, write_spec, real_data, tmp_path):
    spec = write_spec(TINY_A, "a.yaml")
    code, out, err = cli("search", spec, "--train-limit", "300", "--val-limit", "500", "--space", "num_epochs=5:5", "--trials", "3",
                         "--minutes", "0.0001", "--out", tmp_path)
    assert code == 1 and len(err.splitlines()) == 1
    assert "no trial finished within the time budget (0.0001 min)" in err
    assert "trial 0: stopped at epoch 1" in out and "the time budget is spent" in out
    assert "trial 1:" not in out  # no trial starts once the budget is spent


def test_threads_per_run_and_per_grid_cell(cli, write_spec, real_data, tmp_path):
    import yaml

    spec = write_spec(TINY_A, "a.yaml")
    code, _, err = cli("run", spec, *QUICK, "--threads", "1", "--out", tmp_path / "r")
    assert (code, err) == (0, "")
    run = only_run(tmp_path / "r")
    assert yaml.safe_load((run / "config.yaml").read_text())["machine"]["threads"] == 1
    code, _, err = cli("grid", spec, *QUICK, "--loss", "softmax", "--jobs", "2", "--out", tmp_path / "g")
    assert (code, err) == (0, "")
    expected = max(1, (os.cpu_count() or 1) // 2)  # two cells at once share the cores
    for cell in ("tiny_a-noaug-softmax", "tiny_a-aug-softmax"):
        assert yaml.safe_load((tmp_path / "g" / cell / "config.yaml").read_text())["machine"]["threads"] == expected


def test_threads_of_a_run_do_not_outlast_it(cli, write_spec, real_data, tmp_path):
    import torch

    before = torch.get_num_threads()
    code, _, err = cli("run", write_spec(TINY_A, "a.yaml"), *QUICK, "--threads", "1", "--out", tmp_path)
    assert (code, err) == (0, "") and torch.get_num_threads() == before  # the Python API and tests keep their count


def test_two_workers_on_one_sqlite_out_draw_different_trials_and_one_retrains(write_spec, real_data, tmp_path):
    spec = write_spec(TINY_A, "a.yaml")
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    workers = [subprocess.Popen([sys.executable, "-m", "fmnist", "search", str(spec), "--trials", "6", "--threads", "1",
                                 *QUICK, "--out", str(tmp_path / "same")], env=env, stdout=subprocess.PIPE,
                                stderr=subprocess.PIPE, text=True) for _ in range(2)]
    outputs = [worker.communicate(timeout=300) for worker in workers]
    assert [worker.returncode for worker in workers] == [0, 0], outputs  # the later one waits for the retrain
    import optuna

    study = optuna.load_study(study_name="tiny_a-search", storage=f"sqlite:///{tmp_path / 'same' / 'search.db'}")
    drawn = [tuple(sorted(t.params.items())) for t in study.trials if t.state.is_finished()]
    assert len(drawn) >= 6 and len(set(drawn)) == len(drawn)  # the same sampler seed drew the same points before
    assert len({t.user_attrs["worker"] for t in study.trials}) == 2
    assert len(list((tmp_path / "same").glob("best-trial-*/summary.json"))) == 1


def test_a_second_study_in_the_same_out_is_refused_and_the_first_kept(cli, write_spec, real_data, tmp_path):
    spec = write_spec(TINY_A, "a.yaml")
    assert cli("search", spec, "--trials", "1", *QUICK, "--out", tmp_path / "s")[0] == 0
    kept = {p.name: p.read_bytes() for p in (tmp_path / "s").iterdir() if p.is_file()}
    code, _, err = cli("search", spec, "--study", "other", "--trials", "1", *QUICK, "--out", tmp_path / "s")
    assert code == 2 and err.count("\n") == 1
    assert "--out" in err and "holds study 'tiny_a-search'" in err and "give study 'other' its own --out" in err
    assert {p.name: p.read_bytes() for p in (tmp_path / "s").iterdir() if p.is_file()} == kept


def test_a_password_is_masked_however_it_is_written(postgres, write_spec, real_data, tmp_path):
    """The server trusts local connections, so any password gets in: a real search, retrain and config.yaml."""
    spec = write_spec(TINY_A, "a.yaml")
    host = postgres.split("@", 1)[1]
    for number, url in enumerate((f"postgresql://fmnist:ab/cd+ef99@{host}", f"postgresql://fmnist@{host}?password=hunter22")):
        done = subprocess.run([sys.executable, "-m", "fmnist", "search", str(spec), "--trials", "1", "--study", f"m{number}",
                               *QUICK, "--storage", url, "--out", str(tmp_path / f"s{number}")],
                              capture_output=True, text=True)
        assert done.returncode == 0, done.stderr
        (config,) = (tmp_path / f"s{number}").glob("best-trial-*/config.yaml")
        for secret in ("ab/cd+ef99", "hunter22"):
            assert secret not in done.stdout + done.stderr + config.read_text()
        assert "***" in done.stdout and "***" in yaml.safe_load(config.read_text())["command"]
    refused = subprocess.run([sys.executable, "-m", "fmnist", "search", str(spec), "--storage",
                              "postgresql://me:ab/cd+ef99@127.0.0.1:1/db", "--out", str(tmp_path / "x")],
                             capture_output=True, text=True)
    assert refused.returncode == 2 and "ab/cd+ef99" not in refused.stderr and "me:***@127.0.0.1:1/db" in refused.stderr


def test_a_cell_whose_holder_lets_go_unfinished_is_run_by_the_grid_that_waited(write_spec, real_data, tmp_path):
    """Another grid (or a cell outliving its grid) holds a cell's claim, then stops before the cell is done: the grid
    that waited for it must run it, not print a table without it."""
    import fcntl

    from fmnist.experiments.grid.cells import CELL_LOCKS
    from tests.conftest import spawn, wait_until

    spec = write_spec(TINY_A, "a.yaml")
    out = tmp_path / "grid"
    (out / CELL_LOCKS).mkdir(parents=True)
    holder = open(out / CELL_LOCKS / "tiny_a-noaug-softmax.lock", "a+")
    fcntl.flock(holder, fcntl.LOCK_EX)
    grid = spawn("grid", spec, "--augment", "off", "--loss", "softmax", *QUICK, "--out", out, cwd=tmp_path)
    lines = []
    wait_until(lambda: lines.append(grid.stdout.readline()) or "waiting for it" in lines[-1], grid, what="the grid waiting")
    holder.close()  # let go, unfinished
    stdout, stderr = grid.communicate(timeout=300)
    assert grid.returncode == 0, stdout + stderr
    assert (out / "tiny_a-noaug-softmax" / "summary.json").is_file() and "tiny_a-noaug-softmax: test" in stdout
