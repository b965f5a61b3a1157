"""Data beyond Fashion-MNIST: small files generated in each real on-disk format, read through the same code a real
file goes through (torchvision's dataset classes, Pillow, fmnist's folder reader and cache)."""
from __future__ import annotations

import hashlib
import json
import pickle
from pathlib import Path

import numpy as np
import pytest
import yaml
from PIL import Image

from tests.conftest import TINY_SPEC, only_run, write_idx

RNG = np.random.default_rng(0)
QUICK = ("--num-epochs", "1", "--threads", "1")


@pytest.fixture(autouse=True)
def own_cache(tmp_path, monkeypatch):
    monkeypatch.setenv("FMNIST_CACHE", str(tmp_path / "cache"))


def one_line_error(code: int, err: str) -> str:
    assert code == 2, err
    assert err.startswith("fmnist: error: ") and err.count("\n") == 1 and "Traceback" not in err, err
    return err


# --- the MNIST family: IDX files in torchvision's raw/ folder --------------------------------------------------

def balanced_labels(count: int, classes: int = 10) -> np.ndarray:
    return RNG.permutation(np.arange(count) % classes)


def make_mnist_family(root: Path, folder: str, train: int = 240, test: int = 60) -> dict:
    raw = root / folder / "raw"
    raw.mkdir(parents=True)
    arrays = {"train-images-idx3-ubyte": RNG.integers(0, 256, (train, 28, 28)),
              "train-labels-idx1-ubyte": balanced_labels(train),
              "t10k-images-idx3-ubyte": RNG.integers(0, 256, (test, 28, 28)),
              "t10k-labels-idx1-ubyte": balanced_labels(test)}
    for name, array in arrays.items():
        write_idx(raw / name, array)
    return arrays


@pytest.mark.parametrize("name, folder, first_class", [("mnist", "MNIST", "0 - zero"), ("kmnist", "KMNIST", "o")])
def test_mnist_family_is_read_from_its_idx_files_by_torchvision(cli, tmp_path, name, folder, first_class):
    arrays = make_mnist_family(tmp_path / "data", folder)
    code, out, err = cli("data", "--data", name, "--data-dir", tmp_path / "data", "--json")
    assert (code, err) == (0, "")
    report = json.loads(out)
    assert report["input"] == [1, 28, 28] and report["classes"][0] == first_class and len(report["classes"]) == 10
    assert report["split"] == {"train": 240 - 40, "validation": 40, "test": 60}  # a sixth of each class of 24
    assert "torchvision" in report["check"] and str(tmp_path / "data" / folder / "raw") in report["found"]

    import torch

    from fmnist.datasets.choice import choose_data
    from fmnist.datasets.loading import load_data, plan_data
    splits = load_data(plan_data(choose_data(None, name), str(tmp_path / "data"), torch.device("cpu")))
    assert torch.equal(splits.test_x[:, 0], torch.from_numpy(arrays["t10k-images-idx3-ubyte"].astype(np.uint8)))
    assert splits.test_y.tolist() == arrays["t10k-labels-idx1-ubyte"].tolist()


def test_a_run_on_mnist_trains_without_flip_and_keeps_the_digit_names(cli, write_spec, tmp_path):
    make_mnist_family(tmp_path / "data", "MNIST")
    spec = write_spec(TINY_SPEC)
    code, out, err = cli("run", spec, "--data", "mnist", "--data-dir", tmp_path / "data", "--augment", *QUICK,
                         "--out", tmp_path / "runs")
    assert (code, err) == (0, ""), err
    run = only_run(tmp_path / "runs")
    config = yaml.safe_load((run / "config.yaml").read_text())
    assert config["hparams"]["flip"] is False and config["hparams"]["augment"] is True  # a mirrored 2 is not a 2
    assert config["data"]["choice"] == {"name": "mnist"} and config["data"]["train"] == 200
    summary = json.loads((run / "summary.json").read_text())
    assert summary["class_names"][:2] == ["0 - zero", "1 - one"]
    code, out, err = cli("eval", run, "--json")
    assert code == 0 and json.loads(out)["test_acc"] == summary["test_acc"] and json.loads(out)["data"] == "mnist"


