"""The zoo: each spec in specs/zoo/ against torchvision's own model, built here as the oracle.

Parameters and mult-adds (torch's FlopCounterMode over torchvision's model, conv and matmul, attention's included, as
fmnist counts) must be equal; with torchvision's weights mapped into fmnist's model, eval-mode logits must agree to
1e-4 of their scale. Models over FORWARD_UP_TO parameters (ViT-L and ViT-H) are counted, not run: their blocks are
ViT-B's with other numbers, and a forward pass of each would take most of a minute and gigabytes here.
"""

import pytest
import torch
from torch.utils.flop_counter import FlopCounterMode
from torchvision import models

from fmnist import build_model, plan
from fmnist.builder.spec import PACKAGED_SPECS
from fmnist.builder.weights import execution_order, map_state_dict

ZOO = PACKAGED_SPECS / "zoo"
SIDE = 64  # the forward pass is run small where the model allows: CNNs end in an adaptive pool, Swin pads its windows
FORWARD_UP_TO = 200_000_000  # parameters: bigger models are counted only
# torchvision's own constructor per spec; GoogLeNet without aux heads or input transform, as the issue asks
ORACLES = {
    "alexnet": models.alexnet,
    "vgg11_bn": models.vgg11_bn,
    "resnet18": models.resnet18,
    "resnet50": models.resnet50,
    "resnext50_32x4d": models.resnext50_32x4d,
    "wide_resnet50_2": models.wide_resnet50_2,
    "densenet121": models.densenet121,
    "googlenet": lambda: models.googlenet(aux_logits=False, transform_input=False, init_weights=True),
    "inception_v3": lambda: models.inception_v3(aux_logits=False, transform_input=False, init_weights=True),
    "squeezenet1_0": models.squeezenet1_0,
    "mobilenet_v2": models.mobilenet_v2,
    "mobilenet_v3_small": models.mobilenet_v3_small,
    "mobilenet_v3_large": models.mobilenet_v3_large,
    "mnasnet0_5": models.mnasnet0_5,
    "shufflenet_v2_x0_5": models.shufflenet_v2_x0_5,
    "efficientnet_b0": models.efficientnet_b0,
    "efficientnet_b1": models.efficientnet_b1,
    "regnet_x_400mf": models.regnet_x_400mf,
    "regnet_y_400mf": models.regnet_y_400mf,
    "convnext_tiny": models.convnext_tiny,
    "vit_b_16": models.vit_b_16,
    "vit_b_32": models.vit_b_32,
    "vit_l_16": models.vit_l_16,
    "vit_l_32": models.vit_l_32,
    "vit_h_14": lambda: models.vit_h_14(image_size=518),  # the size its published weights are for
    "swin_t": models.swin_t,
    "swin_s": models.swin_s,
    "swin_b": models.swin_b,
    "swin_v2_t": models.swin_v2_t,
    "swin_v2_s": models.swin_v2_s,
    "swin_v2_b": models.swin_v2_b,
    "maxvit_t": models.maxvit_t,
}
# Inception-v3's valid convs need at least 75 px; a ViT's position embedding and MaxViT's partitions fix their size
SIDES = {"inception_v3": 96, "vit_b_16": 224, "vit_b_32": 224, "maxvit_t": 224}


def on_meta(name: str) -> torch.nn.Module:
    """torchvision's model for a spec, on the meta device (no memory)."""
    try:
        with torch.device("meta"):
            return ORACLES[name]().eval()
    except NotImplementedError:  # RegNet computes its widths with tensors: built for real, then moved
        return ORACLES[name]().eval().to("meta")


def oracle_counts(name: str, side: int = 224) -> tuple[int, int]:
    """(parameters, mult-adds per image) of torchvision's model, counted on the meta device."""
    model = on_meta(name)
    image = torch.empty(1, 3, side, side, device="meta")
    counter = FlopCounterMode(display=False)
    with counter, torch.no_grad():
        model(image)
    return sum(p.numel() for p in model.parameters()), counter.get_total_flops() // 2


def randomised(model: torch.nn.Module) -> torch.nn.Module:
    """Norm statistics, scales and zero-initialised tensors away from their defaults, so a wrong eps, order or pairing
    shows in the logits."""
    generator = torch.Generator().manual_seed(0)
    with torch.no_grad():
        for name, tensor in model.state_dict().items():
            if name.endswith("running_mean") or name.endswith("bias") and tensor.dim() == 1:
                tensor.copy_(0.1 * torch.randn(tensor.shape, generator=generator))
            elif name.endswith("running_var"):
                tensor.copy_(0.5 + torch.rand(tensor.shape, generator=generator))
            elif "layer_scale" in name:
                tensor.copy_(0.5 + torch.rand(tensor.shape, generator=generator))
            elif tensor.is_floating_point() and not tensor.any():  # ViT's head and class token start at zero
                tensor.copy_(0.02 * torch.randn(tensor.shape, generator=generator))
    return model


@pytest.mark.parametrize("name", sorted(ORACLES))
def test_zoo_spec_is_exact_against_torchvision(name):
    built = plan(ZOO / f"{name}.yaml")
    params, macs = oracle_counts(name, built.spec.input[1])
    assert (built.params["total"], built.macs) == (params, macs)
    if built.params["total"] > FORWARD_UP_TO:
        return  # counted only (see the module's docstring)
    reference = randomised(ORACLES[name]().eval())
    ours = build_model(ZOO / f"{name}.yaml", check_expect=False).eval()
    order = execution_order(on_meta(name), tuple(built.spec.input))  # the oracle's tensors in the order it uses them
    ours.load_state_dict(map_state_dict(reference.state_dict(), ours, source_order=order).state)
    side = SIDES.get(name, SIDE)
    image = torch.randn(2, 3, side, side, generator=torch.Generator().manual_seed(1))
    with torch.no_grad():
        expected, got = reference(image), ours(image)
    assert got.shape == expected.shape == (2, 1000)
    assert float((got - expected).abs().max()) <= 1e-4 * float(expected.abs().max())
