"""`fmnist run / eval / predict / data` end to end on the real dataset (small slices of it), as a user runs them."""
import csv
import json
import os
import signal
from pathlib import Path

import numpy as np
import pytest
import torch
import yaml
from PIL import Image

from tests.conftest import PNG_SIGNATURE, SPECS, only_run, spawn, wait_until, write_idx

RECIPE_DEFAULTS = {"optimizer": "adam", "momentum": 0.9, "nesterov": False, "schedule": "constant", "warmup_epochs": 0,
                   "label_smoothing": 0.0, "crop_pad": 1, "flip": True, "patience": None, "ema": None, "clip_grad": None,
                   "tta": False, "erase": 0.0, "mixup": None, "cutmix": None, "sync_bn": True}
QUICK = ("--train-limit", "1000", "--val-limit", "700", "--num-epochs", "2", "--seed", "1")


def test_run_writes_everything_and_eval_predict_read_it(cli, real_data, tmp_path):
    code, out, err = cli("run", SPECS / "cnn_4.yaml", *QUICK, "--out", tmp_path)
    assert (code, err) == (0, "")
    run = only_run(tmp_path)
    assert run.name.startswith("CNN_4-")
    assert {p.name for p in run.iterdir()} == {"config.yaml", "metrics.csv", "best.pt", "last.pt", "loss.png",
                                               "accuracy.png", "summary.json"}
    assert "epoch  1/2  train loss" in out and "epoch  2/2" in out and "test accuracy" in out
    assert " · 1,000 train / 700 val / 10,000 test images · " in out  # --val-limit: the test split stays whole
    summary = json.loads((run / "summary.json").read_text())
    assert 0.5 < summary["test_acc"] < 1 and summary["best_epoch"] in (1, 2)
    assert summary["best_val_acc"] == max(e["val_acc"] for e in summary["epochs"])
    assert [sorted(e) for e in summary["epochs"]] == [["epoch", "seconds", "train_acc", "train_loss", "val_acc", "val_loss"]] * 2
    assert len(summary["per_class_acc"]) == 10 and np.array(summary["confusion"]).sum() == 10_000
    assert np.trace(np.array(summary["confusion"])) == round(summary["test_acc"] * 10_000)
    rows = list(csv.DictReader((run / "metrics.csv").open()))
    assert [int(r["epoch"]) for r in rows] == [1, 2]
    assert float(rows[1]["val_acc"]) == summary["epochs"][1]["val_acc"]
    config = yaml.safe_load((run / "config.yaml").read_text())
    assert config["hparams"] == {"batch_size": 128, "lr": 0.004, "rs": 0.001, "num_epochs": 2, "budget": None, "dropout": None,
                                 "loss": "softmax", "augment": False, **RECIPE_DEFAULTS, "seed": 1}
    assert config["spec"]["name"] == "CNN_4" and config["device"] == "cpu" and config["data"]["train"] == 1000
    assert config["data"]["val_limit"] == 700 and config["data"]["validation"] == 700
    assert config["versions"]["torch"] == str(torch.__version__)
    best = torch.load(run / "best.pt", weights_only=True)
    assert best["epoch"] == summary["best_epoch"] and {"model", "optimizer", "spec", "hparams", "class_names"} <= set(best)
    for plot in ("loss.png", "accuracy.png"):
        assert (run / plot).read_bytes().startswith(PNG_SIGNATURE)

    code, out, _ = cli("eval", run)
    assert code == 0
    assert f"test accuracy {100 * summary['test_acc']:.2f}%" in out
    assert "Ankle boot" in out and (run / "confusion.png").read_bytes().startswith(PNG_SIGNATURE)
    code, out, _ = cli("eval", run, "--json")
    assert json.loads(out)["confusion"] == summary["confusion"]

    from fmnist.datasets.fashion_mnist import read_dataset
    arrays = read_dataset(real_data)
    trouser = int(np.flatnonzero(arrays["test_labels"] == 1)[0])
    Image.fromarray(arrays["test_images"][trouser]).save(tmp_path / "trouser.png")
    Image.fromarray(255 - arrays["test_images"][trouser]).resize((200, 200)).save(tmp_path / "photo.jpg")  # dark on light
    code, out, _ = cli("predict", run, tmp_path / "trouser.png", tmp_path / "photo.jpg")
    assert code == 0
    lines = [line.split("\t") for line in out.splitlines()]
    assert [(Path(path).name, name) for path, name, _ in lines] == [("trouser.png", "Trouser"), ("photo.jpg", "Trouser")]
    assert all(10 < float(p.rstrip("%")) <= 100 for _, _, p in lines)  # the top class beats a uniform guess


