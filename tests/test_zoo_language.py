"""What the zoo needed from the language, each checked against figures worked out by hand, torch's own modules, or
one clear line for bad input."""
import pytest
import torch
from torch import nn

from fmnist import build_model, plan


def rows(spec_path):
    return {str(r.index): r for r in plan(spec_path).records}


def test_grouped_depthwise_dilated_and_non_square_convs_count_as_worked_out(write_spec):
    path = write_spec("""
        name: convs
        input: [8, 12, 12]
        layers:
          - conv 3x3x16 groups=4 pad=1          # 16 x (8/4 x 3 x 3) + 16 = 304 params; x 144 positions
          - dwconv 3x3 pad=1 bias=false         # 16 x 9 = 144 params
          - conv 1x7x8 pad=0x3                  # 8 x 16 x 7 + 8 = 904; the 1x7 kernel keeps 12x12 with pad 0x3
          - conv 3x3x4 dilation=2               # a 5x5 reach: 12 -> 8
          - dwconv 3x3 stride=2x1 multiplier=2  # 8 channels; H 8 -> 3, W 8 -> 6
          - gap
          - fc 10
        """)
    got = rows(path)
    assert [got[i].output_shape for i in "12345"] == [(16, 12, 12), (16, 12, 12), (8, 12, 12), (4, 8, 8), (8, 3, 6)]
    assert [got[i].params for i in "1234"] == [304, 144, 904, 4 * 8 * 9 + 4]
    assert got["1"].macs == 16 * 2 * 9 * 144 and got["2"].macs == 16 * 9 * 144 and got["3"].macs == 8 * 16 * 7 * 144
    model = build_model(path)
    assert (model[0].groups, model[1].groups, model[2].padding, model[3].dilation, model[4].stride) == \
        (4, 16, (0, 3), (2, 2), (2, 1))


def test_norms_scale_shuffle_pool_and_activations(write_spec):
    path = write_spec("""
        name: parts
        input: [4, 6, 6]
        layers:
          - bn eps=0.001 momentum=0.01
          - ln eps=1e-6
          - scale 0.5
          - shuffle 2
          - identity
          - hardswish
          - hardsigmoid
          - adaptive_avgpool 3x2
          - flatten
          - gn 2
          - fc 10
        """)
    model = build_model(path)
    bn, ln, scale = model[0], model[1], model[2]
    assert (bn.eps, bn.momentum, ln.eps, scale.weight.shape) == (0.001, 0.01, 1e-6, (4, 1, 1))
    assert rows(path)["8"].output_shape == (4, 3, 2) and scale.weight.detach().eq(0.5).all()
    x = torch.randn(2, 4, 6, 6)
    expected = nn.functional.layer_norm(x.permute(0, 2, 3, 1), (4,), eps=1e-6).permute(0, 3, 1, 2)
    assert torch.allclose(ln(x), expected, atol=1e-6)
    assert model[3](torch.arange(4.0).view(1, 4, 1, 1)).flatten().tolist() == [0, 2, 1, 3]  # groups of 2 interleaved
    assert isinstance(model[5], nn.Hardswish) and isinstance(model[6], nn.Hardsigmoid)
    assert isinstance(model[9], nn.GroupNorm) and model(x).shape == (2, 10)  # gn on a flat vector


def test_squeeze_excitation_and_gate_multiply_the_input_channel_by_channel(write_spec):
    path = write_spec("""
        name: se
        input: [8, 5, 5]
        layers:
          - se 2 act=silu gate=hardsigmoid        # 8 x 2 + 2 + 2 x 8 + 8 = 42 params
          - gate: [adaptive_avgpool 1x1, conv 1x1x8, sigmoid]
          - gap
          - fc 10
        """)
    got = rows(path)
    assert got["1"].params == 42 and got["1"].macs == 8 * 2 + 2 * 8 and got["2"].params == 72
    model = build_model(path).eval()
    se = model[0]
    x = torch.randn(3, 8, 5, 5)
    squeeze, expand = [m for m in se.modules() if isinstance(m, nn.Conv2d)]
    scale = nn.functional.hardsigmoid(expand(nn.functional.silu(squeeze(x.mean((2, 3), keepdim=True)))))
    assert torch.allclose(se(x), x * scale, atol=1e-6)


