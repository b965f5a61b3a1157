"""Data-parallel training through torch.distributed, for real: 2 processes x 1 thread on the CPU (gloo), started by
`fmnist run --nproc 2` (torch's elastic launch API) or by torchrun itself, against one process on the same seed;
and the faults a user meets: a rank killed with SIGKILL, Ctrl-C on the launcher, an error on one rank, machines that
never meet."""
from __future__ import annotations

import json
import os
import shutil
import signal
import socket
import subprocess
import sys
from pathlib import Path

import pytest
import torch
import yaml

from tests.conftest import SPECS, only_run, spawn, wait_until

BN_FREE = "name: nobn\nlayers: [conv 5x5x16, relu, pool 2x2, conv 5x5x32, relu, pool 2x2, fc 10]\n"
# 300 images, 3 epochs of 3 steps (two of 128, one of 44), with crop, flip and erasing drawn for the whole batch
AGREEMENT = ("--train-limit", "300", "--val-limit", "2000", "--num-epochs", "3", "--augment", "--erase", "0.5",
             "--seed", "1", "--threads", "1", "--plain")
# Two ranks sum two halves' gradients where one process sums the whole batch at once: the same numbers, added in
# another order, so they agree to float32 rounding (1e-7 relative), which training then amplifies a little. Measured
# on this recipe (validated on all 10,000 images): train losses equal to 6 decimals, validation losses within 2e-5,
# accuracy within 2 of 10,000 images. The bounds below leave a wide margin over that, and are far below what a wrong split (other images in a
# step, statistics of half a batch) changes: the first epoch's loss alone moves by 1e-2 then. --plain: the fast
# path's channels-last batch norm rounds differently in one process than the synchronised one does.
LOSS_WITHIN = 1e-4
VAL_LOSS_WITHIN = 1e-3
VAL_ACC_WITHIN = 4 / 2_000  # of the 2,000 validated here
STOP_WITHIN_S = 60  # a rank's death is seen at once (its connections close); the agent stops the others, 30 s at most


def fmnist(*args, cwd: Path, timeout: float = 300, env: dict | None = None) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "fmnist", *map(str, args)], cwd=cwd, capture_output=True, text=True,
                          timeout=timeout, env={**os.environ, **(env or {})})


def epochs_of(out: Path) -> list[dict]:
    return json.loads((only_run(out) / "summary.json").read_text())["epochs"]


@pytest.mark.parametrize("spec", ["cnn_4", "bn_free"])
def test_two_processes_train_exactly_what_one_process_trains(spec, tmp_path, real_data):
    source = SPECS / "cnn_4.yaml" if spec == "cnn_4" else tmp_path / "nobn.yaml"
    (tmp_path / "nobn.yaml").write_text(BN_FREE)
    one = fmnist("run", source, *AGREEMENT, "--out", tmp_path / "one", cwd=tmp_path)
    if spec == "cnn_4":
        two = fmnist("run", source, *AGREEMENT, "--nproc", "2", "--out", tmp_path / "two", cwd=tmp_path)
        assert (two.returncode, two.stderr) == (0, ""), two.stderr
    else:  # the same through torchrun itself, as a user types it
        two = subprocess.run([sys.executable, "-m", "torch.distributed.run", "--nproc-per-node", "2", "-m", "fmnist",
                              "run", str(source), *AGREEMENT, "--out", str(tmp_path / "two")], cwd=tmp_path,
                             capture_output=True, text=True, timeout=300)
        assert two.returncode == 0 and "fmnist:" not in two.stderr, two.stderr
    assert one.returncode == 0, one.stderr
    assert two.stdout.count("/3  train loss") == 3 and " · 2 processes (gloo) · " in two.stdout  # rank 0 alone prints
    for single, double in zip(epochs_of(tmp_path / "one"), epochs_of(tmp_path / "two"), strict=True):
        assert abs(single["train_loss"] - double["train_loss"]) <= LOSS_WITHIN, (single, double)
        assert abs(single["val_loss"] - double["val_loss"]) <= VAL_LOSS_WITHIN * single["val_loss"], (single, double)
        assert abs(single["val_acc"] - double["val_acc"]) <= VAL_ACC_WITHIN, (single, double)
    written = only_run(tmp_path / "two")  # one folder, by rank 0: the other rank writes nothing
    assert yaml.safe_load((written / "config.yaml").read_text())["world_size"] == 2
    assert not list(written.glob(".*.tmp")) and len(list((tmp_path / "two").iterdir())) == 1


