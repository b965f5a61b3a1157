"""Weights from elsewhere (a torchvision or timm state dict, an fmnist checkpoint) mapped onto a spec's model.

Names differ between libraries, so tensors are paired by structure and shape: the k-th tensor of a shape in the
model takes the k-th tensor of that shape in the file, both in the order the network uses them. fmnist's models
register their modules in that order; a file's tensors are in its model's registration order, which is not always
the order of use (Swin V2 registers each block's norms before the attention and MLP they follow), so where the
file's architecture can be built (torchvision:NAME, the zoo's oracles) its tensors are put in the order one forward
pass on the meta device reaches them. A pair left over is tried again with size-1 axes ignored (a Linear over
channels against a 1x1 conv). Anything ambiguous is refused, never guessed.
"""
from __future__ import annotations

import socket
from dataclasses import dataclass, field

from ..errors import UsageError, one_line
from .layers import fmt_shape

TORCHVISION = "torchvision:"  # --init torchvision:resnet18 = torchvision's published weights for that model
DOWNLOAD_TIMEOUT = 20  # seconds without an answer before a download counts as offline


@dataclass
class Mapping:
    """How a file's tensors land on a model: the state dict to load, and what found no partner."""

    state: dict
    fresh: list[str] = field(default_factory=list)  # the model's tensors left as initialised
    unused: list[str] = field(default_factory=list)  # the file's tensors not used

    def describe(self, source: str) -> str:
        loaded = f"init: {len(self.state)} tensors from {source}"
        if self.fresh:
            loaded += f"; left fresh: {_names(self.fresh)}"
        if self.unused:
            loaded += f"; not used from the file: {_names(self.unused)}"
        return loaded


def _names(names: list[str], shown: int = 4) -> str:
    return ", ".join(names[:shown]) + (f" and {len(names) - shown} more" if len(names) > shown else "")


def _squeezed(shape) -> tuple[int, ...]:
    return tuple(n for n in shape if n != 1)


def _is_matrix(item) -> bool:
    return len(_squeezed(item[1].shape)) >= 2


def _pair(targets: list, sources: list, key) -> tuple[list, list, list, list[str]]:
    """Pair targets and sources of equal key in order; (pairs, targets left, sources left, conflicts)."""
    by_key: dict = {}
    for side, items in ((0, targets), (1, sources)):
        for name, tensor in items:
            # an integer tensor is an index table (Swin's relative positions), never a weight's partner
            by_key.setdefault((key(tensor.shape), tensor.is_floating_point()), ([], []))[side].append((name, tensor))
    pairs, left_targets, left_sources, conflicts = [], [], [], []
    for (shape, _), (mine, theirs) in by_key.items():
        if len(mine) == len(theirs):
            pairs += list(zip(mine, theirs))
        elif mine and theirs:
            conflicts.append(f"{len(mine)} tensors of shape {fmt_shape(tuple(shape))} in the model, {len(theirs)} in the file")
        else:
            left_targets += mine
            left_sources += theirs
    return pairs, left_targets, left_sources, conflicts


def execution_order(model, shape: tuple[int, ...]) -> list[str]:
    """The names of `model`'s state dict in the order one forward pass reaches them: each tensor at the first call of
    the innermost module holding it that is called (a Linear whose weight its parent uses directly counts as its
    parent's), in registration order within. `model` lives on the meta device; `shape` is one input's."""
    import torch

    calls: dict[str, int] = {}
    names = {module: name for name, module in model.named_modules()}
    def seen(module, args) -> None:  # a pre-hook that returns something replaces the module's input
        calls.setdefault(names[module], len(calls))

    hooks = [module.register_forward_pre_hook(seen) for module in names]
    try:
        with torch.no_grad():
            model.eval()(torch.empty(1, *shape, device="meta"))
    finally:
        for hook in hooks:
            hook.remove()

    def called_owner(name: str) -> int:
        parts = name.split(".")[:-1]
        while parts and ".".join(parts) not in calls:
            parts.pop()
        return calls.get(".".join(parts), 0)

    entries = list(model.state_dict())
    return sorted(entries, key=lambda name: (called_owner(name), entries.index(name)))


