"""A trained model as a file other tools load: ONNX (with class names in its metadata) or TorchScript."""
from __future__ import annotations

import io
import json
import warnings
from pathlib import Path
from typing import Callable

import torch

from .. import __version__
from ..choices import EXPORT_FORMATS
from ..errors import UsageError
from .inputs import describe_input
from .rundir import atomic_write


# what a consumer of the exported model does with its output, per training loss
OUTPUTS = {"softmax": "logits; softmax gives class probabilities", "sigmoid": "logits; sigmoid per class",
           "sigmoid-ce": "logits; sigmoid per class (trained through a softmax over the sigmoids)"}


def _metadata(class_names: list[str], loss: str, input_text: str) -> dict[str, str]:
    return {
        "class_names": json.dumps(class_names),
        "output": OUTPUTS[loss],
        "input": input_text,
        "producer": f"fmnist {__version__}",
    }


def export_onnx(model: torch.nn.Module, example: torch.Tensor, path: Path, metadata: dict[str, str]) -> None:
    try:
        import onnx  # noqa: F401  (torch's exporter needs onnx and onnxscript)
        import onnxscript  # noqa: F401
    except ImportError:
        raise UsageError("ONNX export needs onnx and onnxscript: pip install 'fmnist[export]'") from None
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        program = torch.onnx.export(model, (example,), dynamo=True, input_names=["images"], output_names=["logits"],
                                    dynamic_shapes=({0: torch.export.Dim("batch", min=1)},), verbose=False)
    if program is None:
        raise UsageError("torch's ONNX exporter returned nothing for this model")
    proto = program.model_proto
    for key, value in metadata.items():
        entry = proto.metadata_props.add()
        entry.key, entry.value = key, value
    atomic_write(path, proto.SerializeToString())


def export_torchscript(model: torch.nn.Module, example: torch.Tensor, path: Path, metadata: dict[str, str]) -> None:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # TorchScript is in maintenance mode; it still loads in C++ and older tools
        traced = torch.jit.trace(model, example)
        buffer = io.BytesIO()
        torch.jit.save(traced, buffer, _extra_files={f"{key}.txt": value for key, value in metadata.items()})
    atomic_write(path, buffer.getvalue())


# --format -> (the file it writes in the run folder, the function that writes it)
FORMATS: dict[str, tuple[str, Callable]] = dict(zip(EXPORT_FORMATS, (("model.onnx", export_onnx),
                                                                   ("model.ts.pt", export_torchscript)), strict=True))


def export(model: torch.nn.Module, input_shape, class_names: list[str], loss: str, fmt: str, path: Path | None,
           folder: Path, input_text: str | None = None) -> Path:
    """Write the model (eval mode, float32, CPU) in `fmt`, `input_text` saying what it takes; returns where."""
    filename, writer = FORMATS[fmt]
    target = Path(path) if path else folder / filename
    model = model.float().cpu().eval()
    example = torch.rand(2, *input_shape)
    writer(model, example, target, _metadata(class_names, loss, input_text or describe_input(input_shape)))
    return target
