"""The names a command offers before the code behind them is imported (so --help needs no torch): each registry is
built from these names, with zip(strict=True), so a name and its implementation cannot drift apart."""

PRUNERS = ("hyperband", "halving", "median", "none")  # fmnist search --pruner (experiments/search/study.py)
KEEP = ("all", "best", "none")  # fmnist grid --keep: checkpoints kept once a cell is done (experiments/grid/pool.py)
EXPORT_FORMATS = ("onnx", "torchscript")  # fmnist export --format (runner/export.py)
# fmnist search --fidelity: how a trial is judged before its end (experiments/search/fidelity.py)
FIDELITY_HELP = {
    "epochs": "at each epoch's end",
    "time": "also at rungs of the per-trial --budget inside epochs (from a 27th of it)",
    "images": "after its whole recipe on a ninth, then a third, then all of the training images",
}