def torchvision_order(name: str, shape: tuple[int, ...]) -> list[str] | None:
    """torchvision's model NAME's tensors in the order a forward pass uses them (built on the meta device), or None
    where it cannot be run at this input (a ViT built for another size)."""
    import torch
    from torchvision import models

    try:
        with torch.device("meta"):
            model = models.get_model(name)
        return execution_order(model, shape)
    except Exception:  # an architecture that cannot be built or run on the meta device: registration order it is
        return None


def map_state_dict(source: dict, model, fresh_head: bool = False, source_order: list[str] | None = None) -> Mapping:
    """The model's state dict filled from `source` by structure and shape; raises UsageError naming what does not fit
    (unless fresh_head, where tensors with no partner at all stay as initialised). `source_order`: the file's names
    in the order its network uses them, where known (else the file's own order)."""
    targets = list(model.state_dict().items())
    order = {name: position for position, (name, _) in enumerate(targets)}
    if source_order is not None:
        used = {name: position for position, name in enumerate(source_order)}
        source = dict(sorted(source.items(), key=lambda item: used.get(item[0], len(used))))
    # an fmnist checkpoint's input normalisation (buffers named mean and std) is the run's, not the network's
    sources = [(name, tensor) for name, tensor in source.items()
               if hasattr(tensor, "shape") and name.rsplit(".", 1)[-1] not in ("mean", "std")]
    pairs, left_targets, left_sources, conflicts = _pair(targets, sources, tuple)
    # a Linear over channels against a 1x1 conv: weights of 2+ real axes, paired again with size-1 axes ignored
    squeezed, matrix_targets, matrix_sources, more = _pair([item for item in left_targets if _is_matrix(item)],
                                                           [item for item in left_sources if _is_matrix(item)], _squeezed)
    left_targets = matrix_targets + [item for item in left_targets if not _is_matrix(item)]
    left_sources = matrix_sources + [item for item in left_sources if not _is_matrix(item)]
    conflicts += more
    if conflicts:
        raise UsageError(f"cannot pair the weights by shape: {'; '.join(conflicts[:3])}")
    if left_targets and not fresh_head:
        shown = ", ".join(f"{name} {fmt_shape(tuple(tensor.shape))}" for name, tensor in left_targets[:3])
        extra = ", ".join(f"{name} {fmt_shape(tuple(tensor.shape))}" for name, tensor in left_sources[:3])
        raise UsageError(f"{len(left_targets)} of the model's tensors have no partner in the file ({shown})"
                         + (f"; the file has {extra} unused" if extra else "")
                         + "; add --init-fresh-head to leave them as initialised (a head of another size)")
    state = {mine[0]: theirs[1].reshape(mine[1].shape).to(mine[1].dtype) for mine, theirs in pairs + squeezed}
    fresh = sorted((name for name, _ in left_targets), key=lambda name: order[name])
    return Mapping(state, fresh, [name for name, _ in left_sources])


def torchvision_weights(name: str) -> dict:
    """torchvision's published weights for model NAME (needs the internet), or one line saying why not."""
    from torchvision import models

    try:
        weights = models.get_model_weights(name).DEFAULT
    except (ValueError, KeyError):
        known = ", ".join(sorted(models.list_models(module=models))[:8])
        raise UsageError(f"torchvision has no classification model '{name}' (e.g. {known}, ...)") from None
    previous = socket.getdefaulttimeout()
    socket.setdefaulttimeout(DOWNLOAD_TIMEOUT)
    try:
        return weights.get_state_dict(progress=False, check_hash=True)
    except Exception as error:  # offline, a proxy, a hash mismatch: urllib's and torch's reasons vary
        raise UsageError(f"cannot fetch torchvision's {name} weights ({one_line(error, 100)}); offline, download "
                         f"{weights.url} elsewhere and pass the file to --init") from None
    finally:
        socket.setdefaulttimeout(previous)


def load_mapped(model, weights: dict, source: str, fresh_head: bool = False, source_order: list[str] | None = None) -> str:
    """Fill `model` from a state dict read by read_weights; returns the one-line account of what was loaded."""
    mapping = map_state_dict(weights, model, fresh_head, source_order)
    model.load_state_dict(mapping.state, strict=False)
    return mapping.describe(source)