def _ranks(launcher: subprocess.Popen) -> dict[int, int]:
    """rank -> pid of the processes the launcher started (its children, each with RANK in its environment)."""
    children = subprocess.run(["pgrep", "-P", str(launcher.pid)], capture_output=True, text=True).stdout.split()
    ranks = {}
    for pid in map(int, children):
        try:
            variables = dict(item.split("=", 1) for item in Path(f"/proc/{pid}/environ").read_text().split("\0")
                             if "=" in item)
        except OSError:
            continue
        if "RANK" in variables:
            ranks[int(variables["RANK"])] = pid
    return ranks


def _epochs_saved(parent: Path) -> int:
    metrics = list(parent.glob("*/metrics.csv"))
    return len(metrics[0].read_text().splitlines()) - 1 if metrics else 0


LONG = ("--train-limit", "3000", "--val-limit", "1000", "--num-epochs", "3", "--threads", "1")


def test_a_rank_killed_with_sigkill_stops_the_others_and_the_run_resumes(tmp_path, real_data):
    launcher = spawn("run", SPECS / "cnn_4.yaml", *LONG, "--nproc", "2", "--out", tmp_path / "runs", cwd=tmp_path)
    wait_until(lambda: _epochs_saved(tmp_path / "runs") >= 1, launcher, what="epoch 1 saved")
    ranks = _ranks(launcher)
    assert sorted(ranks) == [0, 1]
    os.kill(ranks[1], signal.SIGKILL)
    out, err = launcher.communicate(timeout=STOP_WITHIN_S)  # the stated time: past it, TimeoutExpired fails the test
    assert launcher.returncode != 0, (out, err)
    assert "fmnist: error: process 1 of the run was killed by SIGKILL" in err
    assert not any(pid_alive(pid) for pid in ranks.values())  # no rank left waiting
    run = only_run(tmp_path / "runs")
    saved = torch.load(run / "last.pt", weights_only=True)["epoch"]
    assert 1 <= saved == _epochs_saved(tmp_path / "runs") and not list(run.glob(".*.tmp"))
    resumed = fmnist("run", "--resume", run, "--nproc", "2", cwd=tmp_path)
    assert resumed.returncode == 0, resumed.stderr
    assert f"Resuming {run} after epoch {saved} of 3" in resumed.stdout and "note:" not in resumed.stdout
    assert len(json.loads((run / "summary.json").read_text())["epochs"]) == 3


def pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return Path(f"/proc/{pid}/stat").read_text().split()[2] != "Z"  # a zombie has ended


def test_ctrl_c_on_the_launcher_stops_every_rank_with_exit_130(tmp_path, real_data):
    launcher = spawn("run", SPECS / "cnn_4.yaml", *LONG, "--nproc", "2", "--out", tmp_path / "runs", cwd=tmp_path)
    wait_until(lambda: _epochs_saved(tmp_path / "runs") >= 1, launcher, what="epoch 1 saved")
    ranks = _ranks(launcher)
    launcher.send_signal(signal.SIGINT)
    out, err = launcher.communicate(timeout=STOP_WITHIN_S)
    run = only_run(tmp_path / "runs")
    assert launcher.returncode == 130, (out, err)
    assert err.count("fmnist: ") == 1 and "finished epoch(s) are saved in" in err, err
    assert f"resume with: fmnist run --resume {run} --nproc 2" in err
    assert not any(pid_alive(pid) for pid in ranks.values())
    assert not list(run.glob(".*.tmp")) and torch.load(run / "last.pt", weights_only=True)["epoch"] >= 1
    resumed = fmnist("run", "--resume", run, cwd=tmp_path)  # in one process: obeyed, and the cost said
    assert resumed.returncode == 0, resumed.stderr
    assert "note: 1 process(es), not the run's own 2: the resumed epochs will not match" in resumed.stdout


