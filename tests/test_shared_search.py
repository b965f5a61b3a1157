"""A search shared through a real PostgreSQL server, under the load a user's machines put on it: a worker killed
mid-trial, the server restarted mid-trial, workers ending together and sharing the retrain's seeds; and a grid whose
server stays away."""
import json
import os
import signal
import subprocess
import sys

from tests.conftest import wait_until

TINY = "name: tiny_a\nlayers: [conv 3x3x4, relu, pool 2x2, fc 10]\n"
BEAT_S = "1"  # FMNIST_HEARTBEAT_S: a killed worker's trial is stale after 4 s instead of 2 minutes


def _worker(spec, url, study, out, *args, beat=BEAT_S, reconnect=""):
    env = {**os.environ, "PYTHONUNBUFFERED": "1", "OMP_NUM_THREADS": "1", "FMNIST_HEARTBEAT_S": beat,
           "FMNIST_RECONNECT_S": reconnect}
    return subprocess.Popen([sys.executable, "-m", "fmnist", "search", str(spec), "--storage", url, "--study", study,
                             "--threads", "1", "--out", str(out), *args], env=env, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)


def _study(url, name):
    import optuna

    return optuna.load_study(study_name=name, storage=url)


def _running(url, name):
    try:
        return [t for t in _study(url, name).trials if t.state.name == "RUNNING"]
    except KeyError:  # the study is not created yet
        return []


def test_workers_share_the_retrain_seeds_and_every_trial_is_kept_as_a_file(postgres, write_spec, real_data, tmp_path):
    spec = write_spec(TINY, "a.yaml")
    args = ("--trials", "3", "--train-limit", "300", "--val-limit", "500", "--space", "num_epochs=1:1", "--seeds", "3",
            "--results", str(tmp_path / "kept"))
    workers = [_worker(spec, postgres, "seeds", tmp_path / f"w{i}", *args) for i in range(2)]
    outputs = [worker.communicate(timeout=300) for worker in workers]
    assert [worker.returncode for worker in workers] == [0, 0], outputs
    trained = sorted(p.parent.name for i in range(2) for p in (tmp_path / f"w{i}").glob("best-trial-*/summary.json"))
    number = _study(postgres, "seeds").best_trial.number
    assert trained == sorted([f"best-trial-{number}", f"best-trial-{number}-seed1", f"best-trial-{number}-seed2"])
    reports = [json.loads((tmp_path / f"w{i}" / "search.json").read_text())["retrain"] for i in range(2)]
    assert reports[0] == reports[1] and [s["seed"] for s in reports[0]["seeds"]] == [0, 1, 2]
    scores = [s["test_acc"] for s in reports[0]["seeds"]]
    assert reports[0]["mean"] == sum(scores) / 3 and reports[0]["sd"] > 0  # three seeds, three different runs
    kept = tmp_path / "kept"
    assert [json.loads((kept / name).read_text())["hparams"]["seed"] for name in ("best.json", "best-seed1.json", "best-seed2.json")] == [0, 1, 2]
    for out, _ in outputs:
        assert "best trial retrained with seeds 0–2: test accuracy" in out
    files = sorted(kept.glob("trials/trial-*.json"))
    finished = [t for t in _study(postgres, "seeds").trials if t.state.is_finished()]
    assert len(files) == len(finished) >= 3
    record = json.loads(files[0].read_text())
    assert record["state"] in ("COMPLETE", "PRUNED") and set(record["params"]) == {"lr", "rs", "batch_size", "num_epochs"}
    assert len(record["val_acc_per_epoch"]) == 1 and record["worker"]


def _beats(url, trial) -> int:
    """How many heartbeats the trial has recorded (Optuna keeps them in its trial_heartbeats table)."""
    import sqlalchemy

    engine = sqlalchemy.create_engine(url)
    try:
        with engine.connect() as connection:
            return connection.execute(sqlalchemy.text("SELECT count(*) FROM trial_heartbeats WHERE trial_id = :id"),
                                      {"id": trial._trial_id}).scalar()
    finally:
        engine.dispose()


def test_a_killed_workers_trial_is_failed_and_its_point_tried_again(postgres, write_spec, real_data, tmp_path):
    spec = write_spec(TINY, "a.yaml")
    # 40 epochs: a trial outlives its first beat, whatever the machine's speed
    args = ("--trials", "2", "--train-limit", "1000", "--val-limit", "500", "--space", "num_epochs=40:40", "--pruner", "none", "--no-retrain")
    killed = _worker(spec, postgres, "killed", tmp_path / "w0", *args)
    wait_until(lambda: _running(postgres, "killed"), killed, what="a running trial")
    (lost,) = _running(postgres, "killed")
    wait_until(lambda: _beats(postgres, lost), killed, what="the trial's heartbeat recorded")
    assert [t.number for t in _running(postgres, "killed")] == [lost.number]  # still the trial killed below
    killed.send_signal(signal.SIGKILL)
    killed.wait()
    other = _worker(spec, postgres, "killed", tmp_path / "w1", *args)
    out, err = other.communicate(timeout=300)
    assert other.returncode == 0 and err == "", err
    trials = _study(postgres, "killed").trials
    assert trials[lost.number].state.name == "FAIL"  # no longer RUNNING for ever
    retried = [t for t in trials if t.system_attrs.get("failed_trial") == lost.number]
    assert len(retried) == 1 and retried[0].params == lost.params and retried[0].state.name == "COMPLETE"


