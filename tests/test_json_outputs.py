"""Machine-readable outputs: eval (with per-class precision, recall, F1 and top-k), predict, validate and data --json."""
import json

import numpy as np
import pytest
from PIL import Image

from fmnist.datasets.fashion_mnist import read_dataset
from tests.conftest import SPECS, TINY_SPEC, only_run


@pytest.fixture(scope="module")
def tiny_run(tmp_path_factory, real_data):
    from fmnist.cli import main

    folder = tmp_path_factory.mktemp("json")
    (folder / "tiny.yaml").write_text(TINY_SPEC)
    assert main(["run", str(folder / "tiny.yaml"), "--train-limit", "500", "--num-epochs", "2", "--out", str(folder / "runs")]) == 0
    return only_run(folder / "runs")


def test_eval_json_has_precision_recall_f1_and_top_k(cli, tiny_run):
    code, out, err = cli("eval", tiny_run, "--json")
    assert (code, err) == (0, "")
    report = json.loads(out)
    confusion = np.array(report["confusion"], dtype=float)
    for index, name in enumerate(report["class_names"]):  # recomputed here from the confusion matrix
        row = report["per_class"][name]
        precision = confusion[index, index] / confusion[:, index].sum() if confusion[:, index].sum() else 0.0
        recall = confusion[index, index] / confusion[index].sum()
        assert row["precision"] == pytest.approx(precision, abs=1e-6) and row["recall"] == pytest.approx(recall, abs=1e-6)
        assert row["support"] == confusion[index].sum() == 1000
    top = report["top_k_acc"]
    assert top["top1"] == pytest.approx(report["test_acc"]) and top["top1"] <= top["top3"] <= top["top5"] <= 1
    code, text, _ = cli("eval", tiny_run)
    assert "Per class" in text and f"top3 {100 * top['top3']:.2f}%" in text


def test_eval_tests_with_or_without_the_flip_average_as_asked(cli, tiny_run, real_data):
    import torch

    from fmnist.runner.evaluation import EvalSettings, evaluate
    from fmnist.runner.rundir import RunDir
    from fmnist.runner.speedups import eval_levers

    run, cpu = RunDir.existing(tiny_run), torch.device("cpu")
    model, _ = run.best_model(cpu)
    arrays = read_dataset(real_data)
    images, labels = torch.from_numpy(arrays["test_images"].copy()).unsqueeze(1), torch.from_numpy(arrays["test_labels"].copy()).long()
    levers = eval_levers(run.config().speed, cpu)
    for flags, tta in (((), False), (("--tta",), True), (("--no-tta",), False)):  # the run itself trained without
        code, out, err = cli("eval", tiny_run, *flags, "--json")
        assert (code, err) == (0, "")
        report = json.loads(out)
        expected = evaluate(model, images, labels, EvalSettings("softmax", cpu, **levers, tta=tta))
        assert report["tta"] is tta and report["test_acc"] == pytest.approx(expected.accuracy, abs=1e-6)
    assert json.loads(out)["test_acc"] == pytest.approx(json.loads((tiny_run / "summary.json").read_text())["test_acc"])


def test_predict_json_gives_every_class(cli, tiny_run, real_data, tmp_path):
    image = tmp_path / "boot.png"
    Image.fromarray(read_dataset(real_data)["test_images"][0]).save(image)
    code, out, err = cli("predict", tiny_run, image, "--json")
    assert (code, err) == (0, "")
    (row,) = json.loads(out)
    assert row["image"] == str(image) and sum(row["probabilities"].values()) == pytest.approx(1, abs=1e-4)
    assert row["probability"] == max(row["probabilities"].values()) and row["class"] in row["probabilities"]


def test_validate_and_data_json(cli, write_spec, real_data):
    bad = write_spec("name: x\nlayers: [convv 3x3x8, fc 10]\n")
    code, out, _ = cli("validate", SPECS / "cnn_4.yaml", bad, "--json")
    good, broken = json.loads(out)
    assert code == 2
    assert good["ok"] and good["params"] == 65_994 and good["macs"] == 3_873_792
    assert not broken["valid"] and "unknown layer kind 'convv'" in broken["problems"][0]
    code, out, _ = cli("data", "--json")
    report = json.loads(out)
    assert code == 0 and report["split"] == {"train": 50_000, "validation": 10_000, "test": 10_000}
    assert report["input"] == [1, 28, 28] and len(report["classes"]) == 10 and "published MD5s" in report["check"]