def test_a_missing_named_dataset_says_where_to_put_it_and_a_failed_download_leaves_nothing(cli, tmp_path, monkeypatch):
    empty = tmp_path / "empty"
    empty.mkdir()
    err = one_line_error(*cli("data", "--data", "kmnist", "--data-dir", empty)[::2])
    assert f"kmnist not found or not intact in {empty / 'KMNIST' / 'raw'}" in err and "train-images-idx3-ubyte" in err
    for variable in ("http_proxy", "https_proxy", "HTTP_PROXY", "HTTPS_PROXY"):  # offline, whatever this machine is
        monkeypatch.setenv(variable, "http://127.0.0.1:9")
    monkeypatch.delenv("no_proxy", raising=False)
    monkeypatch.delenv("NO_PROXY", raising=False)
    err = one_line_error(*cli("data", "--data", "kmnist", "--data-dir", empty, "--download")[::2])
    assert "torchvision's download failed" in err
    assert "Tried" not in err and ", )" not in err  # torchvision's list of mirrors without a reason stays out
    assert list(empty.iterdir()) == []


# --- CIFAR: pickled batches, checked by torchvision against its MD5 list ---------------------------------------

CIFAR = {"cifar10": ("CIFAR10", "cifar-10-batches-py", [f"data_batch_{n}" for n in range(1, 6)], ["test_batch"],
                     ("batches.meta", "label_names"), "labels", 10),
         "cifar100": ("CIFAR100", "cifar-100-python", ["train"], ["test"], ("meta", "fine_label_names"), "fine_labels", 100)}


def make_cifar(root: Path, name: str, monkeypatch, per_batch: int = 120) -> dict:
    """Batches in CIFAR's own format, with torchvision's MD5 list pointed at them (the check itself still runs)."""
    from torchvision import datasets

    cls_name, folder, train_files, test_files, (meta_file, meta_key), label_key, classes = CIFAR[name]
    base = root / folder
    base.mkdir(parents=True)
    md5 = {}
    written = {}
    for filename in train_files + test_files:
        count = per_batch if classes == 10 else per_batch * 5
        data = RNG.integers(0, 256, (count, 3 * 32 * 32)).astype(np.uint8)
        labels = (np.arange(count) % classes).tolist()
        (base / filename).write_bytes(pickle.dumps({"data": data, label_key: labels}, protocol=2))
        md5[filename] = hashlib.md5((base / filename).read_bytes()).hexdigest()
        written[filename] = data
    (base / meta_file).write_bytes(pickle.dumps({meta_key: [f"class{n}" for n in range(classes)]}, protocol=2))
    cls = getattr(datasets, cls_name)
    monkeypatch.setattr(cls, "train_list", [[f, md5[f]] for f in train_files])
    monkeypatch.setattr(cls, "test_list", [[f, md5[f]] for f in test_files])
    monkeypatch.setattr(cls, "meta", {"filename": meta_file, "key": meta_key,
                                      "md5": hashlib.md5((base / meta_file).read_bytes()).hexdigest()})
    return written


@pytest.mark.parametrize("name", ["cifar10", "cifar100"])
def test_cifar_batches_are_read_and_checked_by_torchvision(cli, tmp_path, monkeypatch, name):
    written = make_cifar(tmp_path / "data", name, monkeypatch)
    code, out, err = cli("data", "--data", name, "--data-dir", tmp_path / "data", "--json")
    assert (code, err) == (0, "")
    report = json.loads(out)
    classes = CIFAR[name][-1]
    assert report["input"] == [3, 32, 32] and report["classes"] == [f"class{n}" for n in range(classes)]
    assert report["split"]["test"] == len(written[CIFAR[name][3][0]]) and "MD5" in report["check"]

    import torch

    from fmnist.datasets.choice import choose_data
    from fmnist.datasets.loading import load_data, plan_data
    splits = load_data(plan_data(choose_data(None, name), str(tmp_path / "data"), torch.device("cpu")))
    first = written[CIFAR[name][3][0]][0].reshape(3, 32, 32)  # CIFAR rows are planar R, G, B
    assert torch.equal(splits.test_x[0], torch.from_numpy(first))

    batch = tmp_path / "data" / CIFAR[name][1] / CIFAR[name][3][0]
    batch.write_bytes(batch.read_bytes()[:-10])  # damaged: torchvision's MD5 check refuses it
    err = one_line_error(*cli("data", "--data", name, "--data-dir", tmp_path / "data")[::2])
    assert f"{name} not found or not intact" in err and "corrupted" in err


