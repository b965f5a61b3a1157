"""Mult-adds counted by torch itself: FlopCounterMode over a layer's forward pass on the meta device.

One way of counting for every kind, plug-ins included, so no kind carries a formula of its own. FLOPs = 2 x
mult-adds for the convolutions and matrix products torch counts; element-wise layers count 0, as before.
"""
from __future__ import annotations

import torch
from torch.utils.flop_counter import FlopCounterMode

_counted: dict[tuple, int] = {}  # (what determines the count, input shape) -> mult-adds: layers repeat in a model

_PLAIN = (int, float, str, bool, tuple, type(None))


def _signature(module: torch.nn.Module) -> tuple:
    """What a module's mult-adds depend on: for it and every module inside, its class, its own description and its
    plain settings (a plug-in's class need not print them), and its tensors' shapes."""
    parts = []
    for inner in module.modules():
        settings = tuple(sorted((key, value) for key, value in vars(inner).items()
                                if not key.startswith("_") and isinstance(value, _PLAIN)))
        tensors = tuple((name, tuple(tensor.shape)) for name, tensor in
                        [*inner.named_parameters(recurse=False), *inner.named_buffers(recurse=False)])
        parts.append((type(inner).__module__, type(inner).__qualname__, inner.extra_repr(), settings, tensors))
    return tuple(parts)


def count_macs(module: torch.nn.Module, shape: tuple[int, ...]) -> int:
    """Mult-adds of `module` (on the meta device) for one input of `shape`."""
    try:
        key = (_signature(module), tuple(shape))
        hash(key)
    except TypeError:  # a setting that holds something unhashable: counted every time, never mixed up
        key = None
    if key is None or key not in _counted:
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
        if key is None:
            return counter.get_total_flops() // 2
        _counted[key] = counter.get_total_flops() // 2
    return _counted[key]
