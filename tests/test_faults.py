"""Faults: Ctrl-C and kill -9 at odd moments, full and read-only disks, damaged files, two processes at once.

Each test checks what a user sees (exit code, one line) and what is left on disk.
"""
import gzip
import json
import os
import shutil
import signal
import struct
import subprocess
import sys
import time
import tracemalloc
import zlib
from pathlib import Path

import numpy as np
import pytest
import torch
import yaml

from fmnist.datasets.fashion_mnist import FILES
from tests.conftest import (
    SPECS,
    TINY_SPEC,
    mount_or_skip,
    only_run,
    spawn,
    unmount,
    wait_until,
    write_idx,
)

TINY_RUN = ("--train-limit", "300", "--val-limit", "500", "--num-epochs", "1")


@pytest.fixture(scope="module")
def finished_run(tmp_path_factory, real_data):
    """One finished tiny run; tests copy it before they damage it."""
    folder = tmp_path_factory.mktemp("finished")
    spec = folder / "tiny.yaml"
    spec.write_text(TINY_SPEC)
    result = subprocess.run([sys.executable, "-m", "fmnist", "run", str(spec), *TINY_RUN, "--out", str(folder / "runs")],
                            capture_output=True, text=True)
    assert result.returncode == 0, result.stderr
    return only_run(folder / "runs")


@pytest.fixture
def run_copy(finished_run, tmp_path):
    target = tmp_path / "run"
    shutil.copytree(finished_run, target)
    return target


def one_line(err: str) -> bool:
    return err.startswith("fmnist: ") and len(err.splitlines()) == 1 and "Traceback" not in err


# --- Ctrl-C ---

def test_ctrl_c_stops_the_whole_grid_and_says_what_finished(write_spec, real_data, tmp_path):
    spec = write_spec(TINY_SPEC)
    grid = spawn("grid", spec, "--train-limit", "3000", "--val-limit", "500", "--num-epochs", "200", "--out", tmp_path / "g", cwd=tmp_path)
    first = tmp_path / "g" / "tiny-noaug-softmax"
    wait_until(lambda: (first / "metrics.csv").is_file(), grid, what="the first cell finished an epoch")
    grid.send_signal(signal.SIGINT)
    _, err = grid.communicate(timeout=90)
    assert grid.returncode == 130
    assert one_line(err), err
    assert "grid interrupted: 0 of 4 cells finished (none); not finished: tiny-noaug-softmax, tiny-aug-softmax" in err
    assert "run the same command again to continue" in err
    cells = sorted(p.name for p in (tmp_path / "g").iterdir() if p.name.startswith("tiny-"))
    assert cells == ["tiny-noaug-softmax"]  # the queued cells never started
    assert (first / "last.pt").is_file()  # the running cell saved its finished epochs
    assert "finished epoch(s) are saved" in (tmp_path / "g" / "logs" / "tiny-noaug-softmax.log").read_text()
    leftover = subprocess.run(["pgrep", "-f", f"--run-dir {first}"], capture_output=True, text=True).stdout
    assert leftover == ""  # no cell process outlives the grid


def test_ctrl_c_during_start_up_is_one_line(tmp_path):
    process = spawn("summary", SPECS / "cnn_4.yaml", cwd=tmp_path)
    maps = Path(f"/proc/{process.pid}/maps")
    wait_until(lambda: "libtorch" in maps.read_text(), process, what="torch's library loading")  # inside the imports
    process.send_signal(signal.SIGINT)
    _, err = process.communicate(timeout=30)
    assert (process.returncode, err) == (130, "fmnist: interrupted\n")


def test_ctrl_c_while_best_pt_is_written_reports_the_epochs_really_saved(cli, write_spec, real_data, tmp_path, monkeypatch):
    from fmnist.runner.checkpoint import Checkpoint

    real_save = Checkpoint.save

    def interrupted_in_epoch_2(self, path):
        if path.name == "best.pt" and self.epoch == 2:
            raise KeyboardInterrupt
        real_save(self, path)

    monkeypatch.setattr(Checkpoint, "save", interrupted_in_epoch_2)
    code, _, err = cli("run", write_spec(TINY_SPEC), "--train-limit", "300", "--num-epochs", "3", "--lr", "0.01",
                       "--out", tmp_path)
    run = only_run(tmp_path)
    assert code == 130 and one_line(err)
    assert f"interrupted in epoch 2; 1 finished epoch(s) are saved in {run / 'last.pt'}" in err
    assert torch.load(run / "last.pt", weights_only=True)["epoch"] == 1


