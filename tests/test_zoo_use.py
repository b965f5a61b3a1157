"""Using a zoo model as a user does: weights from torchvision (--init), a picture (draw), the editor's schema and a
torch-free validate, and a fine-tune on a folder of real Fashion-MNIST images, end to end."""
import json
import shutil
import subprocess
import sys

import jsonschema
import pytest
import torch
import yaml
from PIL import Image

from fmnist.builder.spec import ZOO_SPECS
from tests.conftest import only_run

pytestmark = pytest.mark.filterwarnings("ignore::DeprecationWarning")


def test_validate_checks_shapes_without_importing_torch(tmp_path):
    code = ("import sys; from fmnist.cli import main; "
            f"code = main(['validate', '--no-expect', {str(ZOO_SPECS / 'convnext_tiny.yaml')!r}]); "
            "print(code, 'torch' in sys.modules)")
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=tmp_path)
    assert result.stdout.splitlines()[-1] == "0 False", result.stderr
    assert "convnext_tiny.yaml: ok (convnext_tiny, 119 layers)" in result.stdout


def test_every_zoo_spec_validates_with_its_expect_figures(cli):
    code, out, err = cli("validate", ZOO_SPECS)
    assert (code, err) == (0, "") and out.count("params as expected") == len(list(ZOO_SPECS.glob("*.yaml")))


def test_the_schema_accepts_every_shipped_spec_and_names_kinds_for_editors(cli, write_spec):
    code, out, err = cli("schema")
    schema = json.loads(out)
    assert code == 0 and "conv" in schema["properties"]["layers"]["items"]["oneOf"][1]["propertyNames"]["enum"]
    for path in [*ZOO_SPECS.glob("*.yaml"), *ZOO_SPECS.parent.glob("*.yaml")]:
        jsonschema.validate(yaml.safe_load(path.read_text()), schema)
    with pytest.raises(jsonschema.ValidationError, match="'layrs' was unexpected"):
        jsonschema.validate({"name": "x", "layers": ["relu"], "layrs": []}, schema)
    with pytest.raises(jsonschema.ValidationError, match="is not valid under any of the given schemas"):
        jsonschema.validate({"name": "x", "layers": [{"convv": {"kernel": 3}}]}, schema)


def test_draw_shows_blocks_and_branches(cli, tmp_path):
    code, out, err = cli("draw", "googlenet", "--out", tmp_path / "g.dot")
    text = (tmp_path / "g.dot").read_text()
    assert (code, err) == (0, "") and out == f"wrote {tmp_path / 'g.dot'}\n"
    assert text.count('label="parallel (4 branches, concatenated)"') == 9 and text.count('"concat\n(') == 9
    code, _, _ = cli("draw", "convnext_tiny", "--out", tmp_path / "c.dot")
    text = (tmp_path / "c.dot").read_text()
    assert code == 0 and text.count('label="identity"') == 18 and text.count('"scale 1e-6\n(') == 18
    if shutil.which("dot"):
        code, out, err = cli("draw", "resnet18", "--out", tmp_path / "r.svg")
        assert code == 0 and (tmp_path / "r.svg").read_text().lstrip().startswith("<?xml")
    code, _, err = cli("draw", "resnet18", "--out", tmp_path / "r.gif")
    assert code == 2 and "the picture's format comes from its suffix: .svg, .png, .pdf, .dot" in err


@pytest.fixture(scope="module")
def fashion_folder(tmp_path_factory, real_data):
    """400 real Fashion-MNIST test images as 32x32 RGB PNGs in train/ and test/ class folders."""
    from fmnist.datasets.fashion_mnist import CLASS_NAMES, read_dataset

    arrays = read_dataset(real_data)
    root = tmp_path_factory.mktemp("fm") / "fm"
    for index in range(400):
        label = CLASS_NAMES[arrays["test_labels"][index]].replace("/", "-")
        split = "test" if index % 5 == 0 else "train"
        (root / split / label).mkdir(parents=True, exist_ok=True)
        image = Image.fromarray(arrays["test_images"][index]).resize((32, 32)).convert("RGB")
        image.save(root / split / label / f"{index}.png")
    return root


