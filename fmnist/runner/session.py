"""One training run from start to test: resolve settings, load data, train, keep the best epoch, test it, write it all down.

Also resumes a run from its folder: nothing finished is lost, and a resumed run continues exactly as an
uninterrupted one would have (same seed, same RNG states).
"""
from __future__ import annotations

import dataclasses
import os
import platform
import time
from datetime import datetime
from pathlib import Path

import torch
import yaml
from rich.console import Console

from .. import STARTED, __version__
from ..builder.spec import Spec
from ..datasets.loading import check_unchanged, load_data, split_sizes
from ..durations import minutes_text
from ..errors import (
    FmnistError,
    TrainingError,
    UsageError,
    one_line,
    raised_by_interrupt,
)
from ..hparams import TrainConfig
from ..invocation import typed_command
from ..world import World, world_from_environment
from . import distributed
from .callbacks import callbacks_for
from .catalog import ERROR_FILE, read_summary
from .checkpoint import Checkpoint
from .evaluation import test_report
from .fit import Callback, FitState, fit
from .initial_weights import InitialWeights, initial_weights
from .mixing import mixing_alphas
from .models import load_weights, make_model
from .options import RunOptions
from .plots import plot_curves
from .preflight import Prepared, cpu_threads, prepare
from .progress import epoch_progress
from .run_config import RunConfig, RunData
from .rundir import RunDir
from .trainer import Trainer

__all__ = ["RunInterrupted", "RunOptions", "make_model", "resume", "start"]


class RunInterrupted(FmnistError):
    """Ctrl-C: finished epochs are on disk; the message says how to resume."""

    exit_code = 130


def start(spec: Spec, flags: dict, options: RunOptions, console: Console, startup_from: float = STARTED) -> RunDir | None:
    """A new run of `spec`: settings are flags > spec `train:` > the study's defaults. Its start-up time is counted
    from `startup_from` (time.monotonic): the process's start, or a search's retrain's own.

    In a data-parallel run (torchrun, --nproc) every rank comes here; a problem on any of them stops all of them
    before anything is written, and only rank 0 writes the run folder and prints."""
    world = joined_world(options)
    console = console if world.is_writer else quiet_console()
    run = None
    with distributed.agreeing(world):
        check_batch(flags.get("batch_size") or spec.train.get("batch_size"), world)
        ready = prepare(spec, flags, options.replace(device=distributed.worker_device(world, options.device)),
                        find_data=not options.dry_run)
        check_batch(ready.hparams.batch_size, world)
        if options.dry_run:
            console.print(yaml.safe_dump({"spec": spec.file, "model": spec.name, "data": ready.data.choice.as_mapping(),
                                          "hparams": ready.hparams.as_dict(), "device": str(ready.device),
                                          "train_limit": options.train_limit, "val_limit": options.val_limit,
                                          "speed": ready.speed,
                                          "processes": world.size}, sort_keys=False).rstrip())
            return None
        weights = initial_weights(spec, options.init, options.init_fresh_head)  # a bad --init: one line, before any folder
        splits = load_data(ready.data, options.train_limit, options.val_limit)
        if world.is_writer:
            run = RunDir.create_at(options.run_dir) if options.run_dir else RunDir.create(options.out, spec.name)
    try:
        with cpu_threads(threads_per_rank(options.threads, world)):
            if run is not None:
                run.write_config(_config(ready, options, splits, world))
            _train(run, ready, splits, console, startup_from=startup_from, weights=weights, world=world)
    finally:
        if run is not None:
            run.unlock()
    return run


def joined_world(options: RunOptions) -> World:
    """This process's place in a data-parallel run (one process: 0 of 1), its process group joined."""
    world = world_from_environment()
    if world.launched and options.nproc is not None:
        raise UsageError("--nproc: this process was started by torch's launcher already (torchrun); leave --nproc out")
    distributed.start_group(world, options.device)
    return world