def test_a_spec_for_cifar_refuses_other_data_and_converts_when_asked(cli, write_spec, tmp_path, monkeypatch, real_data):
    spec = write_spec("name: rgb\ninput: [3, 32, 32]\nlayers: [conv 3x3x4, relu, pool 2x2, fc 10]\n")
    err = one_line_error(*cli("run", spec, "--out", tmp_path / "runs")[::2])
    assert "spec wants input (3, 32, 32); fashion-mnist gives (1, 28, 28); add data: {resize: 32, channels: 3} to convert" in err
    assert not (tmp_path / "runs").exists()
    code, out, err = cli("run", spec, "--set", "data.resize=32", "--set", "data.channels=3", "--train-limit", "200",
                         *QUICK, "--out", tmp_path / "runs")
    assert (code, err) == (0, ""), err
    config = yaml.safe_load((only_run(tmp_path / "runs") / "config.yaml").read_text())
    assert config["data"]["input"] == [3, 32, 32] and config["data"]["choice"] == {"name": "fashion-mnist",
                                                                                      "resize": [32, 32], "channels": 3}


@pytest.mark.timeout(120)  # a hang (a download, a decode of 240 GB) is a failure, not a slow pass
def test_a_dataset_too_large_for_memory_is_refused_before_it_is_read(cli, write_spec, tmp_path):
    spec = write_spec("name: huge\ninput: [3, 4096, 4096]\nclasses: 100\ndata: {name: cifar100, resize: 4096}\n"
                      "layers: [gap, fc 100]\n")
    err = one_line_error(*cli("run", spec, "--data-dir", tmp_path, "--out", tmp_path / "runs")[::2])
    assert "cifar100: 60,000 images of 3x4096x4096 need" in err and "may take at most 50% of it" in err
    assert [path.name for path in tmp_path.iterdir()] == ["spec.yaml"]  # refused from its size: nothing fetched or made


# --- a folder of images ----------------------------------------------------------------------------------------

def save_images(folder: Path, count: int, size=(28, 28), mode="L", suffix="png", value=None) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    for index in range(count):
        shape = (size[1], size[0]) if mode == "L" else (size[1], size[0], 3)
        pixels = np.full(shape, value, np.uint8) if value is not None else RNG.integers(0, 256, shape).astype(np.uint8)
        Image.fromarray(pixels, mode).save(folder / f"{index:03d}.{suffix}")


def make_folder(root: Path, splits=("train", "test"), classes=("boot", "shirt", "bag"), per_class=20, **image) -> Path:
    for split in splits or ("",):
        for number, name in enumerate(classes):
            save_images(root / split / name, per_class if split in ("", "train") else 5, value=40 * number, **image)
    return root


