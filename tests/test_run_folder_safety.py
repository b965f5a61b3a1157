"""Round 3 of run folders: what fmnist writes never lands on what is not its own, a damaged run is one line among the
others, and a resumed run is the run it was (its thread count, its data)."""
from __future__ import annotations

import json

import torch
import yaml

from fmnist.runner.rundir import RunDir
from tests.conftest import TINY_SPEC, only_run
from tests.test_datasets import one_line_error

QUICK = ("--train-limit", "300", "--val-limit", "500", "--num-epochs", "2", "--threads", "1")


def finished_run(cli, write_spec, out, *flags):
    assert cli("run", write_spec(TINY_SPEC), *QUICK, *flags, "--out", out)[0] == 0
    return max((p for p in out.iterdir() if (p / "config.yaml").is_file()), key=lambda p: p.name)


def test_a_folder_that_is_not_a_run_is_never_written_into(cli, write_spec, tmp_path, real_data):
    mine = tmp_path / "mine"
    mine.mkdir()
    own = {".notes.tmp": b"my temporary notes", "summary.json": b'{"mine": 1}', "metrics.csv": b"a,b\n1,2\n"}
    for name, data in own.items():
        (mine / name).write_bytes(data)
    code, _, err = cli("run", write_spec(TINY_SPEC), *QUICK, "--run-dir", mine)
    assert "not empty and not an fmnist run folder" in one_line_error(code, err)
    assert {p.name: p.read_bytes() for p in mine.iterdir()} == own  # nothing deleted, nothing overwritten
    empty = tmp_path / "empty"
    empty.mkdir()
    assert cli("run", write_spec(TINY_SPEC), *QUICK, "--run-dir", empty)[0] == 0  # an empty folder is fine


def test_no_output_path_may_replace_a_run_file(cli, write_spec, tmp_path, real_data):
    run = finished_run(cli, write_spec, tmp_path / "runs")
    other = finished_run(cli, write_spec, tmp_path / "runs")
    before = {p.name: p.read_bytes() for p in (run, other) for p in p.iterdir() if p.is_file()}
    for args in (("export", run, "--format", "torchscript", "--out", run / "best.pt"),
                 ("export", run, "--out", other / "config.yaml"),
                 ("export", run, "--out", run / "summary.json"),
                 ("compare", run, other, "--plot", run / "loss.png"),
                 ("draw", "cnn_4", "--out", run / "metrics.csv")):
        code, _, err = cli(*args)
        assert "that is a file of the run in" in one_line_error(code, err), args
    assert {p.name: p.read_bytes() for p in (run, other) for p in p.iterdir() if p.is_file()} == before
    code, out, err = cli("export", run, "--format", "torchscript", "--out", run / "model.ts.pt")  # its own default name
    assert (code, err) == (0, "")
    checkpoint = torch.load(run / "best.pt", weights_only=False)
    assert checkpoint["epoch"] >= 1


def test_compare_puts_its_plot_beside_the_runs_not_in_the_current_folder(cli, write_spec, tmp_path, real_data, monkeypatch):
    monkeypatch.chdir(tmp_path)
    first = finished_run(cli, write_spec, tmp_path / "runs")
    second = finished_run(cli, write_spec, tmp_path / "runs", "--lr", "0.01")
    code, out, err = cli("compare", first, second)
    assert (code, err) == (0, "") and f"validation curves: {tmp_path / 'runs' / 'compare.png'}" in out
    assert not (tmp_path / "compare.png").exists() and (tmp_path / "runs" / "compare.png").is_file()


def damage(run, name: str, text: str) -> None:
    (run / name).write_text(text)


def test_a_damaged_run_is_one_row_and_the_others_are_listed(cli, write_spec, tmp_path, real_data):
    out = tmp_path / "runs"
    runs = [finished_run(cli, write_spec, out) for _ in range(5)]
    damage(runs[0], "summary.json", "[1, 2]")  # JSON, but not an object
    damage(runs[1], "metrics.csv", "epoch,train_loss,train_acc,val_loss,val_acc,seconds\n1,0.5,0.8,0.5,eighty,1\n")
    damage(runs[2], "metrics.csv", "epoch,train_loss,train_acc,val_loss,val_acc,seconds\n1,0.5,0.8\n")  # a short row
    config = yaml.safe_load((runs[3] / "config.yaml").read_text())
    damage(runs[3], "config.yaml", yaml.safe_dump({**config, "hparams": [1, 2]}))
    code, text, err = cli("runs", out, "--json")
    assert (code, err) == (0, "")
    rows = {row["run"]: row for row in json.loads(text)}
    assert len(rows) == 5 and rows[str(runs[4])]["state"] == "finished"
    assert rows[str(runs[0])]["state"] == "damaged" and "summary.json is not an fmnist summary" in rows[str(runs[0])]["note"]
    assert "metrics.csv line 2 is damaged" in rows[str(runs[1])]["note"]
    assert "metrics.csv line 2 is damaged" in rows[str(runs[2])]["note"]
    assert rows[str(runs[3])]["state"] == "damaged" and "config.yaml is not an fmnist run config" in rows[str(runs[3])]["note"]
    code, text, err = cli("runs", out)
    assert (code, err) == (0, "") and "5 run(s) in" in text and text.count("damaged") >= 4
    code, text, err = cli("compare", runs[1], runs[4], "--plot", tmp_path / "c.png")  # its good rows are compared
    assert (code, err) == (0, "")


