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
    assert code == 0 and any("[cC][oO][nN][vV]" in pattern for pattern in schema["$defs"]["layer"]["oneOf"][1]["patternProperties"])
    for path in [*ZOO_SPECS.glob("*.yaml"), *ZOO_SPECS.parent.glob("*.yaml")]:
        jsonschema.validate(yaml.safe_load(path.read_text()), schema)
    with pytest.raises(jsonschema.ValidationError, match="'layrs' was unexpected"):
        jsonschema.validate({"name": "x", "layers": ["relu"], "layrs": []}, schema)
    with pytest.raises(jsonschema.ValidationError):
        jsonschema.validate({"name": "x", "layers": [{"convv": {"kernel": 3}}]}, schema)
    with pytest.raises(jsonschema.ValidationError):
        jsonschema.validate({"name": "x", "layers": ["convv 3x3x4"]}, schema)


def test_draw_shows_blocks_and_branches(cli, tmp_path):
    code, out, err = cli("draw", "googlenet", "--out", tmp_path / "g.dot", "--expand")
    text = (tmp_path / "g.dot").read_text()
    assert (code, err) == (0, "") and out == f"wrote {tmp_path / 'g.dot'}\n"
    assert text.count("parallel (4 branches, concatenated)") == 9 and text.count('"concat\n(') == 9
    code, _, _ = cli("draw", "convnext_tiny", "--out", tmp_path / "c.dot", "--expand")
    text = (tmp_path / "c.dot").read_text()
    assert code == 0 and text.count('label="identity"') == 18 and text.count('"scale 1e-6\n(') == 18
    if shutil.which("dot"):
        code, out, err = cli("draw", "resnet18", "--out", tmp_path / "r.svg")
        assert code == 0 and (tmp_path / "r.svg").read_text().lstrip().startswith("<?xml")
    code, _, err = cli("draw", "resnet18", "--out", tmp_path / "r.gif")
    assert code == 2 and "the picture's format comes from its suffix: .svg, .png, .pdf, .dot" in err


