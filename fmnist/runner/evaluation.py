"""Evaluation as a function of a model and data: loss, accuracy, predictions, and the test report of a run."""
from __future__ import annotations

from dataclasses import dataclass, field

import torch

from ..datasets.convert import chunk_length
from ..datasets.splits import Images
from . import speedups
from .augment import centre_view
from .inputs import model_input
from .losses import LOSSES

EVAL_BATCH = 1000
TOP_K = (1, 3, 5)  # top-k accuracies reported by eval (those k below the number of classes)


@dataclass(frozen=True)
class EvalSettings:
    """How a model is judged: its loss, on which device, in what precision and memory layout, and whether each
    image's logits are averaged with its mirror image's (test-time flip)."""

    loss: str
    device: torch.device
    precision: str = "fp32"
    channels_last: bool = False
    tta: bool = False
    view: tuple[int, int] | None = None  # images stored larger than the input: each is resized and centre-cropped to it


@dataclass
class Evaluation:
    loss: float
    accuracy: float
    predictions: torch.Tensor  # predicted class per image, on the CPU
    top_k: dict[int, float] = field(default_factory=dict)  # k -> share of images whose class is among the k highest logits

    def confusion(self, labels: torch.Tensor, classes: int) -> torch.Tensor:
        """classes x classes counts: row = true class, column = predicted class."""
        return torch.bincount(labels.cpu() * classes + self.predictions, minlength=classes * classes).reshape(classes, classes)


def logits_of(model: torch.nn.Module, x: torch.Tensor, tta: bool = False) -> torch.Tensor:
    """The model's logits; with `tta`, the mean of the logits of the images and of their mirror images."""
    logits = model(x)
    return (logits + model(x.flip(3))) / 2 if tta else logits


@torch.inference_mode()
def evaluate(model: torch.nn.Module, images: Images, labels: torch.Tensor, how: EvalSettings) -> Evaluation:
    """Mean loss, accuracy and predictions of `model` on a whole split (uint8 images on the device), in eval mode."""
    model.eval()
    loss_fn = LOSSES[how.loss]
    loss_sum = torch.zeros((), device=how.device)
    hits: dict[int, torch.Tensor] = {}
    predictions = []
    size = chunk_length(images, EVAL_BATCH)
    for start in range(0, len(labels), size):
        y = labels[start:start + size]
        batch = images[start:start + size]
        batch = centre_view(batch, how.view) if how.view is not None else batch
        with speedups.autocast(how.device, how.precision):
            logits = logits_of(model, model_input(batch, how.channels_last), how.tta)
        loss_sum += loss_fn(logits.float(), y) * len(y)  # the loss always in fp32
        predictions.append(logits.argmax(1))
        ranked = logits.topk(min(max(TOP_K), logits.shape[1]), dim=1).indices == y[:, None]
        for k in (k for k in TOP_K if k < logits.shape[1] or k == 1):  # on the device: no sync per batch
            hits[k] = hits.get(k, 0) + ranked[:, :k].any(1).sum()
    predicted = torch.cat(predictions)
    accuracy = (predicted == labels).float().mean()
    top_k = {k: float(count) / len(labels) for k, count in hits.items()}
    top_k[1] = float(accuracy)  # by definition; topk and argmax may break ties between equal bf16 logits apart
    return Evaluation(float(loss_sum) / len(labels), float(accuracy), predicted.cpu(), top_k)


def class_metrics(confusion: torch.Tensor, names) -> dict[str, dict]:
    """Precision, recall, F1 and support of each class from a confusion matrix (rows: true, columns: predicted)."""
    confusion = confusion.double()
    hits, predicted, actual = confusion.diag(), confusion.sum(0), confusion.sum(1)
    precision = torch.where(predicted > 0, hits / predicted.clamp(min=1), torch.zeros_like(hits))
    recall = torch.where(actual > 0, hits / actual.clamp(min=1), torch.zeros_like(hits))
    f1 = torch.where(precision + recall > 0, 2 * precision * recall / (precision + recall).clamp(min=1e-12), torch.zeros_like(hits))
    return {name: {"precision": round(float(p), 6), "recall": round(float(r), 6), "f1": round(float(f), 6), "support": int(n)}
            for name, p, r, f, n in zip(names, precision, recall, f1, actual)}


def test_report(model: torch.nn.Module, splits, how: EvalSettings) -> dict:
    """Test accuracy and loss, accuracy per class and the confusion matrix of `model`."""
    test = evaluate(model, splits.test_x, splits.test_y, how)
    confusion = test.confusion(splits.test_y, len(splits.class_names))
    per_class = (confusion.diag().float() / confusion.sum(1).clamp(min=1).float()).tolist()
    return {
        "test_acc": round(test.accuracy, 6),
        "test_loss": round(test.loss, 6),
        "top_k_acc": {f"top{k}": round(share, 6) for k, share in test.top_k.items()},
        "per_class_acc": {name: round(acc, 6) for name, acc in zip(splits.class_names, per_class)},
        "per_class": class_metrics(confusion, splits.class_names),
        "confusion": confusion.tolist(),
        "class_names": list(splits.class_names),
    }


setattr(test_report, "__test__", False)  # a report of the test split, not a pytest test