def test_a_damaged_summary_is_written_anew_by_the_resume_runs_names(cli, write_spec, tmp_path, real_data):
    run = finished_run(cli, write_spec, tmp_path / "runs")
    test_acc = json.loads((run / "summary.json").read_text())["test_acc"]
    damage(run, "summary.json", "{not json")
    code, text, _ = cli("runs", tmp_path / "runs", "--json")
    (row,) = json.loads(text)
    assert row["state"] == "damaged" and f"fmnist run --resume {run}" in row["note"]
    code, out, err = cli("run", "--resume", run)  # what the note says works, and the best epoch is tested again
    assert (code, err) == (0, ""), err
    assert json.loads((run / "summary.json").read_text())["test_acc"] == test_acc


def test_a_link_back_up_the_runs_folder_lists_each_run_once(cli, write_spec, tmp_path, real_data):
    out = tmp_path / "runs"
    run = finished_run(cli, write_spec, out)
    (out / "again").symlink_to(".", target_is_directory=True)
    code, text, err = cli("runs", out, "--json")
    assert (code, err) == (0, "") and [row["run"] for row in json.loads(text)] == [str(run)]


def test_runs_shows_the_data_and_says_one_epoch_plainly(cli, write_spec, tmp_path, real_data):
    out = tmp_path / "runs"
    assert cli("run", write_spec(TINY_SPEC), "--train-limit", "300", "--num-epochs", "1", "--out", out)[0] == 0
    code, text, err = cli("runs", out)
    header, line = text.splitlines()[1:3]
    assert "data" in header.split() and "fashion-mnist" in line.split()
    assert "completed its one epoch" in line and "all 1 epochs" not in line
    assert not (out / "latest").exists()  # no link on disk: `tensorboard --logdir runs` sees each run once
    assert RunDir.existing(out / "latest").path == only_run(out)


def test_divergence_on_the_last_step_is_a_nan_loss_and_the_run_is_failed_not_resumable(cli, write_spec, tmp_path, real_data):
    out = tmp_path / "runs"
    code, _, err = cli("run", write_spec(TINY_SPEC), "--lr", "1e30", "--train-limit", "100", "--num-epochs", "1",
                       "--out", out)
    assert code == 1 and err.count("\n") == 1 and "loss became NaN/inf" in err, err
    run = only_run(out)
    assert not (run / "best.pt").exists()  # a model with NaN weights is never kept as the best
    code, text, _ = cli("runs", out, "--json")
    assert json.loads(text)[0]["state"] == "failed"


def test_a_resume_uses_the_runs_own_thread_count_and_matches_an_uninterrupted_run(cli, tmp_path, real_data):
    """Killed after epoch 1 of a --threads 1 run, resumed as the tool prints it (no --threads), in a process whose
    default is all cores: the resumed epochs must be the uninterrupted run's, to the last digit."""
    import shutil
    import signal

    from tests.conftest import SPECS, spawn, wait_until

    flags = ("--train-limit", "2000", "--val-limit", "1000", "--num-epochs", "3", "--seed", "3", "--augment", "--threads", "1")
    child = spawn("run", SPECS / "cnn_4.yaml", *flags, "--out", tmp_path / "killed", cwd=tmp_path)
    wait_until(lambda: any(len((p / "metrics.csv").read_text().splitlines()) >= 2
                           for p in (tmp_path / "killed").glob("*/") if (p / "metrics.csv").is_file()), child,
               what="epoch 1 saved")
    child.send_signal(signal.SIGTERM)
    child.communicate(timeout=120)
    run = only_run(tmp_path / "killed")
    other = tmp_path / "other-threads"
    shutil.copytree(run, other)
    before = torch.get_num_threads()
    torch.set_num_threads(2)  # a process whose default is not the run's 1 thread (whatever OMP_NUM_THREADS says)
    try:
        code, out, err = cli("run", "--resume", run)
    finally:
        torch.set_num_threads(before)
    assert (code, err) == (0, "") and "note:" not in out
    assert cli("run", SPECS / "cnn_4.yaml", *flags, "--out", tmp_path / "straight")[0] == 0
    strip = lambda epochs: [{k: v for k, v in e.items() if k != "seconds"} for e in epochs]  # noqa: E731
    resumed = json.loads((run / "summary.json").read_text())
    straight = json.loads((only_run(tmp_path / "straight") / "summary.json").read_text())
    assert strip(resumed["epochs"]) == strip(straight["epochs"]) and resumed["test_acc"] == straight["test_acc"]
    code, out, err = cli("run", "--resume", other, "--threads", "2")  # obeyed, and the cost is said
    assert code == 0 and "note: --threads 2 differs from the run's own 1: the resumed epochs will not match" in out