def test_residual_shortcut_rules_and_a_projection_for_any_size(write_spec):
    spec = """
        name: res
        input: [8, 25, 25]
        layers:
          - residual:
              shortcut: {rule}
              body: [conv 3x3x16 stride=2 pad=1, bn]
          - gap
          - fc 10
        """
    projected = rows(write_spec(spec.format(rule="project"), "p.yaml"))
    assert projected["1"].output_shape == (16, 13, 13)  # 25 -> 13: a 1x1 stride-2 conv maps it too
    assert projected["1.shortcut.1"].params == 8 * 16 and projected["1"].params == 8 * 16 * 9 + 16 + 32 + 8 * 16 + 32
    for rule in ("identity", "none"):  # MobileNet's rule: no skip where the shape changes; none: never
        assert rows(write_spec(spec.format(rule=rule), f"{rule}.yaml"))["1"].params == 8 * 16 * 9 + 16 + 32
    model = build_model(write_spec(spec.format(rule="identity").replace("stride=2 pad=1", "pad=1")
                                   .replace("conv 3x3x16", "conv 3x3x8"), "keep.yaml")).eval()
    x = torch.randn(2, 8, 25, 25)
    assert torch.allclose(model[0](x), model[0].body(x) + x)


def test_resnet18_plans_at_200_px_as_torchvision_runs_it(cli):
    code, out, err = cli("summary", "resnet18", "--set", "input=[3,200,200]", "--json")
    assert (code, err) == (0, "")


def test_drop_path_drops_whole_samples_in_training_only(write_spec):
    model = build_model(write_spec("""
        name: dp
        input: [4, 3, 3]
        layers:
          - residual: {drop_path: 0.5, body: [conv 1x1x4]}
          - gap
          - fc 10
        """))
    block = model[0]
    x = torch.randn(256, 4, 3, 3)
    torch.manual_seed(0)
    body = block.body(x)
    out = block(x)
    kept = [torch.allclose(o, b * 2 + i, atol=1e-5) for o, b, i in zip(out, body, x)]
    dropped = [torch.equal(o, i) for o, i in zip(out, x)]
    assert all(k or d for k, d in zip(kept, dropped)) and 80 < sum(dropped) < 176  # about half of 256
    block.eval()
    assert torch.allclose(block(x), body + x)


def test_block_arithmetic_repeats_and_defaults(write_spec):
    path = write_spec("""
        name: arith
        input: [3, 32, 32]
        defaults:
          pool: {round: floor}
          bn: {eps: 0.001}
        blocks:
          stage:
            params: [c, k, rate]
            layers:
              - conv ${k}x${k}x${c * 2} pad=${k // 2}
              - bn
              - residual: {drop_path: $rate, body: ["conv 3x3x${c * 2} pad=1"]}
        layers:
          - stage(4, 5, ${0.1 * $repeat / 2}) * 3
          - pool 3x3
          - bn eps=0.01
          - gap
          - fc $classes
        classes: 7
        """)
    built = plan(path)
    got = {str(r.index): r for r in built.records}
    assert got["1"].text == "stage(4, 5, ${0.1 * $repeat / 2}) x 3"
    assert [got[f"1.{n}"].text for n in (1, 2, 3)] == ["stage(4, 5, 0)", "stage(4, 5, 0.05)", "stage(4, 5, 0.1)"]
    assert got["1.1.1"].text == "conv 5x5x8 pad=2" and got["2"].output_shape == (8, 10, 10)  # floor: 32 -> 10
    model = build_model(path)
    norms = [m for m in model.modules() if isinstance(m, nn.BatchNorm2d)]
    assert [m.eps for m in norms] == [0.001] * 3 + [0.01]
    rates = [m.drop_rate for m in model.modules() if hasattr(m, "drop_rate")]
    assert rates == [0.0, 0.05, 0.1] and model(torch.randn(2, 3, 32, 32)).shape == (2, 7)


