"""Spec loading, the layer-kind registry, shape inference, the model builder and its summary.

Names are imported on first use: the registry and the spec checks work without torch (fmnist validate).
"""
from .layers import KINDS, Layer, register

_LAZY = {"LayerRecord": ".build", "Plan": ".build", "build_model": ".build", "check_expectations": ".build",
         "plan": ".build", "Spec": ".spec", "load_spec": ".spec"}
__all__ = sorted(["KINDS", "Layer", "register", *_LAZY])


def __getattr__(name: str):
    if name in _LAZY:
        import importlib

        return getattr(importlib.import_module(_LAZY[name], __name__), name)
    raise AttributeError(f"module 'fmnist.builder' has no attribute {name!r}")