def test_the_study_spelling_of_sigmoid_means_the_study_loss(cli):
    code, out, _ = cli("run", "--model", "CNN_4", "--loss_type", "sigmoid", "--dry-run")
    assert code == 0 and yaml.safe_load(out)["hparams"]["loss"] == "sigmoid"
    code, out, _ = cli("run", "--model", "CNN_4", "--loss", "sigmoid-ce", "--dry-run")
    assert code == 0 and yaml.safe_load(out)["hparams"]["loss"] == "sigmoid-ce"
    code, _, err = cli("run", "--model", "CNN_4", "--loss", "sigmoid-ce", "--loss_type", "sigmoid", "--dry-run")
    assert code == 2 and "--loss sigmoid-ce and --loss_type sigmoid (= sigmoid) disagree" in err


def test_study_command_line_works_verbatim(cli):
    code, out, _ = cli(*"run --model CNN_1 --batch_size 128 --lr 0.004 --rs 0.001 --num_epochs 10 --augment_data True --loss_type softmax".split(),
                       "--dry-run")
    assert code == 0
    resolved = yaml.safe_load(out)
    assert resolved["model"] == "CNN_1" and resolved["spec"].endswith("cnn_1.yaml")
    assert resolved["hparams"] == {"batch_size": 128, "lr": 0.004, "rs": 0.001, "num_epochs": 10, "budget": None, "dropout": None,
                                   "loss": "softmax", "augment": True, **RECIPE_DEFAULTS, "seed": 0}


def test_flags_beat_the_spec_which_beats_the_defaults(cli, write_spec):
    path = write_spec("name: t\nlayers: [fc 10]\ntrain: {lr: 0.01, batch_size: 32, loss: sigmoid}\n")
    code, out, _ = cli("run", path, "--batch-size", "64", "--dropout", "0.2", "--dry-run")
    assert code == 0
    assert yaml.safe_load(out)["hparams"] == {"batch_size": 64, "lr": 0.01, "rs": 0.001, "num_epochs": 10, "budget": None, "dropout": 0.2,
                                              "loss": "sigmoid", "augment": False, **RECIPE_DEFAULTS, "seed": 0}


@pytest.mark.parametrize("args, message", [
    (["specs/missing.yaml"], "specs/missing.yaml: no such spec file"),
    (["specs/cnn_4.yaml", "--lr", "0"], "--lr 0.0: 0.0 is less than or equal to the minimum of 0"),
    (["specs/cnn_4.yaml", "--lr", "-0.1"], "--lr -0.1: -0.1 is less than or equal to the minimum of 0"),
    (["specs/cnn_4.yaml", "--batch-size", "0"], "--batch-size 0: 0 is less than the minimum of 1"),
    (["specs/cnn_4.yaml", "--num-epochs", "0"], "--num-epochs 0: 0 is less than the minimum of 1"),
    (["specs/cnn_4.yaml", "--dropout", "1"], "--dropout 1.0: 1.0 is greater than or equal to the maximum of 1"),
    (["specs/cnn_4.yaml", "--loss", "hinge"], "'hinge' is not one of 'softmax', 'sigmoid', 'sigmoid-ce'"),
    (["specs/cnn_4.yaml", "--device", "cuda"] if not torch.cuda.is_available() else ["specs/cnn_4.yaml", "--device", "cuda:99"],
     "--device cuda" + ("" if not torch.cuda.is_available() else ":99")),
    (["specs/cnn_4.yaml", "--device", "tpu"], "--device tpu: not a device; use auto, cpu, cuda, cuda:N or mps"),
    (["--model", "CNN_7"], "--model CNN_7: no such model; known: CIFAR10_RESNET, CNN_1, CNN_2, CNN_3, CNN_4, CNN_5"),
    ([], "give one of: a spec file, --model NAME, or --resume RUN_FOLDER"),
    (["--resume", "/nonexistent/run"], "/nonexistent/run: no such run folder"),
])
def test_bad_run_options_get_one_line_and_exit_2(cli, args, message, monkeypatch):
    monkeypatch.chdir(SPECS.parent)
    code, out, err = cli("run", *args)
    assert code == 2
    assert message in err
    assert err.startswith("fmnist: error: ") and len(err.splitlines()) == 1


