"""Token sequences and attention as data: each kind against the computation it stands for, the window kinds against
the global one, the bad inputs one line each, the weights of a network that registers its modules out of order,
and the small attention spec for Fashion-MNIST."""
from __future__ import annotations

import pytest
import torch
from torch import nn
from torch.nn import functional

from fmnist import build_model, plan
from fmnist.builder.weights import execution_order, map_state_dict

from tests.conftest import only_run, tiny_folder


def model_of(write_spec, input_shape: str, layers: str, classes: int = 4) -> nn.Sequential:
    spec = write_spec(f"name: t\ninput: {input_shape}\nclasses: {classes}\nlayers:\n{layers}")
    return build_model(spec).eval()


def test_a_vit_front_and_back_are_the_sums_they_stand_for(write_spec):
    model = model_of(write_spec, "[3, 8, 8]", """
  - conv 4x4x6 stride=4
  - to_tokens
  - class_token
  - position
  - ln
  - readout
  - fc 4
""")
    built = plan(write_spec("name: t\ninput: [3, 8, 8]\nclasses: 4\nlayers: [conv 4x4x6 stride=4, to_tokens, class_token, "
                            "position, ln, readout, fc 4]\n"))
    assert [record.output_shape for record in built.records] == [(6, 2, 2), (4, 6), (5, 6), (5, 6), (5, 6), (6,), (4,)]
    assert built.params["token"] == 6 + 5 * 6  # one class token, an embedding per position
    conv, _, token, position, norm, _, head = model
    nn.init.normal_(token.token)
    x = torch.randn(2, 3, 8, 8)
    patches = conv(x).flatten(2).transpose(1, 2)  # row by row
    sequence = torch.cat([token.token.expand(2, -1, -1), patches], 1) + position.embedding
    expected = head(functional.layer_norm(sequence, (6,), norm.weight, norm.bias, norm.eps)[:, 0])
    assert torch.allclose(model(x), expected, atol=1e-6)


def test_attention_is_scaled_dot_product_attention_of_the_packed_projections(write_spec):
    model = model_of(write_spec, "[8, 3, 3]", "  - to_tokens\n  - attention 2\n  - gap\n  - fc 4\n")
    attention = model[1]
    x = torch.randn(2, 9, 8)
    q, k, v = (part.view(2, 9, 2, 4).transpose(1, 2) for part in attention.qkv(x).chunk(3, -1))
    weights = torch.softmax(q @ k.transpose(-1, -2) / 2.0, -1)  # 1/sqrt(4 channels per head)
    expected = attention.out((weights @ v).transpose(1, 2).reshape(2, 9, 8))
    assert torch.allclose(attention(x), expected, atol=1e-5)
    reference = nn.MultiheadAttention(8, 2, batch_first=True).eval()  # torchvision ViT's, packed the same way
    reference.in_proj_weight.data, reference.in_proj_bias.data = attention.qkv.weight.data, attention.qkv.bias.data
    reference.out_proj.weight.data, reference.out_proj.bias.data = attention.out.weight.data, attention.out.bias.data
    assert torch.allclose(attention(x), reference(x, x, x, need_weights=False)[0], atol=1e-5)


def test_one_window_over_the_whole_map_is_global_attention(write_spec):
    windowed = model_of(write_spec, "[8, 4, 4]", "  - window_attention 2 window=4 bias=none\n  - gap\n  - fc 4\n")
    tokens = model_of(write_spec, "[8, 4, 4]", "  - to_tokens\n  - attention 2\n  - to_map 4x4\n  - gap\n  - fc 4\n")
    tokens[1].load_state_dict(windowed[0].state_dict())
    x = torch.randn(2, 8, 4, 4)
    assert torch.allclose(windowed[0](x), tokens[2](tokens[1](tokens[0](x))), atol=1e-5)


def test_windows_and_the_dilated_grid_attend_within_their_own_positions(write_spec):
    """A change at one position moves the output only inside its window (block attention), or only at the positions
    of its grid (the same place in every 2x2 block, MaxViT's grid attention)."""
    for layer, partners in (("window_attention 2 window=2", {(0, 0), (0, 1), (1, 0), (1, 1)}),
                            ("window_attention 2 window=2 grid=true", {(0, 0), (0, 2), (2, 0), (2, 2)})):
        model = model_of(write_spec, "[8, 4, 4]", f"  - {layer}\n  - gap\n  - fc 4\n")
        x = torch.randn(1, 8, 4, 4)
        nudged = x.clone()
        nudged[0, :, 0, 0] += 1.0
        with torch.no_grad():
            moved = (model[0](nudged) - model[0](x)).abs().sum(1)[0] > 1e-6
        assert {(int(r), int(c)) for r, c in moved.nonzero()} == partners, layer


def test_space_to_depth_stacks_swins_patch_merging_order():
    from fmnist.builder.attention_modules import SpaceToDepth

    x = torch.randn(2, 3, 5, 7)  # odd sizes: padded at the bottom and right, as Swin pads
    channels_last = functional.pad(x.permute(0, 2, 3, 1), (0, 0, 0, 1, 0, 1))
    swin = torch.cat([channels_last[:, 0::2, 0::2], channels_last[:, 1::2, 0::2], channels_last[:, 0::2, 1::2],
                      channels_last[:, 1::2, 1::2]], -1)  # torchvision's _patch_merging_pad
    assert torch.equal(SpaceToDepth(2)(x), swin.permute(0, 3, 1, 2))


