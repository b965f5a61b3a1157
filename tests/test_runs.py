"""`fmnist runs`: every run under a folder in one line, with its state; runs/latest names the newest."""
import json

from fmnist.runner.rundir import RunDir
from tests.conftest import TINY_SPEC

QUICK = ("--train-limit", "300", "--num-epochs", "2")


def test_runs_lists_each_run_with_its_state(cli, write_spec, real_data, tmp_path):
    spec = write_spec(TINY_SPEC)
    out = tmp_path / "runs"
    assert cli("run", spec, *QUICK, "--out", out)[0] == 0
    assert not (out / "latest").exists()  # no link on disk: TensorBoard and backups see each run once
    assert cli("run", spec, *QUICK, "--lr", "1e30", "--out", out)[0] == 1
    assert cli("run", spec, *QUICK, "--out", out)[0] == 0
    finished, failed, interrupted = sorted((p for p in out.iterdir() if not p.is_symlink()), key=lambda p: p.name)
    assert RunDir.existing(out / "latest").path == interrupted  # fmnist resolves OUT/latest to the newest run
    (interrupted / "summary.json").unlink()  # as if it had been killed after its last epoch
    holder = RunDir(interrupted).lock()  # and now another process trains there
    code, out_json, _ = cli("runs", out, "--json")
    holder.unlock()
    rows = {row["run"]: row for row in json.loads(out_json)}
    assert code == 0 and len(rows) == 3
    assert rows[str(finished)]["state"] == "finished" and rows[str(finished)]["epochs"] == 2
    assert rows[str(finished)]["test_acc"] > 0.1 and rows[str(finished)]["note"] == "completed all 2 epochs"
    assert rows[str(failed)]["state"] == "failed" and "the loss became NaN/inf" in rows[str(failed)]["note"]
    assert rows[str(interrupted)]["state"] == "running"
    code, text, _ = cli("runs", out)
    assert code == 0 and "3 run(s) in" in text
    lines = {run.name: next(line for line in text.splitlines() if line.split()[:1] == [run.name]) for run in (finished, failed)}
    assert {"2/2", f"{100 * rows[str(finished)]['test_acc']:.2f}%", "finished"} <= set(lines[finished.name].split())
    assert "failed" in lines[failed.name].split() and "0/2" in lines[failed.name].split()
    code, _, err = cli("runs", tmp_path / "nothing")
    assert code == 2 and "no such folder" in err


def test_compare_shows_the_settings_that_differ_and_plots_the_curves(cli, write_spec, real_data, tmp_path):
    from tests.conftest import PNG_SIGNATURE

    spec = write_spec(TINY_SPEC)
    for lr, out in (("0.004", "a"), ("0.01", "b")):
        assert cli("run", spec, *QUICK, "--lr", lr, "--out", tmp_path / out)[0] == 0
    code, text, err = cli("compare", tmp_path / "a" / "latest", tmp_path / "b" / "latest", "--plot", tmp_path / "c.png")
    assert (code, err) == (0, "")
    rows = {line.split("│")[1].strip(): [cell.strip() for cell in line.split("│")[2:-1]]
            for line in text.splitlines() if line.startswith("│")}
    assert rows["lr"] == ["0.004", "0.01"] and "batch_size" not in rows  # only what differs
    assert rows["epochs"] == ["2/2", "2/2"] and rows["state"] == ["finished", "finished"]
    assert (tmp_path / "c.png").read_bytes().startswith(PNG_SIGNATURE)
    code, _, err = cli("compare", tmp_path / "a" / "latest")
    assert code == 2 and "give at least two runs to compare" in err
