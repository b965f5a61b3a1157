"""Round 3 of the process around the work: signals that land in awkward places, terminals and pipes that cannot take
what is printed, a current folder that is gone, a grid killed with -9, a home folder matplotlib cannot write."""
from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap

import pytest

from fmnist.runner.catalog import _is_locked
from tests.conftest import TINY_SPEC, spawn, wait_until

# a plug-in that makes the first garbage collection raise Ctrl-C inside GC's callback, where Python swallows it
GC_BOMB = textwrap.dedent('''
    import gc
    import signal

    def bomb(phase, info):
        gc.callbacks.remove(bomb)
        signal.raise_signal(signal.SIGINT)  # its KeyboardInterrupt is raised here, in the callback: "Exception ignored"

    gc.callbacks.append(bomb)
''')
# a plug-in whose atexit function sends the process SIGTERM while the interpreter shuts down
TERM_AT_EXIT = textwrap.dedent('''
    import atexit
    import os
    import signal
    import time

    atexit.register(lambda: (os.kill(os.getpid(), signal.SIGTERM), time.sleep(0.3)))
''')


def fmnist(*args, cwd, env=None, **options):
    return subprocess.run([sys.executable, "-m", "fmnist", *map(str, args)], cwd=cwd, capture_output=True, text=True,
                          env={**os.environ, **(env or {})}, **options)


def test_a_ctrl_c_swallowed_in_a_gc_callback_still_stops_a_search_and_a_run(tmp_path, real_data):
    (tmp_path / "bomb.py").write_text(GC_BOMB)
    (tmp_path / "tiny.yaml").write_text(TINY_SPEC)
    quick = ("--train-limit", "300", "--val-limit", "500", "--num-epochs", "2", "--threads", "1")
    searched = fmnist("--plugin", "bomb.py", "search", "tiny.yaml", "--trials", "6", *quick, "--out", "s", cwd=tmp_path)
    assert searched.returncode == 130, searched.stdout + searched.stderr
    assert "interrupted" in searched.stderr and "Exception ignored" not in searched.stderr
    ran = fmnist("--plugin", "bomb.py", "run", "tiny.yaml", *quick, "--out", "r", cwd=tmp_path)
    assert ran.returncode == 130 and "interrupted" in ran.stderr and "Exception ignored" not in ran.stderr


def test_sigterm_during_shutdown_changes_nothing(tmp_path):
    (tmp_path / "term.py").write_text(TERM_AT_EXIT)
    (tmp_path / "tiny.yaml").write_text(TINY_SPEC)
    checked = fmnist("--plugin", "term.py", "validate", "tiny.yaml", cwd=tmp_path)
    assert (checked.returncode, checked.stderr) == (0, "")  # not a 13-line atexit traceback


def test_an_ascii_terminal_gets_question_marks_not_a_crash(tmp_path, real_data):
    (tmp_path / "tiny.yaml").write_text(TINY_SPEC)
    ran = fmnist("run", "tiny.yaml", "--train-limit", "200", "--num-epochs", "1", "--threads", "1", "--out", "r",
                 cwd=tmp_path, env={"PYTHONIOENCODING": "ascii"})
    assert (ran.returncode, ran.stderr) == (0, "") and "test accuracy" in ran.stdout and " ? " in ran.stdout


def test_a_deleted_current_folder_is_one_line(tmp_path):
    gone = tmp_path / "gone"
    gone.mkdir()
    script = f"cd {gone} && rmdir {gone} && exec {sys.executable} -m fmnist summary cnn_4"
    done = subprocess.run(["bash", "-c", script], capture_output=True, text=True)
    assert done.returncode == 2 and done.stderr.startswith("fmnist: error: the current folder is gone")
    assert done.stderr.count("\n") == 1 and "oneMKL" not in done.stderr


def test_a_closed_pipe_is_a_quiet_exit(tmp_path):
    reader = subprocess.Popen([sys.executable, "-m", "fmnist", "runs", str(tmp_path)], stdout=subprocess.PIPE,
                              stderr=subprocess.PIPE, text=True)
    reader.stdout.close()  # `| head -1` that has already gone
    assert reader.wait(timeout=60) == 141 and reader.stderr.read() == ""


def test_a_home_matplotlib_cannot_write_prints_no_warning(tmp_path, real_data):
    (tmp_path / "tiny.yaml").write_text(TINY_SPEC)
    env = {key: value for key, value in os.environ.items() if key not in ("MPLCONFIGDIR", "XDG_CONFIG_HOME", "XDG_CACHE_HOME")}
    env.update(HOME="/dev/null", FMNIST_CACHE=str(tmp_path / "cache"))  # ~/.config cannot be made, even by root
    ran = subprocess.run([sys.executable, "-m", "fmnist", "run", "tiny.yaml", "--train-limit", "200", "--num-epochs",
                          "1", "--threads", "1", "--out", "r"], cwd=tmp_path, capture_output=True, text=True, env=env)
    assert (ran.returncode, ran.stderr) == (0, ""), ran.stderr
    assert (next((tmp_path / "r").glob("*/accuracy.png"))).is_file()


@pytest.mark.timeout(600)  # the grid run again must end (its orphaned cell let go of its claim)
def test_a_grid_killed_with_9_takes_its_cells_with_it_and_runs_again_cleanly(cli, write_spec, tmp_path, real_data):
    spec = write_spec(TINY_SPEC)
    out = tmp_path / "grid"
    flags = ("--augment", "off", "--loss", "softmax", "--train-limit", "300", "--val-limit", "500", "--num-epochs", "12")
    grid = spawn("grid", spec, *flags, "--out", out, cwd=tmp_path)
    cell = out / "tiny-noaug-softmax"
    wait_until(lambda: (cell / "metrics.csv").is_file(), grid, what="the cell's first epoch")
    assert _is_locked(cell)  # the cell trains
    grid.send_signal(signal.SIGKILL)
    grid.communicate(timeout=30)
    wait_until(lambda: not _is_locked(cell), limit_s=10, what="the orphaned cell stopping")  # it would train on
    assert 1 <= len((cell / "metrics.csv").read_text().splitlines()) - 1 < 12 and (cell / "last.pt").is_file()
    code, out_text, err = cli("grid", spec, *flags, "--out", out)
    assert (code, err) == (0, ""), out_text + err
    log = (out / "logs" / "tiny-noaug-softmax.log").read_text()
    assert "FAILED" not in out_text and (cell / "summary.json").is_file(), log


def test_a_closed_terminal_stops_a_run_as_ctrl_c_does(write_spec, tmp_path, real_data):
    child = spawn("run", write_spec(TINY_SPEC), "--train-limit", "300", "--num-epochs", "200", "--threads", "1",
                  "--out", tmp_path / "runs", cwd=tmp_path)
    wait_until(lambda: any((tmp_path / "runs").glob("*/metrics.csv")), child, what="epoch 1 saved")
    child.send_signal(signal.SIGHUP)  # what a closed terminal sends
    _, err = child.communicate(timeout=60)
    assert child.returncode == 130 and "resume with: fmnist run --resume" in err and err.count("\n") == 1, err
