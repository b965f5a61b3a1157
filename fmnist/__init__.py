"""fmnist: write a CNN as a YAML list of layers; build, summarise, train and test it on Fashion-MNIST."""
import time

STARTED = time.monotonic()  # first thing on import: start-up time is measured from here to the first training step
from .builder import build_model, load_spec, plan
from .errors import ExpectationError, FmnistError, SpecError

__all__ = ["ExpectationError", "FmnistError", "SpecError", "build_model", "load_spec", "plan"]
__version__ = "0.1.0"
