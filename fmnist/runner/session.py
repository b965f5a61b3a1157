"""One training run from start to test: resolve settings, load data, train, keep the best epoch, test it, write it all down.

Also resumes a run from its folder: nothing finished is lost, and a resumed run continues exactly as an
uninterrupted one would have (same seed, same RNG states).
"""
from __future__ import annotations

import platform
import sys
import time
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

import torch
import yaml
from rich.console import Console

from .. import STARTED, __version__
from ..builder.build import build_model, plan
from ..builder.spec import Spec, parse_spec
from ..errors import FmnistError, UsageError
from ..hparams import resolve
from .data import load_splits, locate
from .device import resolve_device
from .plots import plot_curves
from .progress import epoch_progress
from .rundir import RunDir
from .speedups import speed_settings
from .trainer import Trainer, test_report


class RunInterrupted(FmnistError):
    """Ctrl-C: finished epochs are on disk; the message says how to resume."""

    exit_code = 130


@dataclass
class RunOptions:
    """Where and on what a run trains (not hyper-parameters: those are in hparams)."""

    device: str = "auto"
    out: str = "runs"
    data_dir: str | None = None
    train_limit: int | None = None
    dry_run: bool = False  # resolve and print the settings, train nothing
    fast: bool = True  # the measured speed levers (runner/speedups.py); False = the plain eager fp32 loop
    precision: str = "auto"
    run_dir: str | None = None  # exactly this folder instead of out/<name>-<time>


def make_model(spec: Spec, hparams: dict) -> torch.nn.Module:
    """The spec's model with the run's seed and dropout."""
    torch.manual_seed(hparams["seed"])
    model = build_model(spec)
    if hparams["dropout"] is not None:
        for module in model.modules():
            if isinstance(module, torch.nn.Dropout):
                module.p = hparams["dropout"]
    return model


def start(spec: Spec, flags: dict, options: RunOptions, console: Console) -> RunDir | None:
    """A new run of `spec`: settings are flags > spec `train:` > the study's defaults."""
    plan(spec)  # shape or size problems surface before any data is read
    hparams = resolve(spec.train, flags)
    device = resolve_device(options.device)
    if options.train_limit is not None and options.train_limit < 2:
        raise UsageError(f"--train-limit {options.train_limit}: needs at least 2 images")
    speed = speed_settings(options.fast, options.precision, device)
    if options.dry_run:
        console.print(yaml.safe_dump({"spec": spec.file, "model": spec.name, "hparams": hparams, "device": str(device),
                                      "train_limit": options.train_limit, "speed": speed}, sort_keys=False).rstrip())
        return None
    source = locate(options.data_dir, download=True)
    splits = load_splits(source, options.train_limit)
    run = RunDir.create_at(options.run_dir) if options.run_dir else RunDir.create(options.out, spec.name)
    config = {
        "spec_file": spec.file,
        "spec": spec.document,
        "hparams": hparams,
        "device": str(device),
        "speed": speed,
        "data": {"source": source.how, "verified": True, "data_dir": options.data_dir, "train_limit": options.train_limit,
                 "train": len(splits.train_y), "validation": len(splits.val_y), "test": len(splits.test_y)},
        "versions": {"fmnist": __version__, "torch": str(torch.__version__), "python": platform.python_version()},
        "machine": {"platform": platform.platform(), "processor": platform.processor() or platform.machine(),
                    "threads": torch.get_num_threads()},
        "command": " ".join(["fmnist", *sys.argv[1:]]),
        "created": datetime.now().isoformat(timespec="seconds"),
    }
    run.write_config(config)
    _train(run, spec, hparams, device, splits, console, source.how, speed)
    return run


def resume(path: str | Path, device_name: str, console: Console) -> RunDir:
    """Continue a run from its last finished epoch (or just test it, if training had finished)."""
    run = RunDir.existing(path)
    if run.file("summary.json").is_file():
        raise UsageError(f"this run has finished (summary.json is there); see 'fmnist eval {run.path}'", str(run.path))
    config = run.read_config()
    spec = parse_spec(config["spec"], str(run.file("config.yaml")))
    checkpoint = run.load_checkpoint("last.pt")
    data = config.get("data", {})
    source = locate(data.get("data_dir"), download=True)
    splits = load_splits(source, data.get("train_limit"))
    hparams = resolve(config["hparams"], {})  # a run folder from an older fmnist gets today's defaults for new settings
    _train(run, spec, hparams, resolve_device(device_name), splits, console, source.how, config.get("speed", {}), checkpoint)
    return run


def _percent(value: float) -> str:
    return f"{100 * value:.2f}%"