@pytest.mark.parametrize("splits, sizes", [
    ((), {"train": 3 * 16, "validation": 3 * 2, "test": 3 * 2}),  # 10% of each class of 20 to val and to test
    (("train", "test"), {"train": 3 * 18, "validation": 3 * 2, "test": 3 * 5}),
    (("train", "val", "test"), {"train": 3 * 20, "validation": 3 * 5, "test": 3 * 5}),
])
@pytest.mark.parametrize("suffix", ["png", "jpg"])
def test_an_image_folder_is_split_named_by_its_folders_and_cached(cli, tmp_path, splits, sizes, suffix):
    root = make_folder(tmp_path / "photos", splits, suffix=suffix)
    code, out, err = cli("data", "--data", root, "--json")
    assert (code, err) == (0, "")
    report = json.loads(out)
    assert report["classes"] == ["bag", "boot", "shirt"] and report["input"] == [1, 28, 28] and report["split"] == sizes
    assert report["notes"][0].startswith(f"decoded {sum(sizes.values())} images with 1 process into the cache ")
    code, out, err = cli("data", "--data", root, "--json")
    assert json.loads(out)["notes"][0].startswith("decoded images from the cache")

    save_images(root / (splits[0] if splits else "") / "bag", 21, value=80)  # one image more: the cache no longer matches
    code, out, err = cli("data", "--data", root, "--json")
    assert json.loads(out)["notes"][0].startswith("decoded") and "from the cache" not in json.loads(out)["notes"][0]

    import torch

    from fmnist.datasets.choice import choose_data
    from fmnist.datasets.loading import load_data, plan_data
    splits_ = load_data(plan_data(choose_data(None, str(root)), None, torch.device("cpu")))
    for images, labels in ((splits_.train_x, splits_.train_y), (splits_.test_x, splits_.test_y)):
        expected = {0: 80, 1: 0, 2: 40}  # bag, boot, shirt were saved as flat grey 80, 0, 40
        assert all(abs(int(image.float().mean()) - expected[int(label)]) <= 1 for image, label in zip(images, labels))


def test_a_real_run_on_a_folder_of_rgb_pngs_then_eval_predict_and_export(cli, write_spec, tmp_path, real_data):
    from fmnist.datasets.fashion_mnist import CLASS_NAMES, read_dataset
    arrays = read_dataset(real_data)
    root = tmp_path / "fm"
    for index in range(600):  # real Fashion-MNIST test images, 32x32 RGB, train/ and test/
        label = CLASS_NAMES[arrays["test_labels"][index]].replace("/", "-")
        split = "test" if index % 5 == 0 else "train"
        (root / split / label).mkdir(parents=True, exist_ok=True)
        Image.fromarray(arrays["test_images"][index]).resize((32, 32)).convert("RGB").save(root / split / label / f"{index}.png")
    spec = write_spec("name: rgb\ninput: [3, 32, 32]\ndata: {normalize: true}\n"
                      "layers: [conv 3x3x16, bn, relu, pool 2x2, conv 3x3x32, bn, relu, gap, fc 10]\n")
    code, out, err = cli("run", spec, "--data", root, "--num-epochs", "3", "--threads", "1", "--out", tmp_path / "runs")
    assert (code, err) == (0, ""), err
    run = only_run(tmp_path / "runs")
    config = yaml.safe_load((run / "config.yaml").read_text())
    summary = json.loads((run / "summary.json").read_text())
    assert config["data"]["choice"]["folder"] == str(root) and config["data"]["choice"]["normalize"] is True
    assert summary["class_names"] == sorted(n.replace("/", "-") for n in CLASS_NAMES)
    assert summary["test_acc"] > 0.3  # ten classes: chance is 0.1

    import torch
    train = torch.from_numpy(np.stack([np.asarray(Image.open(p)) for p in sorted((root / "train").rglob("*.png"))]))
    mean = train.double().div(255).mean((0, 1, 2))
    assert config["data"]["normalization"]["mean"] == pytest.approx(mean.tolist(), abs=0.02)  # of train, less val
    code, out, err = cli("eval", run, "--json")
    assert (code, err) == (0, "") and json.loads(out)["test_acc"] == summary["test_acc"]

    photo = tmp_path / "photo.png"  # a 28x28 grey picture, fitted to the run's 3x32x32 input
    Image.fromarray(arrays["test_images"][1]).save(photo)
    code, out, err = cli("predict", run, photo, "--json")
    assert (code, err) == (0, "")
    assert set(json.loads(out)[0]["probabilities"]) == set(summary["class_names"])
    code, out, err = cli("export", run, "--format", "torchscript")
    assert code == 0 and "(N, 3, 32, 32)" in out and "normalised inside the model" in out and "light object" not in out