def test_a_deep_net_is_drawn_as_its_stages_with_each_block_once(cli, tmp_path):
    """Round 3 drew convnext_small 495 x 29,540 px, every one of its 36 blocks. Now: a repeat is one box that says
    x N with its first and last use's evaluated arguments, each block's layers once beside the network, parameter
    counts on the boxes, and no frame title that an edge runs through (titles are nodes beside the frame's entry)."""
    code, _, err = cli("draw", "convnext_tiny", "--out", tmp_path / "c.dot")
    text = (tmp_path / "c.dot").read_text()
    assert (code, err) == (0, "")
    assert '"cnblock(384, 0.0352941) … cnblock(384, 0.0823529) × 9\n(384, 14, 14)\n10.8M params"' in text
    assert "${" not in text and "$repeat" not in text and '"fc 1000\n(1000,)\n769,000 params"' in text
    assert text.count('label="identity"') == 1 and text.count('"scale 1e-6\n(') == 1  # the block, drawn once
    assert 'cnblock(c, rate)  ·  as in cnblock(96, 0)' in text and "label=\"residual" not in text.split("cluster")[0]
    assert "labeljust" not in text and text.count('shape="plaintext"') == text.count("subgraph cluster_")
    if shutil.which("dot"):
        from PIL import Image

        for name in ("convnext_tiny", "vit_b_16", "googlenet", "efficientnet_b0", "swin_t"):
            assert cli("draw", name, "--out", tmp_path / f"{name}.png")[0] == 0
            width, height = Image.open(tmp_path / f"{name}.png").size
            assert width <= 1600 and height <= 2400, (name, width, height)  # a screen or two, not thirty


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
    ("garbage.pth", [], "garbage.pth: cannot read weights: not a complete file written by torch.save"),
    ("resnet18.pth", [], "2 of the model's tensors have no partner in the file (12.weight (10, 512), 12.bias (10,)); "
                         "the file has fc.weight (1000, 512), fc.bias (1000,) unused; add --init-fresh-head"),
    ("mobilenet.pth", ["--init-fresh-head"], "cannot pair the weights by shape"),
    ("torchvision:resnet_eighteen", [], "torchvision has no classification model 'resnet_eighteen'"),
    ("torchvision:resnet18", [], "cannot fetch torchvision's resnet18 weights"),
    # round 4: what cannot be a start is refused before any folder, saying what it is
    ("nan.pth", [], "nan.pth: tensor 'conv1.weight' holds NaN or infinity: these weights cannot be trained from"),
    ("run/best.pt", [], "run/best.pt: damaged checkpoint: its weights do not match the digest written with them"),
    ("unrelated.pth", ["--init-fresh-head"], "none of the file's 2 tensors fits the model, so nothing would be loaded"),
    ("", [], "--init '': no weights file named (an unset variable?)"),
    ("numbered.pth", [], "numbered.pth: holds a dict whose keys are not all tensor names (e.g. 1): not a state dict"),
    ("plain.pickle", [], "plain.pickle: cannot read weights: not a complete file written by torch.save (truncated, or a "
                         "plain pickle or another format)"),
    ("tensorless.pth", [], "tensorless.pth: holds a dict without tensors, not a state dict of tensors"),
    ("empty.pth", [], "empty.pth: an empty file, not weights"),
    ("truncated.pth", [], "truncated.pth: cannot read weights: not a complete file written by torch.save (truncated"),
    ("run/last.pt", [], "run/last.pt: a run's last.pt (what --resume continues from, optimizer and all), not weights to "
                        "start from: give --init run/best.pt, or continue that run with 'fmnist run --resume run'"),
    ("run", [], "run: a folder, not a weights file (an fmnist run folder): start from its best epoch, --init run/best.pt"),
])
def test_bad_init_is_one_line_and_no_run_folder(cli, tmp_path, monkeypatch, fashion_folder, init, extra, message):
    import pickle

    from torchvision import models

    from fmnist.runner.checkpoint import FORMAT, Checkpoint

    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "torch-home"))  # nothing cached: the fetch must go out (offline)
    resnet = models.resnet18().state_dict()
    torch.save(resnet, tmp_path / "resnet18.pth")
    torch.save(models.mobilenet_v2().state_dict(), tmp_path / "mobilenet.pth")
    (tmp_path / "garbage.pth").write_bytes(b"not a checkpoint")
    torch.save({**resnet, "conv1.weight": resnet["conv1.weight"] * float("nan")}, tmp_path / "nan.pth")
    torch.save({"a.weight": torch.zeros(7, 7, 7), "a.bias": torch.zeros(7)}, tmp_path / "unrelated.pth")
    torch.save({1: torch.zeros(2)}, tmp_path / "numbered.pth")
    (tmp_path / "plain.pickle").write_bytes(pickle.dumps({"weights": [1, 2, 3]}))
    torch.save({"epoch": 3}, tmp_path / "tensorless.pth")
    (tmp_path / "empty.pth").write_bytes(b"")
    (tmp_path / "truncated.pth").write_bytes((tmp_path / "resnet18.pth").read_bytes()[:5000])
    (tmp_path / "run").mkdir()
    (tmp_path / "run" / "config.yaml").write_text("spec: {}\n")
    Checkpoint(1, {}, {}, trainer={"model": resnet}, history=[], best={}).save(tmp_path / "run" / "last.pt")
    Checkpoint(1, {}, {}, model=resnet).save(tmp_path / "run" / "best.pt")
    damaged = torch.load(tmp_path / "run" / "best.pt", weights_only=True)  # a weight changed after the digest
    damaged["model"]["fc.bias"] = damaged["model"]["fc.bias"] + 1
    assert damaged["format"] == FORMAT
    torch.save(damaged, tmp_path / "run" / "best.pt")
    monkeypatch.chdir(tmp_path)
    code, out, err = cli("run", "resnet18", "--set", "classes=10", "--set", "input=[3,32,32]", "--data", fashion_folder,
                         "--init", init, *extra, "--out", tmp_path / "runs", "--train-limit", "10")
    assert code == 2 and len(err.splitlines()) == 1 and message in err, err
    assert not (tmp_path / "runs").exists()


def test_a_repeat_is_drawn_as_its_first_repetition_was_built(cli, write_spec, tmp_path):
    """Round 3 drew a residual inside a repeat with a dashed identity shortcut where its stride-2 step gets a
    projection, and its bn and + boxes without shapes."""
    spec = write_spec("""
        name: rep
        input: [8, 16, 16]
        layers:
          - repeat: {times: 2, layers: [{residual: [conv 3x3x16 stride=2 pad=1, bn]}]}
          - gap
          - fc 10
        """)
    code, _, err = cli("draw", spec, "--out", tmp_path / "rep.dot")
    text = (tmp_path / "rep.dot").read_text()
    assert (code, err) == (0, "")
    assert 'label="identity"' not in text and '"conv 1x1x16 stride=2\n(16, 8, 8)\n128 params"' in text  # the projection
    assert '"bn\n(16, 8, 8)\n32 params"' in text and '"+\n(16, 8, 8)"' in text and "repeat × 2" in text