def _train(run, spec, hparams, device, splits, console, data_how, speed, checkpoint=None) -> dict:
    model = make_model(spec, hparams).to(device)
    splits = splits.to(device)
    trainer = Trainer(model, splits, hparams, device, **speed)
    history, best = [], {"epoch": 0, "val_acc": -1.0}
    if checkpoint is not None:
        trainer.load_state_dict(checkpoint["trainer"])
        history, best = checkpoint["history"], checkpoint["best"]
        console.print(f"Resuming {run.path} after epoch {checkpoint['epoch']} of {hparams['num_epochs']}")
    else:
        run.save_checkpoint("last.pt", _last(trainer, 0, history, best, spec, hparams))
    params = sum(p.numel() for p in model.parameters())
    console.print(f"{spec.name} · {params:,} params · {device} · {len(splits.train_y):,} train / {len(splits.val_y):,} val / "
                  f"{len(splits.test_y):,} test images · loss {hparams['loss']} · augment {hparams['augment']} · "
                  f"batch {hparams['batch_size']} · lr {hparams['lr']:g} · rs {hparams['rs']:g} · seed {hparams['seed']}")
    path = f"fast path, {trainer.precision}" if trainer.fast else "plain path, fp32"
    console.print(f"data: {data_how} (verified) · {path} · run folder: {run.path}")
    epochs = hparams["num_epochs"]
    epoch = len(history) + 1
    startup = round(time.monotonic() - STARTED, 2)
    console.print(f"start-up: {startup:.1f} s from process start to the first training step")
    try:
        for epoch in range(len(history) + 1, epochs + 1):
            started = time.perf_counter()
            with epoch_progress(console, epoch, epochs, trainer.steps_per_epoch()) as on_progress:
                train_loss, train_acc = trainer.train_epoch(epoch, on_progress)
            seconds = time.perf_counter() - started
            val = trainer.evaluate(splits.val_x, splits.val_y)
            history.append({"epoch": epoch, "train_loss": round(train_loss, 6), "train_acc": round(train_acc, 6),
                            "val_loss": round(val.loss, 6), "val_acc": round(val.accuracy, 6), "seconds": round(seconds, 3)})
            improved = val.accuracy > best["val_acc"]
            if improved:
                best = {"epoch": epoch, "val_acc": val.accuracy}
                run.save_checkpoint("best.pt", {"epoch": epoch, "model": model.state_dict(),
                                                "optimizer": trainer.optimizer.state_dict(), "spec": spec.document,
                                                "hparams": hparams, "val_acc": val.accuracy, "class_names": list(splits.class_names)})
            run.save_checkpoint("last.pt", _last(trainer, epoch, history, best, spec, hparams))
            run.write_metrics(history)
            plot_curves(history, run.path, spec.name)
            console.print(f"epoch {epoch:>2}/{epochs}  train loss {train_loss:.4f} acc {_percent(train_acc)}  "
                          f"val loss {val.loss:.4f} acc {_percent(val.accuracy)}  {seconds:.1f} s "
                          f"({len(splits.train_y) / seconds:,.0f} img/s){'  ★ best' if improved else ''}")
    except KeyboardInterrupt:
        raise RunInterrupted(f"interrupted in epoch {epoch}; {len(history)} finished epoch(s) are saved in {run.file('last.pt')}; "
                             f"resume with: fmnist run --resume {run.path}") from None
    except FmnistError as error:
        kept = f"best checkpoint (epoch {best['epoch']}, val {_percent(best['val_acc'])}) kept in {run.file('best.pt')}" \
            if best["epoch"] else "no epoch finished, so there is no best checkpoint"
        error.message = f"{error.message}; {kept}"
        raise
    return finish(run, trainer, spec, hparams, splits, history, best, console, startup)


def _last(trainer, epoch, history, best, spec, hparams) -> dict:
    return {"epoch": epoch, "trainer": trainer.state_dict(), "history": history, "best": best,
            "spec": spec.document, "hparams": hparams}


def finish(run, trainer, spec, hparams, splits, history, best, console, startup: float) -> dict:
    """Test the best validation epoch once and write summary.json."""
    trainer.model.load_state_dict(run.load_checkpoint("best.pt")["model"])
    report = test_report(trainer, splits)
    summary = {
        "name": spec.name,
        **report,
        "best_val_acc": round(best["val_acc"], 6),
        "best_epoch": best["epoch"],
        "epochs": history,
        "train_seconds": round(sum(e["seconds"] for e in history), 3),
        "startup_seconds": startup,
        "params": sum(p.numel() for p in trainer.model.parameters()),
        "hparams": hparams,
        "device": str(trainer.device),
    }
    run.write_json("summary.json", summary)
    console.print(f"test accuracy {_percent(report['test_acc'])} (best validation epoch {best['epoch']}: "
                  f"{_percent(best['val_acc'])}) · {run.file('summary.json')}")
    return summary