def resize_and_truncate(path: Path) -> None:
    path.write_bytes(path.read_bytes()[:200])


@pytest.mark.parametrize("build, message", [
    (lambda r: (save_images(r / "a", 3), (r / "b").mkdir()), "class folder 'b' holds no images"),
    (lambda r: save_images(r / "a", 3), "only one class folder ('a'): a classifier needs at least 2"),
    (lambda r: r.mkdir(), "no class folders in"),
    (lambda r: (save_images(r / "a", 10), save_images(r / "b", 10), (r / "b" / "bad.png").write_bytes(b"not a png")),
     "b/bad.png: not an image this tool can read"),
    (lambda r: (save_images(r / "a", 10), save_images(r / "b", 10, size=(32, 32))),
     "images differ in size: a/000.png is 28x28, b/000.png is 32x32; add data: {resize: N}"),
    (lambda r: (save_images(r / "a", 10), save_images(r / "b", 10, mode="RGB")),
     "images differ in channels: a/000.png is grey, b/000.png is colour; add data: {channels: 3 (or 1)}"),
    (lambda r: (save_images(r / "train" / "a", 3), save_images(r / "train" / "b", 3), save_images(r / "test" / "c", 3)),
     "class folder 'c' is not among train/'s classes (a, b)"),
    (lambda r: (save_images(r / "val" / "a", 3),), "has val/ but no train/ folder"),
    (lambda r: (save_images(r / "a", 10), save_images(r / "b", 10, size=(64, 64)), resize_and_truncate(r / "b" / "001.png")),
     "b/001.png: not an image this tool can read"),  # its header reads; its pixels do not
])
def test_a_bad_folder_is_one_line_and_no_run_folder(cli, write_spec, tmp_path, build, message):
    root = tmp_path / "photos"
    root.mkdir() if message != "no class folders in" else None
    build(root)
    spec = write_spec("name: t\nclasses: 2\ndata: {resize: 28}\nlayers: [fc 2]\n" if "001.png" in message else
                      "name: t\nclasses: 2\nlayers: [fc 2]\n")
    err = one_line_error(*cli("run", spec, "--data", root, "--out", tmp_path / "runs")[::2])
    assert message in err
    assert not (tmp_path / "runs").exists()


def test_mixed_folders_train_once_converted(cli, write_spec, tmp_path):
    root = tmp_path / "photos"
    save_images(root / "a", 12)
    save_images(root / "b", 12, size=(40, 30), mode="RGB", suffix="jpg")
    spec = write_spec("name: t\nclasses: 2\ninput: [3, 32, 32]\ndata: {resize: 32, channels: 3}\nlayers: [gap, fc 2]\n")
    code, out, err = cli("run", spec, "--data", root, *QUICK, "--out", tmp_path / "runs")
    assert (code, err) == (0, ""), err
    assert "decoded 24 images with 1 process into the cache" in out


@pytest.mark.parametrize("data, message", [
    ("data: {name: svhn}", "data.name: 'svhn' is not one of ['fashion-mnist', 'mnist', 'kmnist', 'cifar10', 'cifar100']"),
    ("data: {resize: 0}", "data.resize: 0 is less than the minimum of 1"),
    ("data: {channels: 2}", "data.channels: 2 is not one of [1, 3]"),
    ("data: {val: 0.7}", "data.val: 0.7 is greater than the maximum of 0.5"),
    ("data: {name: mnist, folder: x}", "data: give 'name' or 'folder', not both"),
    ("data: nosuch", "data: nosuch: not a dataset name and no such folder"),
])
def test_a_bad_data_section_is_one_line(cli, write_spec, tmp_path, data, message):
    (tmp_path / "x").mkdir()
    spec = write_spec(f"name: t\n{data}\nlayers: [fc 10]\n")
    err = one_line_error(*cli("run", str(spec), "--out", tmp_path / "runs")[::2])
    assert message in err and not (tmp_path / "runs").exists()


