"""PNG plots: train vs validation loss and accuracy per epoch (the study's Pictures 2 and 3), and confusion matrices."""
from __future__ import annotations

import io
from pathlib import Path

import matplotlib
import numpy as np

matplotlib.use("Agg")  # files only, no display needed
import matplotlib.pyplot as plt  # noqa: E402
from matplotlib.ticker import MaxNLocator  # noqa: E402

from .rundir import atomic_write  # noqa: E402


def _save(figure, path: Path) -> None:
    buffer = io.BytesIO()
    figure.savefig(buffer, format="png", dpi=110, bbox_inches="tight")
    plt.close(figure)
    atomic_write(path, buffer.getvalue())


def plot_curves(epochs: list[dict], folder: Path, title: str) -> None:
    """loss.png and accuracy.png: train (blue) and validation (red) per epoch, the best validation epoch marked."""
    numbers = [e["epoch"] for e in epochs]
    best = max(epochs, key=lambda e: e["val_acc"])
    for metric, label, scale in (("loss", "loss", 1), ("acc", "accuracy (%)", 100)):
        figure, axes = plt.subplots(figsize=(6, 4))
        axes.plot(numbers, [e[f"train_{metric}"] * scale for e in epochs], "o-", color="tab:blue", label="train")
        axes.plot(numbers, [e[f"val_{metric}"] * scale for e in epochs], "o-", color="tab:red", label="validation")
        axes.axvline(best["epoch"], color="grey", linestyle=":", label=f"best validation (epoch {best['epoch']})")
        axes.set_xlabel("epoch")
        axes.xaxis.set_major_locator(MaxNLocator(integer=True))
        axes.set_ylabel(label)
        axes.set_title(f"{title}: train and validation {label.split(' ')[0]}")
        axes.grid(alpha=0.3)
        if len(numbers) == 1:  # one point: give it room, so the legend does not sit on it
            axes.set_xlim(0.5, 1.5)
        axes.legend(loc="best", fontsize="small", framealpha=0.8)
        _save(figure, folder / ("loss.png" if metric == "loss" else "accuracy.png"))


def plot_confusion(matrix, class_names, path: Path, title: str) -> None:
    """A confusion matrix with counts in the cells; rows are true classes."""
    matrix = np.asarray(matrix)
    figure, axes = plt.subplots(figsize=(7.5, 6.5))
    image = axes.imshow(matrix, cmap="Blues")
    axes.set_xticks(range(len(class_names)), class_names, rotation=45, ha="right")
    axes.set_yticks(range(len(class_names)), class_names)
    axes.set_xlabel("predicted")
    axes.set_ylabel("true")
    threshold = matrix.max() / 2
    for row in range(len(class_names)):
        for column in range(len(class_names)):
            value = int(matrix[row][column])
            axes.text(column, row, str(value), ha="center", va="center", fontsize=8,
                      color="white" if value > threshold else "black")
    axes.set_title(title)
    figure.colorbar(image, ax=axes, fraction=0.046)
    _save(figure, path)


def plot_comparison(runs: list[tuple[str, list[dict]]], path: Path) -> None:
    """Validation accuracy (%) per epoch of several runs, one line each, for `fmnist compare`."""
    figure, axes = plt.subplots(figsize=(7, 4.5))
    for label, epochs in runs:
        axes.plot([e["epoch"] for e in epochs], [100 * e["val_acc"] for e in epochs], "o-", label=label)
    axes.set_xlabel("epoch")
    axes.xaxis.set_major_locator(MaxNLocator(integer=True))
    axes.set_ylabel("validation accuracy (%)")
    axes.set_title("validation accuracy per epoch")
    axes.grid(alpha=0.3)
    axes.legend(loc="best", fontsize="small", framealpha=0.8)
    _save(figure, path)
