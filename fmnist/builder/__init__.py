"""Spec loading, the layer-kind registry, shape inference, the model builder and its summary."""
from .build import LayerRecord, Plan, build_model, check_expectations, plan
from .layers import KINDS, Layer, register
from .spec import Spec, load_spec

__all__ = ["KINDS", "Layer", "LayerRecord", "Plan", "Spec", "build_model", "check_expectations", "load_spec", "plan", "register"]
