"""fmnist: write a CNN as a YAML list of layers; build, summarise, train and test it on Fashion-MNIST."""
import time

STARTED = time.monotonic()  # first thing on import: start-up time is measured from here to the first training step
__version__ = "0.1.0"

# The Python API, imported on first use: `import fmnist` (and so `fmnist --help`) does not pay for torch up front.
_API = {"build_model": ".builder", "load_spec": ".builder", "plan": ".builder",
        "ExpectationError": ".errors", "FmnistError": ".errors", "SpecError": ".errors"}
__all__ = sorted(_API)


def __getattr__(name: str):
    if name in _API:
        import importlib

        return getattr(importlib.import_module(_API[name], __name__), name)
    raise AttributeError(f"module 'fmnist' has no attribute {name!r}")