def test_the_server_restarted_mid_trial_is_waited_for(postgres_server, write_spec, real_data, tmp_path):
    spec = write_spec(TINY, "a.yaml")
    args = ("--trials", "2", "--train-limit", "3000", "--val-limit", "500", "--space", "num_epochs=6:6", "--pruner", "none", "--no-retrain")
    worker = _worker(spec, postgres_server.url, "restart", tmp_path / "w", *args)
    wait_until(lambda: _running(postgres_server.url, "restart"), worker, what="a running trial")
    postgres_server.restart()  # fast: the server cuts every client off, then comes back
    out, err = worker.communicate(timeout=300)
    assert worker.returncode == 0 and "Traceback" not in err and "Exception" not in err, err
    states = [t.state.name for t in _study(postgres_server.url, "restart").trials]
    assert states == ["COMPLETE", "COMPLETE"]  # the trial that lived through the restart was not failed as stale


def test_a_grid_whose_database_stays_away_ends_in_one_line_and_keeps_its_finished_cell(postgres_server, write_spec,
                                                                                       real_data, tmp_path):
    spec = write_spec(TINY, "a.yaml")
    env = {**os.environ, "PYTHONUNBUFFERED": "1", "OMP_NUM_THREADS": "1", "FMNIST_HEARTBEAT_S": BEAT_S,
           "FMNIST_RECONNECT_S": "2"}
    command = [sys.executable, "-m", "fmnist", "grid", str(spec), "--augment", "off", "--loss", "softmax",
               "--num-epochs", "30", "--train-limit", "2000", "--val-limit", "500", "--threads", "1", "--storage", postgres_server.url,
               "--study", "away", "--out", str(tmp_path / "g")]
    worker = subprocess.Popen(command, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    # a cell past its first epoch (a server gone before the cell took its grid point would end it with nothing run)
    wait_until(lambda: list((tmp_path / "g").glob("*/metrics.csv")), worker, what="a cell's first epoch")
    postgres_server.stop()  # for longer than the worker waits (2 s): the cell ends while the server is down
    try:
        out, err = worker.communicate(timeout=300)
    finally:
        postgres_server.start()
    assert worker.returncode == 1, (out, err)
    assert err.startswith("fmnist: error: --storage postgresql://fmnist@127.0.0.1:") and err.count("\n") == 1, err
    assert "the database cannot be reached" in err
    assert "the finished cells are kept in it and in --out: run the same command again once it is back" in err
    (summary,) = (tmp_path / "g").glob("*/summary.json")  # the cell finished: its run folder is kept
    trained_at = summary.stat().st_mtime
    # at once: the dead worker's trial is still RUNNING, and this grid waits until it is stale (4 beats), then fails it
    again = subprocess.run(command, env=env, capture_output=True, text=True, timeout=300)
    assert again.returncode == 0 and again.stderr == "", again.stderr
    assert "1 cells (1 finished already)" in again.stdout and summary.stat().st_mtime == trained_at  # not trained again
    assert (tmp_path / "g" / "table.md").read_text().count("%") == 1
    states = sorted(t.state.name for t in _study(postgres_server.url, "away").trials)
    assert states == ["COMPLETE", "FAIL"]  # the lost attempt is failed, the cell's result is in the study


def test_a_database_that_stays_away_is_one_line_and_bad_wait_settings_too(postgres, write_spec, tmp_path):
    import pytest
    import sqlalchemy

    from fmnist.errors import StorageError
    from fmnist.experiments.storage import database_lost

    url = "postgresql://me:hunter2@127.0.0.1:1/gone"  # nothing listens on port 1: a real refused connection
    with pytest.raises(StorageError) as caught, database_lost(url):
        sqlalchemy.create_engine(url).connect()
    message = str(caught.value)
    assert message.startswith("--storage postgresql://me:***@127.0.0.1:1/gone: the database cannot be reached (OperationalError")
    assert "hunter2" not in message and "\n" not in message and "run the same command again once it is back" in message
    spec = write_spec(TINY, "a.yaml")
    worker = _worker(spec, postgres, "x", tmp_path / "w", "--trials", "1", beat="0")
    _, err = worker.communicate(timeout=120)
    assert worker.returncode == 2 and err.strip() == "fmnist: error: FMNIST_HEARTBEAT_S=0: expected whole seconds from 1 to 3600"
    worker = _worker(spec, postgres, "x", tmp_path / "w", "--trials", "1", reconnect="2h")
    _, err = worker.communicate(timeout=120)
    assert worker.returncode == 2 and err.strip() == "fmnist: error: FMNIST_RECONNECT_S=2h: expected whole seconds from 1 to 3600"
