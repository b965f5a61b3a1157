"""A new architecture written as a spec (not one of the study's) builds, sums up and runs."""
import pytest
import torch
from torch import nn

from fmnist import build_model, plan
from tests.conftest import SPECS

NEW_SPEC = """
name: my_net
description: every layer kind, both forms
input: [1, 28, 28]
classes: 10
layers:
  - conv 3x3x16 pad=same
  - {bn: null}
  - leaky_relu 0.1
  - {conv: {kernel: 3, filters: 32, stride: 2, pad: 1}}
  - gelu
  - avgpool 2x2 round=floor
  - {dropout: 0.25}
  - conv 1x1x8
  - silu
  - pool 3 stride=1
  - flatten
  - fc 32
  - bn
  - elu
  - dropout
  - {fc: {units: 10, inputs: 32}}
expect:
  params: {total: 11922}  # 160 + 32 + 4640 + 264 + 6432 + 64 + 330
train: {batch_size: 64, lr: 0.001, loss: sigmoid, augment: true}
"""


def test_new_spec_builds_and_runs_a_forward_pass(write_spec):
    path = write_spec(NEW_SPEC)
    built = plan(path)
    shapes = [r.output_shape for r in built.records]
    assert shapes[0] == (16, 28, 28)  # pad=same keeps the size
    assert shapes[3] == (32, 14, 14)  # stride 2, pad 1
    assert shapes[5] == (32, 7, 7)  # avgpool 2x2 on 14x14
    assert shapes[9] == (8, 5, 5)  # pool 3 stride 1 on 7x7
    assert shapes[10] == (200,)
    assert built.spec.train == {"batch_size": 64, "lr": 0.001, "loss": "sigmoid", "augment": True}
    model = build_model(path)
    assert isinstance(model[1], nn.BatchNorm2d) and isinstance(model[12], nn.BatchNorm1d)
    assert model[2].negative_slope == 0.1 and model[6].p == 0.25 and model[14].p == 0.5
    assert sum(p.numel() for p in model.parameters()) == built.params["total"]
    out = model(torch.rand(4, 1, 28, 28))
    assert out.shape == (4, 10)
    out.sum().backward()
    assert all(p.grad is not None for p in model.parameters())


def test_rounding_is_a_visible_option(write_spec):
    ceil = plan(write_spec("name: c\nlayers: [conv 3x3x4, pool 2x2, pool 2x2, fc 10]\ninput: [1, 11, 11]\n", "c.yaml"))
    floor = plan(write_spec("name: f\nlayers: [conv 3x3x4, pool 2x2 round=floor, pool 2x2 round=floor, fc 10]\ninput: [1, 11, 11]\n", "f.yaml"))
    assert [r.output_shape for r in ceil.records][1:3] == [(4, 5, 5), (4, 3, 3)]
    assert ceil.records[2].note == "odd 5x5 rounded up to 3x3 (round=ceil)"
    assert [r.output_shape for r in floor.records][1:3] == [(4, 4, 4), (4, 2, 2)]
    assert floor.records[2].note == ""


def test_implicit_flatten_is_a_real_module_and_explicit_one_is_not_doubled(write_spec):
    implicit = build_model(write_spec("name: a\nlayers: [conv 3x3x4, fc 10]\n", "a.yaml"))
    explicit = build_model(write_spec("name: b\nlayers: [conv 3x3x4, flatten, fc 10]\n", "b.yaml"))
    assert [type(m).__name__ for m in implicit] == ["Conv2d", "Flatten", "Linear"]
    assert [type(m).__name__ for m in explicit] == ["Conv2d", "Flatten", "Linear"]


def documented_kinds() -> set[str]:
    """The kinds docs/spec.md's layer and block tables list by their first name (aliases aside), activations too."""
    import re

    text = (SPECS.parent / "docs" / "spec.md").read_text()
    names = set()
    for first, cell in re.findall(r"^\| (`[a-z_0-9]+`|activations)[^|]*\|([^|]*)\|", text, re.M):
        names |= set(re.findall(r"`([a-z_0-9]+)`", cell)) if first == "activations" else {first.strip("`")}
    return names - {"key", "name", "description", "input", "classes", "layers", "expect", "defaults", "data",
                    "train", "search", "blocks"}


def test_a_name_registers_once():
    from fmnist.builder.layers import Layer, register

    with pytest.raises(ValueError, match="layer kind name 'dense' is registered twice: by Dense and Shadow"):
        @register("dense")
        class Shadow(Layer):
            def build(self, shape):
                raise NotImplementedError


def test_dense_is_the_densenet_block_and_its_flags_are_checked(cli, write_spec):
    code, _, err = cli("validate", write_spec("name: d\nlayers: [dense 1024, fc 10]\n"))
    assert code == 2 and "'dense' is DenseNet's block, written 'dense NxG'; a fully connected layer (Keras' Dense) is 'fc 1024'" in err
    code, _, err = cli("validate", write_spec("name: d\nlayers: [conv 3x3x8, {dense: {layers: 2, growth: 4, bottleneck: nope}}, fc 10]\n"))
    assert code == 2 and "bottleneck must be true or false, got 'nope'" in err