# --- a run that never saved an epoch ---

def test_run_folder_with_config_but_no_last_pt_restarts(cli, run_copy):
    for name in ("last.pt", "best.pt", "summary.json", "metrics.csv"):
        (run_copy / name).unlink()
    code, out, err = cli("run", "--resume", run_copy)
    assert (code, err) == (0, ""), err
    assert "no epoch was saved before it stopped; starting it over" in out
    assert json.loads((run_copy / "summary.json").read_text())["test_acc"] > 0.1


def test_grid_cell_with_config_but_no_last_pt_is_finished_on_the_next_run(cli, write_spec, real_data, tmp_path):
    spec = write_spec(TINY_SPEC)
    args = ("grid", spec, "--augment", "off", "--loss", "softmax", *TINY_RUN, "--out", tmp_path / "g")
    assert cli(*args)[0] == 0
    cell = tmp_path / "g" / "tiny-noaug-softmax"
    for name in ("last.pt", "best.pt", "summary.json"):
        (cell / name).unlink()
    code, out, err = cli(*args)
    assert (code, err) == (0, ""), err
    assert "[1/1] tiny-noaug-softmax: test" in out


# --- disks: full, read-only, missing folders ---

def test_full_disk_is_one_line_and_keeps_finished_epochs(write_spec, real_data, tmp_path):
    disk = tmp_path / "disk"
    mount_or_skip(disk, "-t", "tmpfs", "-o", "size=600k", "tmpfs")
    try:
        spec = write_spec("name: wide\nlayers: [conv 3x3x16, relu, pool 2x2, fc 10]\n")  # ~27k params: a few epochs fit
        result = subprocess.run([sys.executable, "-m", "fmnist", "run", str(spec), "--train-limit", "300", "--val-limit", "500", "--num-epochs", "40",
                                 "--out", str(disk)], capture_output=True, text=True)
        assert result.returncode == 1 and one_line(result.stderr), result.stderr
        assert "No space left on device" in result.stderr
        run = only_run(disk)
        if (run / "last.pt").is_file():  # what was saved before the disk filled is still a valid checkpoint
            assert torch.load(run / "last.pt", weights_only=True)["format"] == "fmnist-checkpoint-v1"
        assert not list(run.glob(".*.tmp"))
    finally:
        unmount(disk)


def test_eval_on_a_read_only_run_prints_the_result_before_failing_to_save(finished_run, tmp_path):
    readonly = tmp_path / "ro"
    mount_or_skip(readonly, "--bind", "-o", "ro", str(finished_run))
    try:
        result = subprocess.run([sys.executable, "-m", "fmnist", "eval", str(readonly)], capture_output=True, text=True)
        assert "test accuracy" in result.stdout and "Confusion matrix" in result.stdout
        assert result.returncode == 1 and one_line(result.stderr)
        assert "cannot write confusion.png: Read-only file system" in result.stderr
    finally:
        unmount(readonly)


def test_export_into_a_folder_that_does_not_exist_yet(cli, run_copy, tmp_path):
    target = tmp_path / "missing" / "dir" / "m.pt"
    code, out, err = cli("export", run_copy, "--format", "torchscript", "--out", target)
    assert (code, err) == (0, "") and target.is_file()
    code, _, err = cli("export", run_copy, "--format", "torchscript", "--out", tmp_path)
    assert code == 2 and one_line(err) and f"File '{tmp_path}' is a directory" in err


def test_run_files_follow_the_umask(write_spec, real_data, tmp_path):
    result = subprocess.run(f"umask 022 && {sys.executable} -m fmnist run {write_spec(TINY_SPEC)} {' '.join(TINY_RUN)} "
                            f"--out {tmp_path / 'runs'}", shell=True, capture_output=True, text=True)
    assert result.returncode == 0, result.stderr
    modes = {p.name: p.stat().st_mode & 0o777 for p in only_run(tmp_path / "runs").iterdir()}
    assert set(modes.values()) == {0o644}, modes


