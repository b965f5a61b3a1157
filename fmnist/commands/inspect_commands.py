"""`fmnist eval`, `fmnist predict` and `fmnist data`: look at a finished run, use it, or check the dataset."""
from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import click

from ..choices import EXPORT_FORMATS
from ..console import make_console
from ..errors import StorageError


@click.command(name="eval")
@click.argument("run_path", metavar="RUN", type=click.Path(file_okay=False))
@click.option("--device", default="auto", show_default=True, help="auto, cpu, cuda, cuda:N or mps.")
@click.option("--data", help="Test on this dataset or folder instead of the run's own (same input and classes).")
@click.option("--data-dir", help="Folder of the named datasets' files [the run's].")
@click.option("--tta/--no-tta", default=None, help="Average each image's logits with its mirror's, or not [as the run was trained].")
@click.option("--json", "as_json", is_flag=True, help="Print one JSON object instead of tables.")
def evaluate(run_path: str, device: str, data: str | None, data_dir: str | None, tta: bool | None, as_json: bool) -> int:
    """Test accuracy, per-class accuracy and confusion matrix of RUN's best epoch (also saved as confusion.png)."""
    from ..datasets.choice import choose_data
    from ..datasets.loading import check_fits, check_unchanged, load_data, plan_data
    from ..runner.device import resolve_device
    from ..runner.evaluation import EvalSettings, test_report
    from ..runner.plots import plot_confusion
    from ..runner.rundir import RunDir, strict_json
    from ..runner.speedups import eval_levers

    torch_device = resolve_device(device)
    run = RunDir.existing(run_path)
    model, checkpoint = run.best_model(torch_device)
    spec, recorded = run.spec(), run.config().data
    choice = choose_data(spec.data, data if data is not None else recorded.choice, spec.file)
    planned = plan_data(choice, data_dir or recorded.data_dir, torch_device)
    check_fits(planned, spec)
    splits = load_data(planned, recorded.train_limit, recorded.val_limit)
    if data is None:  # the run's own data: the test split must be the one the run was tested on
        check_unchanged(recorded.as_mapping(), planned, splits, str(run.file("config.yaml")))
    splits = splits.to(torch_device)
    settings = run.config().settings()
    tta = settings.tta if tta is None else tta
    how = EvalSettings(settings.loss, torch_device, **eval_levers(run.config().speed, torch_device), tta=tta,
                       view=planned.view)
    report = test_report(model, splits, how)
    report = {"run": str(run.path), "name": spec.name, "epoch": checkpoint.epoch, "data": planned.label, "tta": tta,
              **report}
    # the figures are printed first: a read-only or full run folder must not cost the user the result
    if as_json:
        click.echo(strict_json(report))
    else:
        print_report(report, spec.name, checkpoint.epoch)
    plot_confusion(report["confusion"], report["class_names"], run.file("confusion.png"),
                   f"{spec.name}, epoch {checkpoint.epoch}: test accuracy {100 * report['test_acc']:.2f}%")
    if not as_json:
        click.echo(f"confusion matrix plot: {run.file('confusion.png')}")
    return 0


def print_report(report: dict, name: str, epoch: int) -> None:
    from rich.table import Table

    from ..runner.plots import COUNTS_UP_TO

    console = make_console()
    console.print(f"{name} · best validation epoch {epoch} · test accuracy {100 * report['test_acc']:.2f}% "
                  f"· test loss {report['test_loss']:.4f} · "
                  + " · ".join(f"{k} {100 * v:.2f}%" for k, v in report["top_k_acc"].items() if k != "top1"))
    names = report["class_names"]
    if len(names) <= COUNTS_UP_TO:
        table = Table(title="Confusion matrix (rows: true class, columns: predicted)", title_justify="left")
        table.add_column("true \\ predicted")
        for index in range(len(names)):
            table.add_column(str(index), justify="right")
        table.add_column("accuracy", justify="right")
        for index, (name, row) in enumerate(zip(names, report["confusion"])):
            table.add_row(f"{index} {name}", *(f"{count:,}" for count in row), f"{100 * report['per_class_acc'][name]:.1f}%")
        console.print(table)
    else:  # a table k columns wide cannot be read on a terminal
        console.print(f"Confusion matrix: {len(names)} classes, too many to print (in confusion.png, and with --json)")
    metrics = Table(title="Per class", title_justify="left")
    for header in ("class", "precision", "recall", "F1", "support"):
        metrics.add_column(header, justify="left" if header == "class" else "right")
    for name, row in report["per_class"].items():
        metrics.add_row(name, f"{100 * row['precision']:.1f}%", f"{100 * row['recall']:.1f}%", f"{100 * row['f1']:.1f}%",
                        f"{row['support']:,}")
    console.print(metrics)


