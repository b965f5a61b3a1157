"""The study's five CNNs, transcribed as specs, give exactly the study's figures."""
import json

import pytest
import torch

from fmnist import build_model, plan
from tests.conftest import SPECS

STUDY_FIGURES = {
    "cnn_1": {"conv": 240_256, "fc": 3_807_754, "total": 4_048_010, "fc_input": 3200},
    "cnn_2": {"conv": 240_256, "bn": 704, "fc": 3_807_754, "total": 4_048_714, "fc_input": 3200},
    "cnn_3": {"conv": 240_256, "bn": 704, "fc": 3_807_754, "total": 4_048_714, "fc_input": 3200},
    "cnn_4": {"total": 65_994, "fc_input": 512},
    "cnn_5": {"total": 1_853_002, "fc_input": 1024},
}


@pytest.mark.parametrize("name", sorted(STUDY_FIGURES))
def test_seed_spec_has_the_study_figures(name):
    built = plan(SPECS / f"{name}.yaml")
    figures = dict(STUDY_FIGURES[name])
    assert built.fc_input == figures.pop("fc_input")
    for group, count in figures.items():
        assert built.params[group] == count, group
    assert all(check.ok for check in built.checks())


@pytest.mark.parametrize("name", sorted(STUDY_FIGURES))
def test_built_model_matches_the_plan_and_runs(name):
    model = build_model(SPECS / f"{name}.yaml")
    assert isinstance(model, torch.nn.Sequential)
    assert sum(p.numel() for p in model.parameters()) == plan(SPECS / f"{name}.yaml").params["total"]
    model.eval()
    assert model(torch.rand(2, 1, 28, 28)).shape == (2, 10)


def test_cnn_3_is_cnn_2_plus_two_dropouts():
    cnn_2 = [r.text for r in plan(SPECS / "cnn_2.yaml").records]
    cnn_3 = [r.text for r in plan(SPECS / "cnn_3.yaml").records]
    assert [t for t in cnn_3 if not t.startswith("dropout")] == cnn_2
    assert cnn_3[cnn_3.index("fc 3200x1024") + 1] == "dropout 0.5"
    assert cnn_3[cnn_3.index("fc 1024x512") + 1] == "dropout 0.5"


def test_summary_table_shows_rounding_implicit_flatten_and_checks(cli):
    code, out, err = cli("summary", SPECS / "cnn_1.yaml")
    assert code == 0 and err == ""
    assert "odd 9x9 rounded up to 5x5 (round=ceil)" in out
    assert "flatten (implicit)" in out and "(3200,)" in out
    assert "Total params: 4,048,010" in out
    assert "Params by group: conv 240,256 · fc 3,807,754" in out
    assert "Expect ✓ params.total: expected 4,048,010, got 4,048,010" in out


def test_summary_json(cli):
    code, out, _ = cli("summary", SPECS / "cnn_4.yaml", "--json")
    data = json.loads(out)
    assert code == 0
    assert data["name"] == "CNN_4" and data["input"] == [1, 28, 28]
    assert data["params"] == {"total": 65_994, "trainable": 65_994, "conv": 60_416, "bn": 448, "fc": 5_130}
    assert data["layers"][0] == {"index": 1, "layer": "conv 5x5x32", "kind": "conv", "output_shape": [32, 24, 24],
                                 "params": 832, "macs": 32 * 24 * 24 * 25, "activation_bytes": 4 * 32 * 24 * 24, "note": "", "line": 7,
                                 "depth": 0, "block": False}
    assert data["macs"] == sum(layer["macs"] for layer in data["layers"])
    assert data["expect"]["ok"] is True
    assert {"name": "params.total", "expected": 65_000, "actual": 65_994, "tolerance": 0.02, "ok": True} in data["expect"]["checks"]


def test_validate_all_seed_specs(cli):
    code, out, err = cli("validate", *sorted(SPECS.glob("cnn_*.yaml")))
    assert code == 0 and err == ""
    assert out.count(": ok (") == 5


def test_expect_mismatch_names_group_expected_and_actual(cli, write_spec):
    path = write_spec("""
        name: off_by_one
        layers: [conv 3x3x8, fc 10]
        expect:
          params: {conv: 81, total: {approx: 100, tolerance: 0.1}}
    """)
    code, out, _ = cli("summary", path)
    assert code == 1
    assert "Expect ✗ params.conv: expected 81, got 80" in out
    assert "Expect ✗ params.total: expected ~100 (±10%), got 54,170" in out
    code, _, err = cli("validate", path)
    assert code == 1  # as summary: the spec is valid, a figure it documents does not come out
    assert err.splitlines() == [f"{path}: expect params.conv: expected 81, got 80",
                                f"{path}: expect params.total: expected ~100 (±10%), got 54,170"]
    with pytest.raises(Exception, match="params.conv: expected 81, got 80"):
        build_model(path)


@pytest.mark.parametrize("name", ["cnn_1", "cnn_2", "cnn_3", "cnn_4", "cnn_5"])
def test_activation_memory_is_what_the_real_forward_pass_keeps(cli, name):
    """The summary's forward activations per image against the outputs of a real forward pass, module by module."""
    import json

    import torch

    from fmnist import build_model

    code, out, _ = cli("summary", SPECS / f"{name}.yaml", "--json")
    reported = json.loads(out)["activation_bytes"]
    model = build_model(SPECS / f"{name}.yaml").eval()
    sizes = []
    hooks = [m.register_forward_hook(lambda module, inputs, output: sizes.append(output.numel())) for m in model]
    with torch.no_grad():
        model(torch.rand(1, 1, 28, 28))
    for hook in hooks:
        hook.remove()
    assert reported["forward"] == 4 * sum(sizes) and reported["forward_backward"] == 2 * reported["forward"]
