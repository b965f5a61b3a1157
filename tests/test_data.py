"""The IDX loader on tiny generated files (good and corrupt), where data is looked for, and the study's split."""
import gzip

import numpy as np
import pytest
import torch

from fmnist.errors import UsageError
from fmnist.datasets import fashion_mnist as data
from fmnist.datasets.fashion_mnist import IdxFile, locate, read_idx
from fmnist.datasets.splits import stratified_split
from tests.conftest import write_idx

TINY = IdxFile("tiny-images-idx3-ubyte", 2051, (5, 28, 28), "0" * 32)


def tiny_images():
    return np.arange(5 * 28 * 28, dtype=np.uint64).reshape(5, 28, 28) % 251


@pytest.mark.parametrize("gz", [False, True])
def test_reads_raw_and_gzipped_idx(tmp_path, gz):
    path = write_idx(tmp_path / ("t.gz" if gz else "t"), tiny_images(), gz=gz)
    array = read_idx(path, TINY, verify_checksum=False)
    assert array.shape == (5, 28, 28) and array.dtype == np.uint8
    assert (array == tiny_images().astype(np.uint8)).all()


def test_checksum_is_checked(tmp_path):
    path = write_idx(tmp_path / "t", tiny_images())
    with pytest.raises(UsageError, match=r"checksum mismatch: MD5 [0-9a-f]{32}, published 0{32} \(corrupt or altered\)"):
        read_idx(path, TINY)


@pytest.mark.parametrize("damage, message", [
    (lambda p: p.write_bytes(p.read_bytes()[:-100]), "truncated or padded: 3,836 bytes, expected 3,936"),
    (lambda p: p.write_bytes(p.read_bytes()[:5]), "truncated file: 5 bytes, not an IDX header"),
    (lambda p: write_idx(p, tiny_images(), magic=2049 + 0x10000), "IDX magic number 67585, expected 2051"),
    (lambda p: write_idx(p, np.zeros((5, 14, 56))), r"holds shape \(5, 14, 56\), expected \(5, 28, 28\)"),
])
def test_corrupt_idx_gets_a_clear_error(tmp_path, damage, message):
    path = write_idx(tmp_path / "t", tiny_images())
    damage(path)
    with pytest.raises(UsageError, match=message) as caught:
        read_idx(path, TINY, verify_checksum=False)
    assert caught.value.file == str(path)


def test_corrupt_gzip_gets_a_clear_error(tmp_path):
    path = tmp_path / "t.gz"
    path.write_bytes(gzip.compress(np.random.default_rng(0).bytes(5000))[:2000])
    with pytest.raises(UsageError, match="corrupt file"):
        read_idx(path, TINY, verify_checksum=False)


def _fake_set(folder, gz=False):
    folder.mkdir(parents=True, exist_ok=True)
    for spec in data.FILES.values():
        write_idx(folder / (spec.name + (".gz" if gz else "")), np.zeros((2,) + spec.shape[1:]))


def test_named_folder_is_the_only_place_looked(tmp_path, monkeypatch):
    monkeypatch.delenv("FMNIST_DATA", raising=False)
    _fake_set(tmp_path / "mine")
    assert locate(tmp_path / "mine").how == f"--data-dir: {tmp_path / 'mine'}"
    _fake_set(tmp_path / "tv" / "FashionMNIST" / "raw", gz=True)
    assert locate(tmp_path / "tv").how.startswith("--data-dir (torchvision layout)")
    monkeypatch.setenv("FMNIST_DATA", str(tmp_path / "mine"))
    assert locate().how == f"$FMNIST_DATA: {tmp_path / 'mine'}"
    (tmp_path / "empty").mkdir()
    with pytest.raises(UsageError, match=r"Fashion-MNIST not found \(looked in .*empty.*\); get it with 'apt-get install dataset-fashion-mnist'"):
        locate(tmp_path / "empty")


def test_debian_package_is_found_last(tmp_path, monkeypatch):
    monkeypatch.delenv("FMNIST_DATA", raising=False)
    monkeypatch.chdir(tmp_path)
    monkeypatch.setattr(data, "DEBIAN_DIR", tmp_path / "debian")
    _fake_set(tmp_path / "debian", gz=True)
    assert locate().how == f"Debian package dataset-fashion-mnist: {tmp_path / 'debian'}"
    _fake_set(tmp_path / "data" / "FashionMNIST" / "raw")
    assert locate().how.startswith("torchvision layout in ./data")


def test_wrong_sized_files_are_refused(tmp_path):
    _fake_set(tmp_path / "small")
    with pytest.raises(UsageError, match=r"holds shape \(2, 28, 28\), expected \(60000, 28, 28\)"):
        data.read_dataset(locate(tmp_path / "small"))


def test_stratified_split_is_fixed_and_balanced():
    labels = torch.arange(600) % 10
    train, val = stratified_split(labels, per_class=10)
    assert len(val) == 100 and len(train) == 500
    assert torch.bincount(labels[val]).tolist() == [10] * 10
    assert not set(train.tolist()) & set(val.tolist())
    again_train, again_val = stratified_split(labels, per_class=10)
    assert torch.equal(train, again_train) and torch.equal(val, again_val)
    assert len(set(labels[train[:20]].tolist())) >= 6  # a short --train-limit still sees most classes


def test_real_dataset_verifies_and_splits_as_the_study(real_data):
    from fmnist.datasets.choice import DataChoice
    from fmnist.datasets.loading import load_data, plan_data

    splits = load_data(plan_data(DataChoice(), str(real_data.directory), torch.device("cpu")))
    assert splits.train_x.shape == (50_000, 1, 28, 28) and splits.train_x.dtype == torch.uint8
    assert splits.val_x.shape == (10_000, 1, 28, 28) and splits.test_x.shape == (10_000, 1, 28, 28)
    assert torch.bincount(splits.val_y).tolist() == [1000] * 10
    assert torch.bincount(splits.train_y).tolist() == [5000] * 10
    assert torch.bincount(splits.test_y).tolist() == [1000] * 10