def check_batch(batch_size, world: World) -> None:
    """The spec's batch is the global batch: it must split evenly among the ranks."""
    if isinstance(batch_size, int) and world.size > 1 and batch_size % world.size:
        raise UsageError(f"--batch-size {batch_size}: the global batch does not split evenly among {world.size} "
                         f"processes; use a multiple of {world.size}")


def threads_per_rank(threads: int | None, world: World) -> int | None:
    """--threads wins; else a rank of a data-parallel run takes its share of this machine's cores (all of them, in
    one process: torch's default)."""
    if threads is not None or not world.distributed:
        return threads
    return max(1, (os.cpu_count() or 1) // world.local_size)


def quiet_console() -> Console:
    """The console of a rank other than 0: it prints nothing (its errors still reach stderr, one line each)."""
    return Console(quiet=True)


def _config(ready: Prepared, options: RunOptions, splits, world: World) -> RunConfig:
    """What config.yaml records of a new run: the one place it is written."""
    data = ready.data
    return RunConfig(
        spec=ready.spec.document, hparams=ready.hparams.as_dict(), spec_file=ready.spec.file,
        overrides=ready.spec.overrides,
        init={"weights": options.init, "fresh_head": options.init_fresh_head} if options.init else None,
        device=str(ready.device), speed=ready.speed, log=ready.log,
        data=RunData(dataset=data.label, choice=data.choice.as_mapping(), source=data.how, verified=True, check=data.check,
                     data_dir=options.data_dir, train_limit=options.train_limit, val_limit=options.val_limit,
                     **split_sizes(splits),
                     contents=data.scan.contents() if data.scan else None, input=list(data.shape),
                     light_on_black=data.light_on_black, normalization=splits.normalization),
        versions={"fmnist": __version__, "torch": str(torch.__version__), "python": platform.python_version()},
        machine={"platform": platform.platform(), "processor": platform.processor() or platform.machine(),
                 "threads": torch.get_num_threads()},
        command=typed_command(), created=datetime.now().isoformat(timespec="seconds"), world_size=world.size)


def resume(path: str | Path, device_name: str, console: Console, threads: int | None = None,
           options: RunOptions = RunOptions()) -> RunDir:
    """Continue a run from its last finished epoch; a run killed before its first save starts over in its folder.

    The run's own thread count and process count are used again where they can be (they change the arithmetic, so
    the resumed epochs would drift from an uninterrupted run's); others are obeyed, and the loss of exactness said."""
    world = joined_world(options)
    console = console if world.is_writer else quiet_console()
    with distributed.agreeing(world):
        run = RunDir.existing(path)
        if read_summary(run.path)[0] is not None:  # a damaged summary.json is written anew: the best epoch is tested again
            raise UsageError(f"this run has finished (summary.json is there); see 'fmnist eval {run.path}'", str(run.path))
        if world.is_writer:
            run.lock()
    recorded = run.config().threads
    if threads is not None and recorded is not None and threads != recorded:
        console.print(f"note: --threads {threads} differs from the run's own {recorded}: the resumed epochs will not "
                      f"match an uninterrupted run exactly")
    if run.config().world_size != world.size:
        console.print(f"note: {world.size} process(es), not the run's own {run.config().world_size}: the resumed epochs "
                      f"will not match an uninterrupted run exactly")
    try:
        chosen = threads or (recorded if world.size == run.config().world_size else None)
        with cpu_threads(threads_per_rank(chosen, world)):
            _resume_locked(run, distributed.worker_device(world, device_name), console, threads_per_rank(chosen, world),
                           world)
    finally:
        run.unlock()
    return run


def _resume_locked(run: RunDir, device_name: str, console: Console, threads: int | None, world: World) -> None:
    config, spec = run.config(), run.spec()
    options = RunOptions(device=device_name, data_dir=config.data.data_dir, data=config.data.choice,
                         train_limit=config.data.train_limit, val_limit=config.data.val_limit, threads=threads,
                         log=config.log,
                         **{key: value for key, value in config.speed.items() if key in ("fast", "precision")})
    with distributed.agreeing(world):
        ready = prepare(spec, config.hparams, options)  # an older fmnist's run folder gets today's defaults for new settings
        check_batch(ready.hparams.batch_size, world)
        checkpoint = run.load_checkpoint("last.pt") if run.file("last.pt").is_file() else None
        if checkpoint is not None and checkpoint.spec != config.spec:
            raise UsageError("last.pt belongs to another spec than config.yaml (copied from another run?)",
                             str(run.file("last.pt")))
        splits = load_data(ready.data, options.train_limit, options.val_limit)
        check_unchanged(config.data.as_mapping(), ready.data, splits, str(run.file("config.yaml")))
    if config.device and str(ready.device) != config.device:
        console.print(f"note: resuming on {ready.device}, not the run's own {config.device}: the resumed epochs will "
                      f"not match an uninterrupted run exactly")
    if checkpoint is None:
        console.print(f"{run.path}: no epoch was saved before it stopped; starting it over with its own settings")
    _train(run if world.is_writer else None, ready, splits, console, checkpoint, world=world, folder=run.path)


def _percent(value: float) -> str:
    return f"{100 * value:.2f}%"


def _train(run: RunDir | None, ready: Prepared, splits, console: Console, checkpoint: Checkpoint | None = None,
           startup_from: float = STARTED, weights: InitialWeights | None = None, world: World = World(),
           folder: Path | None = None) -> dict | None:
    """Train and test; `run` is the run folder where this process writes it (rank 0), None on the other ranks."""
    spec, hparams, device = ready.spec, ready.hparams, ready.device
    model = make_model(spec, hparams, splits.normalization)
    if weights is not None:  # before the trainer takes the weights (channels-last copies, EMA)
        console.print(weights.load_into(model[-1] if splits.normalization else model))
    model = model.to(device)
    splits = splits.to(device)
    trainer = Trainer(model, splits, hparams, device, **ready.speed, world=world)
    folder = run.path if run is not None else folder or Path(".")  # where last.pt and best.pt are (rank 0's folder)

    if run is not None:
        run.file(ERROR_FILE).unlink(missing_ok=True)  # a resumed run is no longer the failure it was
    # where to begin: a fresh run saves its epoch 0 at once, so a kill from here on can always be resumed
    if checkpoint is not None:
        load_weights(trainer, checkpoint.trainer, folder / "last.pt")
        state = FitState.from_checkpoint(checkpoint)
        console.print(f"Resuming {folder} after epoch {state.saved} of {_length_text(trainer)}")
    else:
        state = FitState()
        if run is not None:
            _last(trainer, state, spec, hparams).save(run.file("last.pt"))
    startup = round(time.monotonic() - startup_from, 2)
    if run is not None:
        report_start(console, run, ready, trainer, splits, startup, world)

    # the folder's files first: an epoch is on disk before a later callback may end the run
    writer = [RunFolder(run, trainer, spec, splits.class_names), EpochLine(console, len(splits.train_y), trainer)] \
        if run is not None else []
    callbacks = [*writer, *callbacks_for({**hparams.as_dict(), "log": ready.log if run is not None else None},
                                         run.file("tensorboard") if run is not None else None, trainer)]
    try:
        fit(trainer, splits, callbacks, state,
            progress=lambda epoch, epochs, steps: epoch_progress(console, epoch, epochs, steps))
    except KeyboardInterrupt:
        raise _interrupted(state, world, folder) from None
    except FmnistError as error:
        if run is not None:
            _record_failure(run, error)
        kept = f"best checkpoint (epoch {state.best['epoch']}, val {_percent(state.best['val_acc'])}) kept in " \
               f"{folder / 'best.pt'}" if state.best["epoch"] and (folder / "best.pt").is_file() \
            else "no epoch finished, so there is no best checkpoint"
        error.message = f"{error.message}; {kept}"
        error.quiet = not world.is_writer
        raise
    except Exception as error:
        if raised_by_interrupt(error):
            raise _interrupted(state, world, folder) from None
        if world.distributed and distributed.is_peer_lost(error):
            raise _peer_lost(error, state, world, folder) from None
        raise
    if run is None:  # the test of the best epoch, and its report, are rank 0's
        return None
    return finish(run, trainer, ready, splits, state, console, startup)


class RunFolder(Callback):
    """A run folder's share of each epoch: best.pt when it improved, last.pt (what a resume continues from),
    metrics.csv and the curves."""

    def __init__(self, run: RunDir, trainer: Trainer, spec: Spec, class_names):
        self.run, self.trainer, self.spec, self.class_names = run, trainer, spec, list(class_names)

    def on_epoch_end(self, state: FitState) -> None:
        epoch, hparams = state.history[-1]["epoch"], self.trainer.hparams
        if state.improved:
            Checkpoint(epoch, self.spec.document, hparams.as_dict(), model=self.trainer.eval_model.state_dict(),
                       optimizer=self.trainer.optimizer.state_dict(), val_acc=state.best["val_acc"],
                       class_names=self.class_names).save(self.run.file("best.pt"))
        _last(self.trainer, state, self.spec, hparams, epoch).save(self.run.file("last.pt"))
        state.saved = epoch
        self.run.write_metrics(state.history)
        plot_curves(state.history, self.run.path, self.spec.name)


class EpochLine(Callback):
    """One line per epoch on the console, and the reason when a callback ends the run early."""

    def __init__(self, console: Console, images: int, trainer: Trainer):
        self.console, self.images, self.trainer = console, images, trainer

    def on_epoch_end(self, state: FitState) -> None:
        clock = self.trainer.clock
        budget = f"  budget {minutes_text(clock.spent() / 60)}/{minutes_text(clock.seconds / 60)}" if clock is not None else ""
        report_epoch(self.console, state.history[-1], None if clock else self.trainer.hparams.num_epochs,
                     self.images * self.trainer.last_epoch_steps // self.trainer.steps_per_epoch(), state.improved,
                     budget)

    def on_train_end(self, state: FitState) -> None:
        if state.stopped:
            self.console.print(state.stopped)


def _saved_and_resume(state: FitState, world: World, folder: Path) -> str:
    """What a stopped run keeps and how to continue it, for the line that says it stopped."""
    return f"{state.saved} finished epoch(s) are saved in {folder / 'last.pt'}; resume with: {resume_command(folder, world)}"


def _interrupted(state: FitState, world: World, folder: Path) -> RunInterrupted:
    where = f"after epoch {state.saved}" if state.saved >= state.epoch else f"in epoch {state.epoch}"
    interrupted = RunInterrupted(f"interrupted {where}; {_saved_and_resume(state, world, folder)}")
    interrupted.quiet = not world.is_writer
    return interrupted


class PeerLost(TrainingError):
    """Another process of a data-parallel run went away (killed, its machine lost) or stopped answering."""


def _peer_lost(error: BaseException, state: FitState, world: World, folder: Path) -> PeerLost:
    lost = PeerLost(f"another process of the run stopped ({one_line(error, 100)}); "
                    f"{_saved_and_resume(state, world, folder)}")
    lost.quiet = not world.is_writer
    return lost


def resume_command(folder: Path, world: World) -> str:
    """How the user continues this run: with the same process count it was started with."""
    processes = f" --nproc {world.local_size}" if world.distributed and world.size == world.local_size else \
        " (under torchrun, as it was started)" if world.distributed else ""
    return f"fmnist run --resume {folder}{processes}"


def _record_failure(run: RunDir, error: FmnistError) -> None:
    """The error that ended a run, in one line beside it, so `fmnist runs` can tell failed from interrupted."""
    try:
        (run.file(ERROR_FILE)).write_text(" ".join(str(error.message).split()) + "\n")
    except OSError:  # a full or read-only disk may be why it failed: the message is still printed
        pass


def _last(trainer: Trainer, state: FitState, spec: Spec, hparams: TrainConfig, epoch: int = 0) -> Checkpoint:
    """last.pt after `epoch`: what a resume continues from."""
    return Checkpoint(epoch, spec.document, hparams.as_dict(), trainer=trainer.state_dict(), history=state.history[:epoch],
                      best=state.best)


def finish(run: RunDir, trainer: Trainer, ready: Prepared, splits, state: FitState, console: Console, startup: float) -> dict:
    """Test the best validation epoch once and write summary.json."""
    load_weights(trainer.model, run.load_checkpoint("best.pt").model, run.file("best.pt"))
    report = test_report(trainer.model, splits, trainer.eval_settings)
    summary = {
        "name": ready.spec.name,
        **report,
        "best_val_acc": round(state.best["val_acc"], 6),
        "best_epoch": state.best["epoch"],
        "epochs": state.history,
        "stopped": state.stopped or _completed(ready.hparams.num_epochs),
        **({"budget": trainer.budget_use(len(state.history)).as_dict()} if trainer.clock is not None else {}),
        "train_seconds": round(sum(e["seconds"] for e in state.history), 3),
        "startup_seconds": startup,
        "params": sum(p.numel() for p in trainer.model.parameters()),
        "hparams": ready.hparams.as_dict(),
        "device": str(trainer.device),
    }
    if "budget" in summary:  # what the budget bought, beside what the run was started with
        run.write_config(dataclasses.replace(run.config(), budget=summary["budget"]))
    run.write_json("summary.json", summary)
    console.print(f"test accuracy {_percent(report['test_acc'])} (best validation epoch {state.best['epoch']}: "
                  f"{_percent(state.best['val_acc'])}) · {run.file('summary.json')}")
    return summary


def _completed(epochs: int) -> str:
    return f"completed all {epochs} epochs" if epochs > 1 else "completed its one epoch"


def report_start(console: Console, run: RunDir, ready: Prepared, trainer: Trainer, splits, startup: float,
                 world: World = World()) -> None:
    h = ready.hparams
    params = sum(p.numel() for p in trainer.model.parameters())
    processes = f" · {world.size} processes ({'gloo' if ready.device.type != 'cuda' else 'NCCL'})" if world.distributed else ""
    console.print(f"{ready.spec.name} · {params:,} params · {ready.device}{processes} · {len(splits.train_y):,} train / "
                  f"{len(splits.val_y):,} val / {len(splits.test_y):,} test images · loss {h.loss} · "
                  f"augment {_augment_text(h)} · batch {h.batch_size} · lr {h.lr:g} · rs {h.rs:g} · seed {h.seed}"
                  f"{f' · budget {minutes_text(h.budget)}' if h.budget is not None else ''}")
    path = f"fast path, {trainer.precision}" if trainer.fast else "plain path, fp32"
    console.print(f"data: {ready.data.how} (verified) · {path} · run folder: {run.path}")
    for note in ready.data.notes:
        console.print(f"data: {note}")
    console.print(f"start-up: {startup:.1f} s to the first training step")


def _augment_text(hparams) -> str:
    """The augmentation a run trains with, in words: crop and flip, erasing, mixing."""
    parts = [f"crop ±{hparams.crop_pad}" + (" + flip" if hparams.flip else "")] if hparams.augment else []
    parts += [f"erase {hparams.erase:g}"] if hparams.erase else []
    parts += [f"{name} {alpha:g}" for name, alpha in mixing_alphas(hparams).items()]
    return " + ".join(parts) or "off"


def _length_text(trainer: Trainer) -> str:
    """'10' epochs, or 'a budget of 60 min'."""
    budget = trainer.hparams.budget
    return f"a budget of {minutes_text(budget)}" if budget is not None else str(trainer.hparams.num_epochs)


def report_epoch(console: Console, row: dict, epochs: int | None, images: int, improved: bool, budget: str = "") -> None:
    count = f"{row['epoch']:>2}/{epochs}" if epochs is not None else f"{row['epoch']:>2}"
    console.print(f"epoch {count}  train loss {row['train_loss']:.4f} acc {_percent(row['train_acc'])}  "
                  f"val loss {row['val_loss']:.4f} acc {_percent(row['val_acc'])}  {row['seconds']:.1f} s "
                  f"({images / row['seconds']:,.0f} img/s){budget}{'  ★ best' if improved else ''}")