@pytest.mark.parametrize("flag, message", [
    ("mnst", "--data mnst: not a dataset name (did you mean 'mnist'?) and no such folder"),
    ("./no/such/folder", "--data ./no/such/folder: no such folder"),
])
def test_a_bad_data_flag_is_one_line(cli, tmp_path, flag, message):
    err = one_line_error(*cli("run", "specs/cnn_4.yaml", "--data", flag, "--out", tmp_path / "runs")[::2])
    assert message in err


def test_the_shipped_specs_for_other_data_plan_and_validate(cli):
    for spec, data in (("specs/cifar10_resnet.yaml", {"name": "cifar10", "normalize": True}), ("specs/mnist_cnn.yaml", {"name": "mnist"})):
        code, out, err = cli("run", spec, "--dry-run")
        assert code == 0, err
        assert yaml.safe_load(out)["data"] == data
        assert cli("validate", spec)[0] == 0


def test_grid_search_and_eval_take_data_too(cli, write_spec, tmp_path):
    root = make_folder(tmp_path / "photos", ("train", "test"), per_class=30)
    spec = write_spec("name: t\nclasses: 3\nlayers: [conv 3x3x4, relu, gap, fc 3]\n")
    code, out, err = cli("grid", spec, "--data", root, "--augment", "off", "--loss", "softmax", *QUICK, "--out", tmp_path / "g")
    assert (code, err) == (0, ""), err
    config = yaml.safe_load((tmp_path / "g" / "t-noaug-softmax" / "config.yaml").read_text())
    assert config["data"]["choice"]["folder"] == str(root)
    code, out, err = cli("search", spec, "--data", root, "--trials", "1", "--space", "num_epochs=1:1", "--threads", "1",
                         "--no-retrain", "--out", tmp_path / "s")
    assert (code, err) == (0, ""), err
    other = make_folder(tmp_path / "more", ("train", "test"), classes=("a", "b", "c", "d"))
    err = one_line_error(*cli("eval", tmp_path / "g" / "t-noaug-softmax", "--data", other)[::2])
    assert f"spec has classes: 3; {other} has 4 classes" in err
    code, out, err = cli("eval", tmp_path / "g" / "t-noaug-softmax", "--data", root, "--json")
    assert code == 0 and json.loads(out)["data"] == str(root)


def test_a_cache_that_cannot_be_written_costs_time_not_the_run(cli, write_spec, tmp_path, monkeypatch):
    blocker = tmp_path / "a-file"
    blocker.write_text("")
    monkeypatch.setenv("FMNIST_CACHE", str(blocker))  # a folder cannot be made under a file
    root = make_folder(tmp_path / "photos", ())
    spec = write_spec("name: t\nclasses: 3\nlayers: [gap, fc 3]\n")
    code, out, err = cli("run", spec, "--data", root, *QUICK, "--out", tmp_path / "runs")
    assert (code, err) == (0, ""), err
    assert "decoded 60 images into memory: the cache folder" in out and "cannot be written (" in out



def test_a_damaged_cache_is_decoded_again_and_a_link_loop_is_not_followed(cli, tmp_path):
    root = make_folder(tmp_path / "photos", ())
    (root / "bag" / "loop").symlink_to(root)  # a link back up the tree
    code, out, err = cli("data", "--data", root, "--json")
    assert (code, err) == (0, "") and sum(json.loads(out)["split"].values()) == 60
    (images,) = (tmp_path / "cache").rglob("images.npy")
    images.write_bytes(images.read_bytes()[:1000])  # as if killed mid-write, or the disk went bad
    code, out, err = cli("data", "--data", root, "--json")
    assert code == 0 and json.loads(out)["notes"][0].startswith("decoded 60 images with 1 process into the cache")
    code, out, err = cli("data", "--data", root, "--json")
    assert json.loads(out)["notes"][0].startswith("decoded images from the cache")

