"""A run's model: built from its spec with the run's seed and dropout, and weights loaded into it safely."""
from __future__ import annotations

from pathlib import Path

import torch

from ..hparams import TrainConfig

from ..builder.build import build_model
from ..builder.spec import Spec
from ..datasets.convert import Normalize
from ..errors import UsageError, one_line


def make_model(spec: Spec, hparams: TrainConfig, normalization: dict | None = None) -> torch.nn.Sequential:
    """The spec's model with the run's seed and dropout; with `normalization`, a Normalize layer in front, so
    eval, predict and export apply the training split's statistics without knowing of them."""
    torch.manual_seed(hparams.seed)
    model = build_model(spec)
    if hparams.dropout is not None:
        for module in model.modules():
            if isinstance(module, torch.nn.Dropout):
                module.p = hparams.dropout
    if normalization:
        model = torch.nn.Sequential(Normalize(normalization["mean"], normalization["std"]), model)
    return model


def load_weights(module, state: dict | None, where: Path) -> None:
    """load_state_dict, with a checkpoint of another model as one clear line instead of torch's list of keys."""
    if state is None:
        raise UsageError("damaged checkpoint: it holds no weights", str(where))
    try:
        module.load_state_dict(state)
    except (RuntimeError, KeyError, ValueError, TypeError, IndexError) as error:
        first = one_line(error, 120)
        raise UsageError(f"checkpoint does not fit this run's model or optimizer: another run's file? ({first})",
                         str(where)) from None
