"""Every layer kind fmnist ships, registered by importing the modules that define them, and the kinds plug-ins added."""
from __future__ import annotations

PLUGIN_KINDS: set[type] = set()  # the layer classes plug-ins registered: the builder holds them to stricter checks


def load_builtin_kinds() -> dict:
    """The registry with all of fmnist's own kinds in it (layers, blocks): a plug-in loads after this."""
    from . import attention, blocks, tokens  # noqa: F401  (each registers its kinds; layers registers the rest)
    from .layers import KINDS

    return KINDS