# --- damaged data files ---

def test_flipped_bytes_inside_a_gzip_are_a_corrupt_file(tmp_path):
    from fmnist.datasets.fashion_mnist import read_idx

    spec = FILES["test_labels"]
    path = write_idx(tmp_path / f"{spec.name}.gz", np.zeros(spec.shape, dtype=np.uint8), gz=True)
    raw = bytearray(path.read_bytes())
    for offset in range(20, len(raw) - 10, 7):
        raw[offset] ^= 0xFF
    path.write_bytes(bytes(raw))
    from fmnist.errors import UsageError
    with pytest.raises(UsageError, match="corrupt file") as caught:
        read_idx(path, spec, verify_checksum=False)
    assert len(str(caught.value).splitlines()) == 1


def test_huge_file_and_gzip_bomb_are_refused_after_reading_only_their_size(tmp_path):
    from fmnist.datasets.fashion_mnist import read_idx
    from fmnist.errors import UsageError

    spec = FILES["test_labels"]
    huge = tmp_path / spec.name
    with open(huge, "wb") as stream:  # a valid header, then 3 GB (sparse: no disk is used)
        stream.write(struct.pack(">II", spec.magic, spec.shape[0]))
        stream.truncate(3 * 1024 ** 3)
    bomb = tmp_path / f"{spec.name}.gz"
    bomb.write_bytes(gzip.compress(struct.pack(">II", spec.magic, spec.shape[0]) + bytes(200 * 1024 ** 2), compresslevel=1))
    for path in (huge, bomb):
        tracemalloc.start()
        try:
            with pytest.raises(UsageError, match="truncated or padded: more than the 10,008 bytes expected"):
                read_idx(path, spec, verify_checksum=False)
            peak = tracemalloc.get_traced_memory()[1]
        finally:
            tracemalloc.stop()
        assert peak < 5_000_000, path  # read up to its expected size and one byte more: not 3 GB, not 200 MB


# --- damaged or mismatched run files ---

def test_another_specs_checkpoint_in_a_run(cli, write_spec, run_copy, real_data, tmp_path):
    other = write_spec("name: other\nlayers: [conv 3x3x8, relu, pool 2x2, fc 10]\n", "other.yaml")
    assert cli("run", other, *TINY_RUN, "--out", tmp_path / "other")[0] == 0
    foreign = only_run(tmp_path / "other")
    shutil.copy(foreign / "best.pt", run_copy / "best.pt")
    code, _, err = cli("eval", run_copy)
    assert code == 2 and one_line(err) and "best.pt belongs to another spec than config.yaml" in err
    (run_copy / "summary.json").unlink()
    shutil.copy(foreign / "last.pt", run_copy / "last.pt")
    code, _, err = cli("run", "--resume", run_copy)
    assert code == 2 and one_line(err) and "last.pt belongs to another spec than config.yaml" in err


def test_checkpoint_holding_only_its_format_tag(cli, run_copy):
    torch.save({"format": "fmnist-checkpoint-v1"}, run_copy / "best.pt")
    code, _, err = cli("eval", run_copy)
    assert code == 2 and one_line(err)
    assert "damaged or not an fmnist checkpoint (it lacks epoch, model, spec, hparams)" in err


def test_changed_bytes_and_nan_weights_fail_the_digest(cli, run_copy):
    checkpoint = torch.load(run_copy / "best.pt", weights_only=True)
    name = next(iter(checkpoint["model"]))
    checkpoint["model"][name] = torch.full_like(checkpoint["model"][name], float("nan"))
    torch.save(checkpoint, run_copy / "best.pt")  # NaN over the weights, the old digest kept
    code, out, err = cli("eval", run_copy, "--json")
    assert (code, out) == (2, "") and one_line(err)
    assert "damaged checkpoint: its weights do not match the digest written with them" in err
    raw = bytearray((run_copy / "last.pt").read_bytes())
    middle = len(raw) // 2
    raw[middle:middle + 64] = os.urandom(64)
    (run_copy / "last.pt").write_bytes(bytes(raw))
    (run_copy / "summary.json").unlink()
    code, _, err = cli("run", "--resume", run_copy)
    assert code == 2 and one_line(err) and "damaged" in err


