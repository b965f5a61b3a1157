"""`fmnist export`: the ONNX file runs in onnxruntime and the TorchScript file in torch, giving PyTorch's outputs."""
import json
import warnings

import numpy as np
import pytest
import torch

from fmnist.datasets.fashion_mnist import CLASS_NAMES, read_dataset
from tests.conftest import SPECS, only_run


@pytest.fixture(scope="module")
def trained_run(tmp_path_factory, real_data):
    from fmnist.cli import main

    out = tmp_path_factory.mktemp("export")
    assert main(["run", str(SPECS / "resnet_small.yaml"), "--train-limit", "256", "--num-epochs", "1", "--out", str(out)]) == 0
    run = only_run(out)
    return run


def _pytorch_logits(run, images):
    from fmnist.runner.rundir import RunDir

    model, _ = RunDir(run).best_model(torch.device("cpu"))
    with torch.inference_mode():
        return model.float()(torch.from_numpy(images)).numpy()


def _real_images(real_data, count=32):
    arrays = read_dataset(real_data)
    return (arrays["test_images"][:count, None].astype(np.float32) / 255), arrays["test_labels"][:count]


def test_onnx_export_runs_in_onnxruntime_like_pytorch(cli, trained_run, real_data):
    import onnx
    import onnxruntime

    code, out, err = cli("export", trained_run, "--format", "onnx")
    assert (code, err) == (0, "")
    path = trained_run / "model.onnx"
    assert f"-> {path}" in out
    meta = {p.key: p.value for p in onnx.load(str(path)).metadata_props}
    assert json.loads(meta["class_names"]) == list(CLASS_NAMES)
    images, _ = _real_images(real_data)
    session = onnxruntime.InferenceSession(str(path))
    assert [i.name for i in session.get_inputs()] == ["images"]
    onnx_logits = session.run(["logits"], {"images": images})[0]
    np.testing.assert_allclose(onnx_logits, _pytorch_logits(trained_run, images), rtol=1e-3, atol=1e-4)
    single = session.run(["logits"], {"images": images[:1]})[0]  # any batch size
    assert single.shape == (1, 10)


def test_torchscript_export_loads_without_fmnist(cli, trained_run, real_data, tmp_path):
    code, out, err = cli("export", trained_run, "--format", "torchscript", "--out", tmp_path / "net.pt")
    assert (code, err) == (0, "")
    extra = {"class_names.txt": ""}
    with warnings.catch_warnings():  # a user's torch.jit.load of the exported file; torch deprecates TorchScript
        warnings.simplefilter("ignore", FutureWarning)
        loaded = torch.jit.load(str(tmp_path / "net.pt"), _extra_files=extra)
    assert json.loads(extra["class_names.txt"]) == list(CLASS_NAMES)
    images, _ = _real_images(real_data)
    with torch.inference_mode():
        scripted = loaded(torch.from_numpy(images)).numpy()
    np.testing.assert_allclose(scripted, _pytorch_logits(trained_run, images), rtol=1e-4, atol=1e-5)


def test_export_of_a_folder_that_is_not_a_run(cli, tmp_path):
    code, _, err = cli("export", tmp_path)
    assert code == 2 and err == f"fmnist: error: {tmp_path}: not an fmnist run folder (no config.yaml)\n"
