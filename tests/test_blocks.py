"""Residual, parallel, dense, transition, repeat and named blocks: shapes, projections, summary rows, errors."""
import json

import pytest
import torch
from torch import nn

from fmnist import build_model, plan
from tests.conftest import SPECS

BLOCKS_SPEC = """
name: blocks
blocks:
  basic:
    params: [c, s]
    layers:
      - residual:
          - conv 3x3x$c stride=$s pad=1 bias=false
          - bn
          - relu
          - conv 3x3x$c pad=1 bias=false
          - bn
      - relu
layers:
  - conv 3x3x16 pad=1
  - basic(16, 1)
  - basic(32, 2)
  - parallel:
      - [conv 1x1x8]
      - [conv 3x3x8 pad=1, relu]
      - [pool 3x3 stride=1 pad=1]
  - dense 2x4
  - transition 0.5
  - {repeat: {times: 2, layers: [conv 3x3x10 pad=1, gn 2, silu]}}
  - gap
  - fc 10
"""


def test_blocks_build_with_the_right_shapes_and_params(write_spec):
    path = write_spec(BLOCKS_SPEC)
    built = plan(path)
    rows = {str(r.index): r for r in built.records if r.depth == 0}
    assert rows["2"].output_shape == (16, 28, 28) and rows["3"].output_shape == (32, 14, 14)
    assert rows["4"].output_shape == (8 + 8 + 32, 14, 14)  # branch channels add up
    assert rows["5"].output_shape == (48 + 2 * 4, 14, 14)  # dense: input + layers x growth
    assert rows["6"].output_shape == (28, 7, 7)  # transition: half the channels, half the size
    assert rows["7"].output_shape == (10, 7, 7)
    shortcut = [r for r in built.records if r.text.startswith("shortcut")]
    assert [r.text for r in shortcut] == ["shortcut: conv 1x1x32 stride=2", "shortcut: bn"]  # only the strided block
    assert shortcut[0].depth == 2 and shortcut[0].params == 16 * 32
    model = build_model(path)
    top = [r for r in built.records if r.depth == 0]
    assert len(top) == len(model)  # one top-level row per module of the Sequential, implicit flatten included
    for record, module in zip(top, model):  # each row's params are its real module's, blocks included
        assert record.params == sum(p.numel() for p in module.parameters()), record.text
    assert isinstance(model, nn.Sequential)
    assert sum(p.numel() for p in model.parameters()) == built.params["total"]
    assert model(torch.rand(3, 1, 28, 28)).shape == (3, 10)


def test_residual_adds_its_input(write_spec):
    model = build_model(write_spec("name: r\ninput: [4, 5, 5]\nlayers: [{residual: [conv 3x3x4 pad=1]}, flatten, fc 10]\n"))
    block = model[0]
    x = torch.rand(2, 4, 5, 5)
    assert torch.allclose(block(x), block.body(x) + x)


def test_summary_indents_block_rows(cli, write_spec):
    path = write_spec(BLOCKS_SPEC)
    code, out, _ = cli("summary", path)
    assert code == 0
    lines = out.splitlines()
    block_line = next(line for line in lines if "basic(32, 2)" in line)
    residual_line = lines[lines.index(block_line) + 1]
    assert residual_line.split()[1] == "residual"
    assert residual_line.index("residual") == block_line.index("basic(32, 2)") + 2
    assert "parallel (3 branches, concatenated)" in out and "repeat 2x" in out
    code, out, _ = cli("summary", path, "--json")
    layers = json.loads(out)["layers"]
    assert {"index": "3.1.shortcut.1", "depth": 2, "block": False, "layer": "shortcut: conv 1x1x32 stride=2"}.items() <= \
        next(layer for layer in layers if layer["layer"].startswith("shortcut: conv")).items()


ERRORS = {
    "residual_unfixable": ("name: x\nlayers:\n  - residual: [conv 3x3x16]\n  - fc 10\n",
                           ":3: layer 1 'residual': the body turns (1, 28, 28) into (16, 26, 26): no 1x1 projection can match"),
    "parallel_sizes": ("name: x\nlayers:\n  - parallel:\n      - [conv 3x3x8]\n      - [conv 1x1x8]\n  - fc 10\n",
                       "branches 1 and 2 give (8, 26, 26) and (8, 28, 28): branches must agree in everything but channels"),
    "unknown_block": ("name: x\nblocks:\n  basic: {params: [c], layers: [conv 3x3x$c]}\nlayers:\n  - basci(3)\n  - fc 10\n",
                      ":5: layer 1 'basci(3)': unknown block 'basci' (did you mean 'basic'?); blocks: basic"),
    "missing_parameter": ("name: x\nblocks:\n  basic: {params: [c, s], layers: [conv 3x3x$c stride=$s]}\nlayers:\n  - basic(3)\n  - fc 10\n",
                          ":5: layer 1 'basic(3)': block 'basic' takes (c, s): 1 given"),
    "recursion": ("name: x\nblocks:\n  a: [b]\n  b: [relu, a]\nlayers:\n  - a\n  - fc 10\n",
                  "block 'a' uses itself (a -> b -> a)"),
    "error_inside_block_points_at_its_line": (
        "name: x\nblocks:\n  basic:\n    params: [c]\n    layers:\n      - relu\n      - conv 3x3x$c pad=2x\nlayers:\n  - basic(4)\n  - fc 10\n",
        ":7: layer 1.2 'conv 3x3x4 pad=2x': pad must be an integer >= 0, HxW (e.g. 0x3), or 'same', got '2x' (in block 'basic' used on line 9)"),
    "residual_as_a_string": ("name: x\nlayers:\n  - residual\n  - fc 10\n", ":3: layer 1 'residual': expected {residual: [layers...]}"),
    "repeat_zero_times": ("name: x\nlayers:\n  - {repeat: {times: 0, layers: [relu]}}\n  - fc 10\n",
                          ":3: layer 1 '{repeat: {times: 0, layers: [relu]}}': times must be a positive integer, got 0"),
    "group_norm_groups": ("name: x\nlayers:\n  - conv 3x3x6\n  - gn 4\n  - fc 10\n", "layer 2 'gn 4': 4 groups do not divide 6 channels"),
}


@pytest.mark.parametrize("case", sorted(ERRORS))
def test_block_errors_are_one_line_with_position(case, cli, write_spec):
    text, expected = ERRORS[case]
    path = write_spec(text, f"{case}.yaml")
    code, _, err = cli("summary", path)
    assert code == 2 and len(err.splitlines()) == 1
    assert expected in err


@pytest.mark.parametrize("name", ["resnet_small", "inception_small", "densenet_small"])
def test_beyond_the_study_specs_build_and_run(name):
    built = plan(SPECS / f"{name}.yaml")
    assert any(r.block for r in built.records)
    model = build_model(SPECS / f"{name}.yaml").eval()
    assert model(torch.rand(2, 1, 28, 28)).shape == (2, 10)


def test_resnet_small_gets_projection_shortcuts_for_its_strided_blocks():
    shortcuts = [r for r in plan(SPECS / "resnet_small.yaml").records if r.text.startswith("shortcut: conv")]
    assert [r.text for r in shortcuts] == ["shortcut: conv 1x1x64 stride=2", "shortcut: conv 1x1x128 stride=2"]
