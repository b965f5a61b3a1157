"""Every layer kind fmnist ships, registered by importing the modules that define them."""
from __future__ import annotations


def load_builtin_kinds() -> dict:
    """The registry with all of fmnist's own kinds in it (layers, blocks): a plug-in loads after this."""
    from . import blocks  # noqa: F401  (registers the block kinds; it imports layers, which registers the rest)
    from .layers import KINDS

    return KINDS