@pytest.mark.parametrize("change, message", [
    (lambda c: c.update(hparams=5), "config.yaml is not an fmnist run config"),
    (lambda c: c["hparams"].update(loss="hinge"), "damaged config.yaml: hparams.loss 'hinge': 'hinge' is not one of"),
    (lambda c: c["hparams"].update(batch_size=0), "damaged config.yaml: hparams.batch_size 0: 0 is less than the minimum of 1"),
    (lambda c: c["hparams"].update(lr=float("nan")), "damaged config.yaml: hparams.lr nan: must be a finite number"),
])
def test_damaged_config_is_one_line_for_eval_and_resume(cli, run_copy, change, message):
    config = yaml.safe_load((run_copy / "config.yaml").read_text())
    change(config)
    (run_copy / "config.yaml").write_text(yaml.safe_dump(config))
    code, _, err = cli("eval", run_copy)
    assert code == 2 and one_line(err) and message in err
    (run_copy / "summary.json").unlink()
    code, _, err = cli("run", "--resume", run_copy)
    assert code == 2 and one_line(err) and message in err


def test_config_that_is_not_yaml_is_one_line(cli, run_copy):
    (run_copy / "config.yaml").write_text("spec: [\n  oops: {\n")
    code, _, err = cli("eval", run_copy)
    assert code == 2 and one_line(err) and "damaged config.yaml: not valid YAML" in err


def test_stale_temporary_file_from_a_killed_write_is_removed(cli, run_copy):
    stale = run_copy / ".last.pt.abc123.tmp"
    stale.write_bytes(b"half a checkpoint")
    (run_copy / "summary.json").unlink()
    code, _, err = cli("run", "--resume", run_copy)
    assert code == 0, err
    assert not stale.exists()


# --- images ---

def _png_header_only(width: int, height: int) -> bytes:
    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", struct.pack(">IIBBBBB", width, height, 8, 0, 0, 0, 0)) + \
        chunk(b"IDAT", zlib.compress(b"")) + chunk(b"IEND", b"")


@pytest.mark.parametrize("size", [20_000, 12_000])
def test_decompression_bomb_image_is_one_line(cli, run_copy, tmp_path, size):
    image = tmp_path / "bomb.png"
    image.write_bytes(_png_header_only(size, size))
    code, out, err = cli("predict", run_copy, image)
    assert code == 2 and one_line(err) and out == ""
    assert "image too large" in err and "DecompressionBomb" not in err


# --- two processes at once ---

def test_second_writer_of_a_run_folder_is_refused(cli, write_spec, real_data, tmp_path):
    first = spawn("run", write_spec(TINY_SPEC), "--train-limit", "3000", "--num-epochs", "200", "--out", tmp_path, cwd=tmp_path)
    try:
        wait_until(lambda: any(tmp_path.glob("tiny-*/last.pt")), first, what="the first run saved epoch 0")
        run = only_run(tmp_path)
        code, _, err = cli("run", "--resume", run)
        assert code == 2 and one_line(err)
        assert f"{run}: in use by another fmnist process" in err
    finally:
        first.send_signal(signal.SIGINT)
        first.communicate(timeout=60)


def test_two_grids_on_one_out_split_the_cells(write_spec, real_data, tmp_path):
    spec = write_spec(TINY_SPEC)
    args = ("grid", spec, "--train-limit", "1000", "--val-limit", "500", "--num-epochs", "2", "--out", tmp_path / "g")
    grids = [spawn(*args, cwd=tmp_path, env={"OMP_NUM_THREADS": "1"}) for _ in range(2)]
    outputs = [grid.communicate(timeout=300) for grid in grids]
    assert [grid.returncode for grid in grids] == [0, 0], outputs
    ran = [line.split("] ")[1].split(":")[0] for out, _ in outputs for line in out.splitlines() if line.startswith("[")]
    assert sorted(ran) == sorted(["tiny-noaug-softmax", "tiny-aug-softmax", "tiny-noaug-sigmoid", "tiny-aug-sigmoid"])
    for out, _ in outputs:  # each grid's table has all four cells
        assert out.count("%") >= 4 and "| tiny |" in out


