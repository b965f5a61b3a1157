"""Round 3 of image folders and pictures as a user hands them over: FIFOs, 16-bit PNGs, palettes with transparency,
links out of the dataset, a class with no training image, a folder changed under a run, a run with 300 classes."""
from __future__ import annotations

import json
import os
import warnings
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from tests.conftest import only_run
from tests.test_datasets import make_folder, one_line_error, save_images

QUICK = ("--num-epochs", "1", "--threads", "1")
TINY = "name: tiny\nlayers: [conv 3x3x4, relu, pool 2x2, fc {classes}]\nclasses: {classes}\n"


@pytest.fixture(autouse=True)
def own_cache(tmp_path, monkeypatch):
    monkeypatch.setenv("FMNIST_CACHE", str(tmp_path / "cache"))


def splits_of(root: Path):
    from fmnist.datasets.choice import choose_data
    from fmnist.datasets.loading import load_data, plan_data

    return load_data(plan_data(choose_data(None, str(root)), None, torch.device("cpu")))


def real_images(real_data, count: int):
    from fmnist.datasets.fashion_mnist import read_dataset

    arrays = read_dataset(real_data)
    return arrays["test_images"][:count], arrays["test_labels"][:count]


@pytest.mark.timeout(300)  # opening the fifo would block for ever: a hang is a failure
def test_a_fifo_named_like_an_image_is_skipped_in_a_folder_and_refused_by_predict(cli, write_spec, tmp_path, real_data):
    root = make_folder(tmp_path / "photos", splits=())
    os.mkfifo(root / "bag" / "zz.png")  # opening it for reading would block forever
    code, out, err = cli("data", "--data", root, "--json")
    assert (code, err) == (0, "") and sum(json.loads(out)["split"].values()) == 60
    spec = write_spec(TINY.format(classes=3))
    assert cli("run", spec, "--data", root, *QUICK, "--out", tmp_path / "runs")[0] == 0
    code, _, err = cli("predict", only_run(tmp_path / "runs"), root / "bag" / "zz.png")
    assert "not a regular file" in one_line_error(code, err)


def test_sixteen_bit_pngs_are_scaled_not_clipped_in_folders_and_predict(cli, tmp_path, real_data):
    images, labels = real_images(real_data, 60)
    for depth in (8, 16):
        for index, (pixels, label) in enumerate(zip(images, labels)):
            folder = tmp_path / f"png{depth}" / f"class{label % 3}"
            folder.mkdir(parents=True, exist_ok=True)
            data = pixels if depth == 8 else pixels.astype(np.uint16) * 257  # the same picture at 16 bits
            Image.fromarray(data).save(folder / f"{index}.png")
    assert Image.open(next((tmp_path / "png16").rglob("*.png"))).mode.startswith("I")
    eight, sixteen = splits_of(tmp_path / "png8"), splits_of(tmp_path / "png16")
    assert torch.equal(eight.train_x, sixteen.train_x) and torch.equal(eight.test_x, sixteen.test_x)
    assert 0.2 < float(sixteen.train_x.float().mean() / 255) < 0.5  # not the nearly white pictures of clipping

    from fmnist.runner.images import load_image

    one8, one16 = next((tmp_path / "png8").rglob("0.png")), next((tmp_path / "png16").rglob("0.png"))
    assert torch.equal(load_image(one8), load_image(one16))


def test_a_palette_png_with_transparency_loads_without_a_warning(tmp_path):
    root = tmp_path / "palettes"
    for label in ("a", "b"):
        (root / label).mkdir(parents=True)
        for index in range(10):
            picture = Image.new("P", (28, 28))
            picture.putpalette([value for grey in range(256) for value in (grey, grey, grey)])
            picture.putdata([(index * 7 + pixel) % 256 for pixel in range(28 * 28)])
            picture.save(root / label / f"{index}.png", transparency=bytes([0, 128, 200]))
    assert isinstance(Image.open(root / "a" / "0.png").info["transparency"], bytes)
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # Pillow's "Palette images with Transparency expressed in bytes" would fail this
        splits = splits_of(root)
    assert len(splits.train_y) + len(splits.val_y) + len(splits.test_y) == 20 and splits.train_x.shape[1] == 3


