"""Mult-adds counted by torch itself: FlopCounterMode over a layer's forward pass on the meta device.

One way of counting for every kind, plug-ins included, so no kind carries a formula of its own. FLOPs = 2 x
mult-adds for the convolutions and matrix products torch counts; element-wise layers count 0, as before.
"""
from __future__ import annotations

import torch
from torch.utils.flop_counter import FlopCounterMode

_counted: dict[tuple[str, tuple[int, ...]], int] = {}  # (module as it prints, input shape) -> mult-adds: layers repeat


def count_macs(module: torch.nn.Module, shape: tuple[int, ...]) -> int:
    """Mult-adds of `module` (on the meta device) for one input of `shape`."""
    key = (repr(module), tuple(shape))
    if key not in _counted:
        with torch.device("meta"):
            example = torch.empty(1, *shape)
        counter = FlopCounterMode(display=False)
        training, rng = module.training, torch.get_rng_state()
        module.eval()  # one image through batch norm in training mode has no variance; dropout draws no numbers
        try:
            with counter, torch.no_grad():
                module(example)
        finally:
            module.train(training)
            torch.set_rng_state(rng)  # counting runs inside build_model, after the run's seed is set
        _counted[key] = counter.get_total_flops() // 2
    return _counted[key]
