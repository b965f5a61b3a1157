"""fmnist: write a CNN as a YAML list of layers; build, summarise, train and test it on Fashion-MNIST."""
from .builder import build_model, load_spec, plan
from .errors import ExpectationError, FmnistError, SpecError

__all__ = ["ExpectationError", "FmnistError", "SpecError", "build_model", "load_spec", "plan"]
__version__ = "0.1.0"