def test_missing_and_corrupt_data(cli, tmp_path):
    code, _, err = cli("run", SPECS / "cnn_4.yaml", "--data-dir", tmp_path / "nothing")
    assert code == 2 and "get it with 'apt-get install dataset-fashion-mnist'" in err
    folder = tmp_path / "corrupt"
    folder.mkdir()
    from fmnist.datasets.fashion_mnist import FILES
    for spec in FILES.values():
        write_idx(folder / spec.name, np.zeros(spec.shape, dtype=np.uint8))
    code, _, err = cli("run", SPECS / "cnn_4.yaml", "--data-dir", folder)
    assert code == 2
    assert err.startswith(f"fmnist: error: {folder / 'train-images-idx3-ubyte'}: checksum mismatch")


class Evil:
    """Unpickling this would run a shell command."""

    def __init__(self, target):
        self.target = target

    def __reduce__(self):
        return (os.system, (f"touch {self.target}",))


def test_checkpoint_that_is_not_ours_or_damaged(cli, real_data, tmp_path):
    code, _, _ = cli("run", SPECS / "cnn_4.yaml", "--train-limit", "300", "--num-epochs", "1", "--out", tmp_path)
    run = only_run(tmp_path)
    torch.save({"weights": torch.zeros(3)}, run / "best.pt")
    code, _, err = cli("eval", run)
    assert code == 2 and err == f"fmnist: error: {run / 'best.pt'}: not an fmnist checkpoint (expected format fmnist-checkpoint-v1)\n"
    (run / "best.pt").write_bytes(b"garbage" * 100)
    code, _, err = cli("eval", run)
    assert code == 2 and err.startswith(f"fmnist: error: {run / 'best.pt'}: damaged or not an fmnist checkpoint")
    torch.save({"format": "fmnist-checkpoint-v1", "x": Evil(tmp_path / "pwned")}, run / "best.pt")
    code, _, err = cli("eval", run)
    assert code == 2 and "damaged or not an fmnist checkpoint" in err
    assert not (tmp_path / "pwned").exists()  # weights_only: loading ran no code


def test_nan_loss_stops_with_exit_1_and_says_where(cli, real_data, tmp_path):
    code, _, err = cli("run", SPECS / "cnn_4.yaml", "--train-limit", "640", "--lr", "1e30", "--num-epochs", "2", "--out", tmp_path)
    assert code == 1
    assert "the loss became NaN/inf at epoch 1, step" in err and "no epoch finished" in err


def _spawn(*args, cwd):
    return spawn(*args, cwd=cwd)


def _wait_for_epochs(run_parent: Path, epochs: int, process, limit_s=120):
    found = []

    def written():
        metrics = list(run_parent.glob("*/metrics.csv"))
        found[:] = [m.parent for m in metrics if not m.parent.is_symlink() and len(m.read_text().splitlines()) > epochs]
        return bool(found)

    wait_until(written, process, limit_s, f"epoch {epochs} was saved")
    return found[0]


RESUMABLE = ("--train-limit", "2000", "--val-limit", "1000", "--num-epochs", "3", "--seed", "3", "--augment", "--threads", "2")  # the same
# thread count in the killed process and in this one: it changes the arithmetic, so the epochs would not match


def test_kill_9_then_resume_loses_nothing_and_matches_an_uninterrupted_run(cli, real_data, tmp_path):
    process = _spawn("run", SPECS / "cnn_4.yaml", *RESUMABLE, "--out", tmp_path / "killed", cwd=tmp_path)
    run = _wait_for_epochs(tmp_path / "killed", 1, process)
    process.send_signal(signal.SIGKILL)
    process.wait()
    code, out, err = cli("run", "--resume", run)
    assert (code, err) == (0, "")
    resumed_from = int(out.split("after epoch ")[1].split()[0])
    assert 1 <= resumed_from < 3
    code, _, _ = cli("run", SPECS / "cnn_4.yaml", *RESUMABLE, "--out", tmp_path / "straight")
    straight = json.loads((only_run(tmp_path / "straight") / "summary.json").read_text())
    resumed = json.loads((run / "summary.json").read_text())
    strip = lambda epochs: [{k: v for k, v in e.items() if k != "seconds"} for e in epochs]  # noqa: E731
    assert strip(resumed["epochs"]) == strip(straight["epochs"])
    assert resumed["test_acc"] == straight["test_acc"]
    code, _, err = cli("run", "--resume", run)
    assert code == 2 and "this run has finished" in err