@pytest.mark.parametrize("args, code, message", [
    (("--set", "train.lr=abc"), 2, "train.lr: 'abc' is not of type 'number'"),
    (("--batch-size", "127"), 2, "--batch-size 127: the global batch does not split evenly among 2 processes"),
    (("--optimizer", "sgd", "--lr", "1e30"), 1, "the loss became NaN/inf"),
    (("--nproc", "0"), 2, "--nproc 0: must be from 1 to 1,024"),
])
def test_an_error_is_one_line_and_no_rank_is_left_hanging(tmp_path, real_data, args, code, message):
    if "--nproc" not in args:
        args = (*args, "--nproc", "2")
    done = fmnist("run", SPECS / "cnn_4.yaml", "--train-limit", "600", "--num-epochs", "2", "--threads", "1", *args,
                  "--out", tmp_path / "runs", cwd=tmp_path, timeout=STOP_WITHIN_S + 60)
    assert done.returncode == code and done.stderr.count("\n") == 1 and done.stderr.startswith("fmnist: error: "), \
        done.stderr
    assert message in done.stderr
    assert code == 1 or not (tmp_path / "runs").exists()  # refused before any folder


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def test_two_machines_meet_and_an_error_on_one_of_them_is_said_once(tmp_path, real_data):
    """Two launchers on one machine stand for two machines (--nnodes 2, one rendezvous endpoint); the second one's
    command holds a bad setting: that rank says so, the other stops quietly, both exit 2."""
    endpoint = f"127.0.0.1:{_free_port()}"
    common = ("run", SPECS / "cnn_4.yaml", "--train-limit", "600", "--num-epochs", "1", "--threads", "1", "--nproc",
              "1", "--nnodes", "2", "--rdzv-endpoint", endpoint, "--rdzv-timeout", "60", "--out", tmp_path / "runs")
    good = spawn(*common, cwd=tmp_path)
    bad = spawn(*common, "--set", "train.lr=-1", cwd=tmp_path)
    outputs = [process.communicate(timeout=STOP_WITHIN_S + 60) for process in (good, bad)]
    assert [good.returncode, bad.returncode] == [2, 2], outputs
    errors = "".join(err for _, err in outputs)
    assert errors.count("fmnist: ") == 1 and "train.lr: -1 is less than or equal to the minimum of 0" in errors, errors
    assert not (tmp_path / "runs").exists()


@pytest.mark.parametrize("endpoint", ["unanswered", "taken"])
def test_machines_that_never_meet_are_one_line_within_the_rendezvous_timeout(tmp_path, endpoint):
    """Unanswered: the second machine never comes. Taken: another program holds the port, accepting connections and
    never answering (torch's store client would wait for it for ever)."""
    squatter = socket.socket()
    squatter.bind(("127.0.0.1", 0))
    if endpoint == "taken":
        squatter.listen(8)
    port = squatter.getsockname()[1]
    if endpoint == "unanswered":
        squatter.close()
    try:  # subprocess's timeout is the hang guard: torch's own rendezvous default is 15 minutes
        lonely = fmnist("run", SPECS / "cnn_4.yaml", "--nproc", "1", "--nnodes", "2", "--rdzv-endpoint",
                        f"127.0.0.1:{port}", "--rdzv-timeout", "5", "--out", tmp_path / "runs", cwd=tmp_path, timeout=120)
    finally:
        squatter.close()
    assert lonely.returncode == 2 and lonely.stderr.count("\n") == 1, lonely.stderr
    assert "the machines did not meet" in lonely.stderr and "started within 5 s" in lonely.stderr


def test_grid_and_search_refuse_to_run_under_torchrun(tmp_path):
    env = {"RANK": "0", "WORLD_SIZE": "2", "LOCAL_RANK": "0", "LOCAL_WORLD_SIZE": "2"}
    for command in ("grid", "search"):
        done = fmnist(command, SPECS / "cnn_4.yaml", "--out", tmp_path / command, cwd=tmp_path, env=env)
        assert done.returncode == 2 and "as single processes and scales out through --storage" in done.stderr
    assert shutil.which("pgrep")  # the fault tests above find a launcher's processes with it