def test_a_linear_map_is_per_token_per_position_and_on_a_flat_vector_an_fc(write_spec):
    built = plan(write_spec("name: t\ninput: [8, 3, 3]\nclasses: 4\nlayers: [linear 6, to_tokens, linear 5, gap, "
                            "linear 4]\n"))
    assert [record.output_shape for record in built.records] == [(6, 3, 3), (9, 6), (9, 5), (5,), (4,)]
    assert built.params["linear"] == (8 + 1) * 6 + (6 + 1) * 5 + (5 + 1) * 4
    model = build_model(built.spec).eval()
    x = torch.randn(2, 8, 3, 3)
    assert torch.allclose(model[0](x), functional.conv2d(x, model[0].weight[:, :, None, None], model[0].bias), atol=1e-6)


@pytest.mark.parametrize("layers, message", [
    ("[to_tokens, conv 3x3x8, gap, fc 4]", "conv needs a (C, H, W) map, but gets the token sequence (16, 8): put "
                                           "'to_map HxW' before it"),
    ("[attention 2, gap, fc 4]", "attention needs a token sequence (L, C), but gets the map (8, 4, 4): put 'to_tokens' "
                                 "before it"),
    ("[to_tokens, attention 3, gap, fc 4]", "3 heads do not divide 8 channels (give head_channels=N to choose their "
                                            "size)"),
    ("[window_attention 2 window=3 grid=true, gap, fc 4]", "a 3x3 grid does not divide the 4x4 map evenly"),
    ("[window_attention 2 window=2 shift=2, gap, fc 4]", "shift=2x2 must be smaller than the window 2x2"),
    ("[to_tokens, class_token, to_map, gap, fc 4]", "17 tokens are not a square: give the map's size, 'to_map HxW' "
                                                     "with H*W = 17"),
    ("[to_tokens, class_token, to_map 4x4, gap, fc 4]", "4x4 is 16 positions, but there are 17 tokens (a class token "
                                                         "still in the sequence?)"),
    ("[to_tokens, readout 16, fc 4]", "token 16 of a sequence of 16 (they count from 0)"),
    ("[to_tokens, bn, gap, fc 4]", "bn on the token sequence (16, 8): normalise tokens with 'ln' (layer norm)"),
    ("[window_attention 2 bias=relative, gap, fc 4]", "bias must be one of none, table, mlp, got 'relative'"),
    ("[to_tokens, attention, gap, fc 4]", "give heads (or head_channels), expected 'attention H"),
])
def test_bad_attention_is_one_line_at_its_layer(cli, write_spec, layers, message):
    spec = write_spec(f"name: t\ninput: [8, 4, 4]\nclasses: 4\nlayers: {layers}\n")
    code, _, err = cli("validate", spec)
    assert code == 2 and len(err.splitlines()) == 1 and message in err, err


class _NormAfterRegisteredFirst(nn.Module):
    """Registers its norm before the linear map it follows (as Swin V2's blocks do)."""

    def __init__(self):
        super().__init__()
        self.norm = nn.LayerNorm(6)
        self.proj = nn.Linear(6, 6)

    def forward(self, x):
        return self.norm(self.proj(x))


def test_weights_pair_in_the_order_the_file_s_network_uses_them(write_spec):
    """Pairing the k-th tensor of a shape with the k-th in registration order would give the norm's weight to the
    linear map's bias (both of shape (6,)); in the order of use, each lands where it belongs."""
    source = _NormAfterRegisteredFirst().eval()
    with torch.no_grad():
        for tensor in source.parameters():
            tensor.normal_()
    ours = model_of(write_spec, "[6, 1, 1]", "  - gap\n  - linear 6\n  - ln\n", classes=6)
    with torch.device("meta"):
        order = execution_order(_NormAfterRegisteredFirst(), (6,))
    assert order == ["proj.weight", "proj.bias", "norm.weight", "norm.bias"]
    ours.load_state_dict(map_state_dict(source.state_dict(), ours, source_order=order).state)
    x = torch.randn(3, 6, 1, 1)
    assert torch.allclose(ours(x), source(x.flatten(1)), atol=1e-6)
    wrong = model_of(write_spec, "[6, 1, 1]", "  - gap\n  - linear 6\n  - ln\n", classes=6)
    wrong.load_state_dict(map_state_dict(source.state_dict(), wrong).state)
    assert not torch.allclose(wrong(x), source(x.flatten(1)), atol=1e-3)


def test_the_fashion_mnist_vit_trains_and_its_summary_reads_as_tokens(cli, tmp_path, monkeypatch):
    code, out, _ = cli("summary", "fmnist_vit")
    assert code == 0 and "(49, 128)" in out and "attention 4" in out and "encoder(128, 4, 0) x" not in out
    monkeypatch.setenv("FMNIST_CACHE", str(tmp_path / "cache"))
    folder = tiny_folder(tmp_path / "photos", per_class=20, size=28)  # 28x28 like Fashion-MNIST, a small test split
    code, out, err = cli("run", "fmnist_vit", "--data", folder, "--num-epochs", "1", "--batch-size", "32",
                         "--out", tmp_path / "runs")
    assert (code, err) == (0, ""), err
    assert "epoch  1/1" in out and (only_run(tmp_path / "runs") / "best.pt").is_file()