def test_a_link_out_of_the_dataset_pulls_nothing_in_but_one_inside_does(tmp_path):
    outside = tmp_path / "elsewhere"
    save_images(outside, 7, value=255)
    root = make_folder(tmp_path / "photos", splits=())
    (root / "bag" / "icons").symlink_to(outside, target_is_directory=True)  # a folder link leading out
    (root / "bag" / "one.png").symlink_to(outside / "000.png")  # a file link leading out
    (root / "shirt" / "again.png").symlink_to(root / "boot" / "000.png")  # a link that stays inside
    splits = splits_of(root)
    images = torch.cat([splits.train_x, splits.val_x, splits.test_x])
    assert len(images) == 61 and not (images == 255).all(dim=(1, 2, 3)).any()  # none of the white outsiders


def test_a_class_with_no_training_image_is_refused(cli, write_spec, tmp_path):
    root = make_folder(tmp_path / "photos", splits=(), per_class=20)
    for extra in sorted((root / "bag").iterdir())[2:]:
        extra.unlink()  # two images: one to validation, one to test, none to train
    spec = write_spec(TINY.format(classes=3) + "data: {val: 0.3, test: 0.3}\n")
    code, _, err = cli("run", spec, "--data", root, *QUICK, "--out", tmp_path / "runs")
    assert "class 'bag' has no training image" in one_line_error(code, err)
    assert not (tmp_path / "runs").exists()


def test_a_folder_changed_under_a_run_is_refused_by_resume_and_eval(cli, write_spec, tmp_path):
    root = make_folder(tmp_path / "photos", splits=(), per_class=10)
    spec = write_spec(TINY.format(classes=3))
    assert cli("run", spec, "--data", root, *QUICK, "--out", tmp_path / "runs")[0] == 0
    run = only_run(tmp_path / "runs")
    assert cli("eval", run, "--json")[0] == 0
    save_images(root / "bag", 30, value=90)  # 20 images more: other splits than the run's
    code, _, err = cli("eval", run)
    assert "the data changed since this run started" in one_line_error(code, err)
    (run / "summary.json").unlink()  # as if it had been stopped before its test
    code, _, err = cli("run", "--resume", run)
    assert "its images were added, removed or changed" in one_line_error(code, err)
    code, out, err = cli("eval", run, "--data", root, "--json")  # asked for by name: testing on the new folder is allowed
    assert (code, err) == (0, "") and json.loads(out)["test_acc"] >= 0


@pytest.mark.timeout(300)  # the confusion plot once drew 90,000 numbers (112 s): what it draws is checked, a hang fails
def test_eval_of_a_run_with_300_classes_is_one_plot_without_numbers(cli, write_spec, tmp_path):
    root = tmp_path / "many"
    for number in range(300):
        save_images(root / "train" / f"c{number:03d}", 2, size=(8, 8), value=number % 256)
        save_images(root / "test" / f"c{number:03d}", 1, size=(8, 8), value=number % 256)
    spec = write_spec("name: many\ninput: [1, 8, 8]\nclasses: 300\nlayers: [fc 300]\n"
                      "data: {val: 0.5}\n")
    code, _, err = cli("run", spec, "--data", root, *QUICK, "--out", tmp_path / "runs")
    assert (code, err) == (0, ""), err
    code, out, err = cli("eval", only_run(tmp_path / "runs"))
    assert (code, err) == (0, "") and "300 classes, too many to print" in out  # the plot draws no 90,000 numbers
    assert (only_run(tmp_path / "runs") / "confusion.png").stat().st_size > 1000
