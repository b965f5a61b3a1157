"""Evaluation as a function of a model and data: loss, accuracy, predictions, and the test report of a run."""
from __future__ import annotations

from dataclasses import dataclass

import torch

from . import speedups
from .inputs import model_input
from .losses import LOSSES

EVAL_BATCH = 1000


@dataclass
class Evaluation:
    loss: float
    accuracy: float
    predictions: torch.Tensor  # predicted class per image, on the CPU

    def confusion(self, labels: torch.Tensor, classes: int) -> torch.Tensor:
        """classes x classes counts: row = true class, column = predicted class."""
        return torch.bincount(labels.cpu() * classes + self.predictions, minlength=classes * classes).reshape(classes, classes)


@torch.inference_mode()
def evaluate(model: torch.nn.Module, images: torch.Tensor, labels: torch.Tensor, loss: str, device: torch.device,
             precision: str = "fp32", channels_last: bool = False) -> Evaluation:
    """Mean loss, accuracy and predictions of `model` on a whole split (uint8 images on `device`), in eval mode."""
    model.eval()
    loss_fn = LOSSES[loss]
    loss_sum = torch.zeros((), device=device)
    predictions = []
    for start in range(0, len(labels), EVAL_BATCH):
        y = labels[start:start + EVAL_BATCH]
        with speedups.autocast(device, precision):
            logits = model(model_input(images[start:start + EVAL_BATCH], channels_last))
        loss_sum += loss_fn(logits.float(), y) * len(y)  # the loss always in fp32
        predictions.append(logits.argmax(1))
    predicted = torch.cat(predictions)
    accuracy = (predicted == labels).float().mean()
    return Evaluation(float(loss_sum) / len(labels), float(accuracy), predicted.cpu())


def test_report(model: torch.nn.Module, splits, loss: str, device: torch.device, precision: str = "fp32",
                channels_last: bool = False) -> dict:
    """Test accuracy and loss, accuracy per class and the confusion matrix of `model`."""
    test = evaluate(model, splits.test_x, splits.test_y, loss, device, precision, channels_last)
    confusion = test.confusion(splits.test_y, len(splits.class_names))
    per_class = (confusion.diag().float() / confusion.sum(1).clamp(min=1).float()).tolist()
    return {
        "test_acc": round(test.accuracy, 6),
        "test_loss": round(test.loss, 6),
        "per_class_acc": {name: round(acc, 6) for name, acc in zip(splits.class_names, per_class)},
        "confusion": confusion.tolist(),
        "class_names": list(splits.class_names),
    }


test_report.__test__ = False  # a report of the test split, not a pytest test