BAD = [
    ("conv 3x3x8 groups=0", "groups must be a positive integer, got 0"),
    ("conv 3x3x8 groups=3", "groups=3 does not divide the 4 input channels"),
    ("conv 3x3x8 pad=smae", "pad must be an integer >= 0, HxW (e.g. 0x3), or 'same', got 'smae'"),
    ("conv 3x3x8 pad=1x2x3", "pad must be an integer >= 0, HxW (e.g. 0x3), or 'same', got '1x2x3'"),
    ("conv 3x3x8 dilation=0", "dilation must be a positive integer, got 0"),
    ("conv 3x3x8 stride=2 pad=same", "pad=same needs stride=1"),
    ("dwconv 3x3x8", "dwconv size has 3 parts, expected N, or HxW"),
    ("dwconv", "expected 'dwconv KxK"),
    ("{conv: {kernel: 3}}", "missing filters, expected 'conv KxKxF"),
    ("bn eps=-1", "eps must be a number above 0, got '-1'"),
    ("bn momentum=2", "momentum must be in [0, 1], got '2'"),
    ("ln eps=zero", "eps must be a number, got 'zero'"),
    ("scale abc", "init must be a number, got 'abc'"),
    ("shuffle 3", "3 groups do not divide 4 channels"),
    ("adaptive_avgpool 0", "size must be a positive integer, got 0"),
    ("se", "missing squeeze, expected 'se S"),
    ("se 2 act=swish", "act must be one of relu, relu6"),
    ("se 2 gate=softmax", "gate must be one of"),
    ("{residual: {shortcut: skip, body: [relu]}}", "shortcut must be one of project, identity, none, got 'skip'"),
    ("{residual: {drop_path: 1.5, body: [relu]}}", "drop_path must be in [0, 1), got 1.5"),
    ("{split: [[relu], [relu], [relu]]}", "3 branches do not split 4 channels evenly"),
    ("{add: [[conv 1x1x4], [conv 1x1x8]]}", "added branches must give the same shape"),
    ("{gate: [conv 1x1x3]}", "the gate's branch gives (3, 8, 8), which does not multiply into its input (4, 8, 8)"),
    ("conv ${k}x3x8", "${k}: unknown name 'k'"),
    ("conv 3x3x${8 / 0}", "${8 / 0}: division by zero"),
    ("conv 3x3x${__import__('os')}", "only numbers, parameter names"),
    ("conv 3x3x${2 ** 99}", "a power above 64"),
    ("layernorm", "unknown layer kind 'layernorm' (PyTorch's and Keras' layernorm is 'ln' here)"),
    ("BatchNorm2d", "(PyTorch's and Keras' BatchNorm2d is 'bn' here)"),
    ("Conv2d 3x3x8", "(PyTorch's and Keras' Conv2d is 'conv' here)"),
    ("Dense 10", "(PyTorch's and Keras' Dense is 'fc' here)"),
    ("drop_path 0.1", "is 'residual drop_path=P' here"),
]


@pytest.mark.parametrize("layer, message", BAD, ids=[layer for layer, _ in BAD])
def test_each_new_setting_refuses_bad_input_in_one_line(cli, write_spec, layer, message):
    path = write_spec(f"name: bad\ninput: [4, 8, 8]\nlayers:\n  - {layer}\n  - gap\n  - fc 10\n")
    code, out, err = cli("validate", path)
    assert code == 2 and len(err.splitlines()) == 1 and message in err, err
    assert err.startswith(f"{path}:4: layer 1")


def test_group_norm_on_a_flat_vector_needs_two_values_per_group(cli, write_spec):
    code, _, err = cli("validate", write_spec("name: g\ninput: [4, 8, 8]\nlayers: [gap, gn 4, fc 10]\n"))
    assert code == 2 and "layer 2 'gn 4': each of the 4 group(s) holds one value of the (4,) input: nothing to " \
                         "normalise; use fewer groups" in err
    code, _, err = cli("validate", write_spec("name: g\ninput: [4, 8, 8]\nlayers: [gap, gn 2, fc 10]\n"))
    assert (code, err) == (0, "")


@pytest.mark.parametrize("text, message", [
    ("defaults: {pool: {round: flor}}", ":3: defaults.pool: round must be one of ceil, floor, got 'flor'"),
    ("defaults: {pool: {rond: floor}}", ":3: defaults.pool: unknown setting 'rond' for pool (did you mean 'round'?)"),
    ("defaults: {pooling: {round: floor}}", ":3: defaults.pooling: unknown layer kind 'pooling'"),
    ("defaults: {pool: floor}", "defaults.pool: expected"),
    ("layers: [conv 3x3x8, 'basic(64', 256, '1)', fc 10]",
     "YAML split the block call 'basic(64, 256, 1)' at its commas into 3 list items"),
    ("layers: [conv 3x3x8, 'basic(8) * 0', fc 10]", "a block repeated 0 times: the count must be from 1 to 1,000"),
])
def test_defaults_flow_lists_and_repeats_refuse_bad_input_in_one_line(cli, write_spec, text, message):
    body = "blocks: {basic: {params: [c], layers: [relu]}}\n"
    layers = "" if text.startswith("layers") else "layers: [conv 3x3x8, pool 2x2, fc 10]\n"
    path = write_spec(f"name: bad\n{body}{text}\n{layers}")
    code, out, err = cli("validate", path)
    assert code == 2 and len(err.splitlines()) == 1 and message in err, err
