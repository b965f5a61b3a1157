"""PNG plots: train vs validation loss and accuracy per epoch (the study's Pictures 2 and 3), and confusion matrices."""
from __future__ import annotations

import functools
import io
import os
import tempfile
from pathlib import Path

from .rundir import atomic_write


def _writable_config_home() -> None:
    """Matplotlib keeps a font cache in ~/.config/matplotlib; where that cannot be written (a read-only home, a
    container user without one) it warns on every start. Give it a folder of its own in the temporary folder then."""
    if os.environ.get("MPLCONFIGDIR"):
        return
    home = Path(os.environ.get("XDG_CONFIG_HOME") or Path.home() / ".config") / "matplotlib"
    try:
        home.mkdir(parents=True, exist_ok=True)
        if os.access(home, os.W_OK):
            return
    except (OSError, RuntimeError):  # RuntimeError: no home folder at all
        pass
    fallback = Path(tempfile.gettempdir()) / f"fmnist-matplotlib-{os.getuid() if hasattr(os, 'getuid') else 0}"
    fallback.mkdir(mode=0o700, exist_ok=True)
    os.environ["MPLCONFIGDIR"] = str(fallback)


@functools.cache
def pyplot():
    """matplotlib.pyplot, set up once, by whoever plots first: a writable config folder, and files only (no display).
    Every plot in fmnist gets pyplot here, so no import order matters."""
    _writable_config_home()
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def integer_ticks(axis) -> None:
    from matplotlib.ticker import MaxNLocator

    axis.set_major_locator(MaxNLocator(integer=True))


def save_figure(figure, path: Path) -> None:
    """The figure as a PNG, written whole or not at all, and closed (pyplot keeps every open figure alive)."""
    buffer = io.BytesIO()
    figure.savefig(buffer, format="png", dpi=110, bbox_inches="tight")
    pyplot().close(figure)
    atomic_write(path, buffer.getvalue())


def plot_curves(epochs: list[dict], folder: Path, title: str) -> None:
    """loss.png and accuracy.png: train (blue) and validation (red) per epoch, the best validation epoch marked."""
    numbers = [e["epoch"] for e in epochs]
    best = max(epochs, key=lambda e: e["val_acc"])
    for metric, label, scale in (("loss", "loss", 1), ("acc", "accuracy (%)", 100)):
        figure, axes = pyplot().subplots(figsize=(6, 4))
        axes.plot(numbers, [e[f"train_{metric}"] * scale for e in epochs], "o-", color="tab:blue", label="train")
        axes.plot(numbers, [e[f"val_{metric}"] * scale for e in epochs], "o-", color="tab:red", label="validation")
        axes.axvline(best["epoch"], color="grey", linestyle=":", label=f"best validation (epoch {best['epoch']})")
        axes.set_xlabel("epoch")
        integer_ticks(axes.xaxis)
        axes.set_ylabel(label)
        axes.set_title(f"{title}: train and validation {label.split(' ')[0]}")
        axes.grid(alpha=0.3)
        if len(numbers) == 1:  # one point: give it room, so the legend does not sit on it
            axes.set_xlim(0.5, 1.5)
        axes.legend(loc="best", fontsize="small", framealpha=0.8)
        save_figure(figure, folder / ("loss.png" if metric == "loss" else "accuracy.png"))


COUNTS_UP_TO = 30  # classes; past this the cells are too small to read a number, and drawing k² of them takes minutes
NAMES_UP_TO = 60  # classes whose names still fit beside the matrix


def plot_confusion(matrix, class_names, path: Path, title: str) -> None:
    """A confusion matrix, rows the true classes; counts in the cells and names on the axes while they can be read."""
    import numpy as np

    matrix = np.asarray(matrix)
    classes = len(class_names)
    figure, axes = pyplot().subplots(figsize=(7.5, 6.5))
    image = axes.imshow(matrix, cmap="Blues")
    if classes <= NAMES_UP_TO:
        axes.set_xticks(range(classes), class_names, rotation=45, ha="right")
        axes.set_yticks(range(classes), class_names)
    axes.set_xlabel("predicted" if classes <= NAMES_UP_TO else "predicted (class index)")
    axes.set_ylabel("true" if classes <= NAMES_UP_TO else "true (class index)")
    threshold = matrix.max() / 2
    for row in range(classes if classes <= COUNTS_UP_TO else 0):
        for column in range(classes):
            value = int(matrix[row][column])
            axes.text(column, row, str(value), ha="center", va="center", fontsize=8,
                      color="white" if value > threshold else "black")
    axes.set_title(title)
    figure.colorbar(image, ax=axes, fraction=0.046)
    save_figure(figure, path)


def plot_comparison(runs: list[tuple[str, list[dict]]], path: Path) -> None:
    """Validation accuracy (%) per epoch of several runs, one line each, for `fmnist compare`."""
    figure, axes = pyplot().subplots(figsize=(7, 4.5))
    for label, epochs in runs:
        axes.plot([e["epoch"] for e in epochs], [100 * e["val_acc"] for e in epochs], "o-", label=label)
    axes.set_xlabel("epoch")
    integer_ticks(axes.xaxis)
    axes.set_ylabel("validation accuracy (%)")
    axes.set_title("validation accuracy per epoch")
    axes.grid(alpha=0.3)
    axes.legend(loc="best", fontsize="small", framealpha=0.8)
    save_figure(figure, path)