def test_ctrl_c_saves_and_says_how_to_resume(real_data, tmp_path):
    process = _spawn("run", SPECS / "cnn_4.yaml", "--train-limit", "3000", "--num-epochs", "50", "--out", tmp_path, cwd=tmp_path)
    run = _wait_for_epochs(tmp_path, 1, process)
    process.send_signal(signal.SIGINT)
    _, err = process.communicate(timeout=60)
    assert process.returncode == 130
    assert f"resume with: fmnist run --resume {run}" in err and "finished epoch(s) are saved" in err
    assert (run / "last.pt").is_file() and (run / "best.pt").is_file()
    assert torch.load(run / "last.pt", weights_only=True)["epoch"] >= 1


def test_data_command_reports_where_and_verifies(cli, real_data):
    code, out, _ = cli("data")
    assert code == 0
    assert f"fashion-mnist found: {real_data.how}" in out  # the same report as every dataset's
    assert "verified: magic numbers, sizes, labels and the published MD5s (fmnist)" in out
    assert "split: 50,000 train / 10,000 validation / 10,000 test" in out


def test_real_check_cnn_4_one_epoch_on_the_full_training_set(cli, real_data, tmp_path):
    """The CI's one real check: the study's CNN_4 and recipe, one epoch, CPU -> at least 85% on the test set."""
    code, out, err = cli("run", SPECS / "cnn_4.yaml", "--num-epochs", "1", "--device", "cpu", "--out", tmp_path)
    assert (code, err) == (0, "")
    summary = json.loads((only_run(tmp_path) / "summary.json").read_text())
    assert summary["test_acc"] >= 0.85, out


def test_set_overrides_the_spec_and_print_config_round_trips(cli, tmp_path):
    code, out, err = cli("run", "cnn_4", "--set", "train.lr=1e-3", "--set", "layers.1=conv 5x5x16", "--set", "expect={}",
                         "--batch-size", "64", "--print-config")
    assert (code, err) == (0, "")
    printed = yaml.safe_load(out)
    assert printed["layers"][0] == "conv 5x5x16" and printed["train"]["lr"] == 0.001 and printed["train"]["batch_size"] == 64
    (tmp_path / "y.yaml").write_text(out)
    code, out, _ = cli("summary", tmp_path / "y.yaml", "--json")
    conv_16 = 16 * 5 * 5 + 16  # the --set layer: 16 filters of 5x5 over 1 channel, and their biases
    rest_of_cnn_4 = 65_994 - (32 * 5 * 5 + 32) - 2 * 32 - (64 * 32 * 5 * 5 + 64)  # CNN_4 less its first conv, bn, 2nd conv
    second_conv = 64 * 16 * 5 * 5 + 64  # now over 16 channels, not 32
    assert code == 0 and json.loads(out)["params"]["total"] == conv_16 + 2 * 16 + second_conv + rest_of_cnn_4  # 39,946
    for bad, message in (("train.lr=abc", "train.lr: 'abc' is not of type 'number'"),
                         ("layers.99=relu", "--set layers.99=relu: '99' is not a position from 1 to 13 in layers"),
                         ("nokey", "--set nokey: expected KEY=VALUE")):
        code, _, err = cli("run", "cnn_4", "--set", bad, "--dry-run")
        assert code == 2 and message in err and len(err.splitlines()) == 1


def test_set_is_recorded_in_the_run_folder(cli, real_data, tmp_path):
    code, _, err = cli("run", "cnn_4", "--set", "train.seed=7", "--train-limit", "300", "--num-epochs", "1", "--out", tmp_path)
    assert (code, err) == (0, "")
    config = yaml.safe_load((only_run(tmp_path) / "config.yaml").read_text())
    assert config["overrides"] == ["train.seed=7"] and config["hparams"]["seed"] == 7 and config["spec"]["train"]["seed"] == 7


def test_exponent_numbers_read_as_numbers_in_specs(cli, write_spec):
    code, out, err = cli("run", write_spec("name: t\nlayers: [fc 10]\ntrain: {lr: 1e-3, rs: 5E-4}\n"), "--dry-run")
    assert (code, err) == (0, "")
    assert yaml.safe_load(out)["hparams"]["lr"] == 0.001 and yaml.safe_load(out)["hparams"]["rs"] == 0.0005