def test_fine_tune_resnet18_from_torchvision_weights_on_a_folder_then_eval_predict_export(cli, tmp_path, fashion_folder):
    from torchvision import models

    torch.manual_seed(0)
    reference = models.resnet18()
    torch.save(reference.state_dict(), tmp_path / "resnet18.pth")
    small = ["--set", "input=[3,32,32]", "--set", "classes=10", "--data", fashion_folder, "--out", tmp_path / "runs"]
    code, out, err = cli("run", "resnet18", "--init", tmp_path / "resnet18.pth", "--init-fresh-head", *small, "--num-epochs", "1",
                         "--threads", "1", "--batch-size", "64")
    assert (code, err) == (0, ""), err
    assert "init: 120 tensors from " in out and "left fresh: 12.weight, 12.bias" in out  # 10 classes, not 1000
    run = only_run(tmp_path / "runs")
    assert yaml.safe_load((run / "config.yaml").read_text())["init"]["weights"] == str(tmp_path / "resnet18.pth")
    code, out, err = cli("eval", run, "--json")
    assert (code, err) == (0, "") and 0 <= json.loads(out)["test_acc"] <= 1
    photo = next((fashion_folder / "test" / "Bag").iterdir())
    code, out, err = cli("predict", run, photo, "--json")
    assert (code, err) == (0, "") and len(json.loads(out)[0]["probabilities"]) == 10
    code, out, err = cli("export", run, "--format", "torchscript")
    assert code == 0 and "(N, 3, 32, 32)" in out


def test_init_takes_a_wrapped_state_dict_and_lands_each_tensor_where_it_belongs(cli, tmp_path, fashion_folder):
    from torchvision import models

    torch.manual_seed(1)
    reference = models.resnet18(num_classes=10)
    torch.save({"state_dict": reference.state_dict()}, tmp_path / "r18.ckpt")  # a Lightning-style wrapper
    code, out, err = cli("run", "resnet18", "--init", tmp_path / "r18.ckpt", "--set", "input=[3,32,32]", "--set",
                         "classes=10", "--data", fashion_folder, "--out", tmp_path / "runs", "--num-epochs", "1",
                         "--train-limit", "64", "--lr", "1e-30", "--threads", "1")
    assert (code, err) == (0, "") and "init: 122 tensors from" in out and "left fresh" not in out
    saved = torch.load(only_run(tmp_path / "runs") / "best.pt", weights_only=True)["model"]
    for ours, theirs in (("0.weight", "conv1.weight"), ("4.0.0.body.0.weight", "layer1.0.conv1.weight"),
                         ("10.0.body.3.weight", "layer4.1.conv2.weight"), ("12.weight", "fc.weight")):
        assert torch.allclose(saved[ours], reference.state_dict()[theirs], atol=1e-6), ours


@pytest.mark.parametrize("init, extra, message", [
    ("missing.pth", [], "missing.pth: no such weights file"),
    ("garbage.pth", [], "garbage.pth: cannot read weights"),
    ("resnet18.pth", [], "2 of the model's tensors have no partner in the file (12.weight (10, 512), 12.bias (10,)); "
                         "the file has fc.weight (1000, 512), fc.bias (1000,) unused; add --init-fresh-head"),
    ("mobilenet.pth", ["--init-fresh-head"], "cannot pair the weights by shape"),
    ("torchvision:resnet_eighteen", [], "torchvision has no classification model 'resnet_eighteen'"),
    ("torchvision:resnet18", [], "cannot fetch torchvision's resnet18 weights"),
])
def test_bad_init_is_one_line_and_no_run_folder(cli, tmp_path, monkeypatch, fashion_folder, init, extra, message):
    from torchvision import models

    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "torch-home"))  # nothing cached: the fetch must go out (offline)
    torch.save(models.resnet18().state_dict(), tmp_path / "resnet18.pth")
    torch.save(models.mobilenet_v2().state_dict(), tmp_path / "mobilenet.pth")
    (tmp_path / "garbage.pth").write_bytes(b"not a checkpoint")
    monkeypatch.chdir(tmp_path)
    code, out, err = cli("run", "resnet18", "--set", "classes=10", "--set", "input=[3,32,32]", "--data", fashion_folder,
                         "--init", init, *extra, "--out", tmp_path / "runs", "--train-limit", "10")
    assert code == 2 and len(err.splitlines()) == 1 and message in err, err
    assert not (tmp_path / "runs").exists()