def test_same_spec_twice_in_a_grid_is_one_set_of_cells_and_a_garbage_summary_is_reported(cli, write_spec, real_data, tmp_path):
    spec = write_spec(TINY_SPEC)
    args = ("grid", spec, spec, "--augment", "off", *TINY_RUN, "--out", tmp_path / "g")
    code, out, err = cli(*args)
    assert (code, err) == (0, ""), err
    assert "2 cells (0 finished already)" in out
    (tmp_path / "g" / "tiny-noaug-sigmoid" / "summary.json").write_text("{not json")
    code, out, err = cli(*args)
    assert code == 1 and one_line(err)
    assert "1 cell(s) failed" in err and "tiny-noaug-sigmoid" in err
    other = write_spec(TINY_SPEC, "copy.yaml")
    code, _, err = cli("grid", spec, other, "--out", tmp_path / "g2")
    assert code == 2 and one_line(err) and "are both named 'tiny'" in err


# --- credentials ---

def test_storage_password_is_never_printed(cli, write_spec, tmp_path):
    url = "postgresql+psycopg://alice:hunter2@127.0.0.1:1/nowhere"
    code, out, err = cli("search", write_spec(TINY_SPEC), "--storage", url, "--trials", "1", "--out", tmp_path / "s")
    assert code == 2 and one_line(err)
    assert "hunter2" not in err + out and "postgresql+psycopg://alice:***@127.0.0.1:1/nowhere" in err
    assert not (tmp_path / "s").exists()


def test_recorded_command_masks_the_password():
    from fmnist.redact import masked

    assert masked("fmnist search s.yaml --storage postgresql://bob:s3cr%40t@db:5432/x --trials 2") == \
        "fmnist search s.yaml --storage postgresql://bob:***@db:5432/x --trials 2"
    assert masked("sqlite:////tmp/a.db and postgresql://bob@db/x") == "sqlite:////tmp/a.db and postgresql://bob@db/x"


def test_a_password_that_is_also_a_word_is_masked_only_inside_urls():
    """The shared-search set-up's password 'fmnist' once turned config.yaml's command into '*** search …'."""
    from fmnist.redact import masked, remember

    remember("postgresql://worker:fmnist@db/study")
    line = masked("fmnist search specs/cnn_2.yaml --storage postgresql://worker:fmnist@db/study --out runs/fmnist")
    assert line == "fmnist search specs/cnn_2.yaml --storage postgresql://worker:***@db/study --out runs/fmnist"


def test_sigterm_stops_a_run_like_ctrl_c(write_spec, real_data, tmp_path):
    run_process = spawn("run", write_spec(TINY_SPEC), "--train-limit", "3000", "--num-epochs", "200", "--out", tmp_path, cwd=tmp_path)
    wait_until(lambda: any(len(m.read_text().splitlines()) > 1 for m in tmp_path.glob("tiny-*/metrics.csv")), run_process,
               what="an epoch was saved")
    run_process.terminate()
    _, err = run_process.communicate(timeout=60)
    assert run_process.returncode == 130 and one_line(err), err
    assert "finished epoch(s) are saved" in err and "resume with: fmnist run --resume" in err


def test_an_error_a_ctrl_c_caused_inside_a_c_extension_counts_as_the_interrupt():
    from fmnist.errors import raised_by_interrupt

    def c_extension_callback():
        try:
            raise KeyboardInterrupt
        except KeyboardInterrupt:
            raise SystemError("<built-in function> returned a result with an exception set")

    with pytest.raises(SystemError) as caught:
        c_extension_callback()
    assert raised_by_interrupt(caught.value) and not raised_by_interrupt(ValueError("a real bug"))


def test_an_error_after_a_stopping_signal_is_the_interruption_not_a_bug():
    # a Ctrl-C inside matplotlib's per-epoch plot can be swallowed there and come out as another error (found by CI)
    from fmnist import interrupts
    from fmnist.errors import raised_by_interrupt

    previous = interrupts.install()
    try:
        assert not raised_by_interrupt(ValueError("half-drawn figure"))
        with pytest.raises(KeyboardInterrupt):
            os.kill(os.getpid(), signal.SIGINT)
            time.sleep(5)
        assert raised_by_interrupt(ValueError("half-drawn figure"))
    finally:
        interrupts.restore(interrupts.install())  # install() forgets the signal, so later tests start clean
        interrupts.restore(previous)