@click.command()
@click.argument("run_path", metavar="RUN", type=click.Path(file_okay=False))
@click.argument("images", nargs=-1, required=True)
@click.option("--device", default="auto", show_default=True, help="auto, cpu, cuda, cuda:N or mps.")
@click.option("--json", "as_json", is_flag=True, help="Print one JSON list (every class's probability) instead of lines.")
def predict(run_path: str, images: tuple[str, ...], device: str, as_json: bool) -> int:
    """Class and probability for each of IMAGES (any format Pillow reads), by RUN's best epoch."""
    import torch

    from ..datasets.fashion_mnist import (
        CLASS_NAMES,  # a checkpoint from before class names were saved
    )
    from ..runner.device import resolve_device
    from ..runner.evaluation import logits_of
    from ..runner.images import load_image
    from ..runner.inputs import model_input
    from ..runner.losses import PROBABILITIES
    from ..runner.rundir import RunDir

    torch_device = resolve_device(device)
    run = RunDir.existing(run_path)
    model, checkpoint = run.best_model(torch_device)
    spec = run.spec()
    names = checkpoint.class_names or list(CLASS_NAMES)
    light_on_black = run.config().data.light_on_black
    choice = run.config().data.choice
    stored = choice.get("store") if isinstance(choice, dict) else None
    batch = torch.stack([load_image(path, spec.input, light_on_black, stored) for path in images]).to(torch_device)
    with torch.inference_mode():
        settings = run.config().settings()
        probabilities = PROBABILITIES[settings.loss](logits_of(model, model_input(batch), settings.tta))
    rows = [(path, row.tolist()) for path, row in zip(images, probabilities.float().cpu())]
    if as_json:
        click.echo(json.dumps([{"image": path, "class": names[max(range(len(row)), key=row.__getitem__)],
                                "probability": round(max(row), 6),
                                "probabilities": {name: round(p, 6) for name, p in zip(names, row)}}
                               for path, row in rows], indent=2))
        return 0
    for path, row in rows:
        best = max(range(len(row)), key=row.__getitem__)
        click.echo(f"{path}\t{names[best]}\t{100 * row[best]:.1f}%")
    return 0


@click.command(name="export")
@click.argument("run_path", metavar="RUN", type=click.Path(file_okay=False))
@click.option("--format", "fmt", type=click.Choice(EXPORT_FORMATS), default="onnx", show_default=True)
@click.option("--out", "out_file", type=click.Path(dir_okay=False), help="Output file [RUN/model.onnx or RUN/model.ts.pt].")
def export_model(run_path: str, fmt: str, out_file: str | None) -> int:
    """Write RUN's best model as ONNX or TorchScript, with its class names, for use outside fmnist."""
    import torch

    from ..datasets.fashion_mnist import (
        CLASS_NAMES,  # a checkpoint from before class names were saved
    )
    from ..runner.export import FORMATS, export
    from ..runner.inputs import describe_input
    from ..runner.outputs import check_output
    from ..runner.rundir import RunDir

    run = RunDir.existing(run_path)
    if out_file:
        check_output(out_file, "--out", ours=tuple(filename for filename, _ in FORMATS.values()))
    model, checkpoint = run.best_model(torch.device("cpu"))
    spec = run.spec()
    names = checkpoint.class_names or list(CLASS_NAMES)
    if out_file:
        try:
            Path(out_file).parent.mkdir(parents=True, exist_ok=True)
        except OSError as error:
            raise StorageError(f"--out {out_file}: cannot create its folder ({error.strerror})") from None
    data = run.config().data
    takes = describe_input(spec.input, data.light_on_black, bool(data.normalization))
    target = export(model, spec.input, names, run.config().settings().loss, fmt, Path(out_file) if out_file else None,
                    run.path, takes)
    click.echo(f"{spec.name} (epoch {checkpoint.epoch}) -> {target} ({target.stat().st_size / 1e6:.2f} MB, {fmt}); "
               f"input 'images': {takes}; output 'logits'")
    return 0


@click.command()
@click.option("--data", "name", default="fashion-mnist", show_default=True,
              help="fashion-mnist, mnist, kmnist, cifar10, cifar100, or a folder of images.")
@click.option("--data-dir", help="Folder of the named datasets' files (else $FMNIST_DATA, ./data; Fashion-MNIST also "
              "Debian's package).")
@click.option("--download", is_flag=True, help="If not found, fetch it with torchvision (needs the internet).")
@click.option("--json", "as_json", is_flag=True, help="Print one JSON object instead of lines.")
def data(name: str, data_dir: str | None, download: bool, as_json: bool) -> int:
    """Where a dataset is, whether it verifies, its classes and split, and how to get it if it is missing."""
    import torch

    from ..datasets.choice import choose_data
    from ..datasets.loading import load_data, plan_data

    planned = plan_data(choose_data(None, name), data_dir, torch.device("cpu"), download=download)
    splits = load_data(planned)
    report: dict[str, Any] = {"dataset": planned.label, "found": planned.how, "verified": True, "check": planned.check,
              "input": list(planned.shape), "classes": list(splits.class_names),
              "split": {"train": len(splits.train_y), "validation": len(splits.val_y), "test": len(splits.test_y)},
              "notes": planned.notes}
    if as_json:
        click.echo(json.dumps(report, indent=2))
        return 0
    click.echo(f"{planned.label} found: {planned.how}")
    click.echo(f"verified: {planned.check}")
    click.echo(f"images: {' x '.join(map(str, planned.shape))} (C x H x W), {len(splits.class_names)} classes: "
               + ", ".join(splits.class_names[:12]) + (" ..." if len(splits.class_names) > 12 else ""))
    split = report["split"]
    click.echo(f"split: {split['train']:,} train / {split['validation']:,} validation / {split['test']:,} test")
    for note in planned.notes:
        click.echo(note)
    return 0
