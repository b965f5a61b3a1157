"""Where and on what a run trains (not hyper-parameters: those are TrainConfig), declared once.

Each RunOptions field carries its command-line option: flag, help, which commands take it, whether a grid cell's
child process gets it passed on, whether `--resume` accepts it. The click options (commands/declared.py), the
dataclass, `from_flags` and `to_argv` are all made from these declarations: a new option is one field here.
"""
from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Any

from ..hparams import PRECISIONS

SHARED = ("run", "grid", "search")  # the commands that train: each takes the options declared for it


@dataclass(frozen=True)
class Option:
    """How a RunOptions field is written on the command line."""

    help: str
    flag: str | None = None  # the click declaration: '--fast/--plain' for a switch pair; default --field-name
    type: Any = None  # int, float, or None for text
    choices: tuple[str, ...] | None = None
    commands: tuple[str, ...] = SHARED
    to_cells: bool = True  # a grid cell's `fmnist run` gets it passed on
    on_resume: bool = False  # `--resume RUN` accepts it (it changes where, not what, the run trains)
    is_flag: bool = False  # a flag that takes no value (on when given)
    show_default: bool = False
    metavar: str | None = None


def option(default: Any, help: str, **how: Any) -> Any:
    """A RunOptions field with its command-line option."""
    return dataclasses.field(default=default, metadata={"option": Option(help, **how)})


@dataclass(frozen=True)
class RunOptions:
    """Where and on what a run trains, and how fast: device, data, threads, logging, precision, folders, --init."""

    device: str = option("auto", "auto, cpu, cuda, cuda:N or mps.", show_default=True, on_resume=True)
    data: str | dict | None = option(
        None, "Dataset: fashion-mnist, mnist, kmnist, cifar10, cifar100, or a folder of images (one sub-folder per "
              "class) [the spec's data:, else fashion-mnist].")  # a run folder's recorded choice on resume (a mapping)
    data_dir: str | None = option(None, "Folder of the named datasets' files, in torchvision's layout (else "
                                        "$FMNIST_DATA, ./data; Fashion-MNIST also Debian's package).")
    train_limit: int | None = option(None, "Train on only the first N training images (quick looks).", type=int)
    val_limit: int | None = option(None, "Validate on only the first N validation images (quick looks; the test split "
                                         "stays whole).", type=int)
    fast: bool = option(True, "The measured speed levers, or the plain eager fp32 loop. [fast]", flag="--fast/--plain")
    threads: int | None = option(None, "CPU threads of this process (torch's intra-op threads) [all cores].", type=int,
                                 on_resume=True)
    log: str | None = option(None, "Also log to TensorBoard, in RUN/tensorboard (pip install 'fmnist[tensorboard]').",
                             choices=("tensorboard",))
    precision: str = option("auto", "auto = bf16 autocast where the device does bf16 natively (about 2x faster), else "
                                    "fp32.", choices=PRECISIONS, show_default=True)
    out: str = option("runs", "Parent folder of the run folder.", commands=("run",), to_cells=False, show_default=True)
    run_dir: str | None = option(None, "Exactly this run folder instead of OUT/<name>-<time>.", commands=("run",),
                                 to_cells=False)
    init: str | None = option(
        None, "Start from these weights: a .pt/.pth state dict (torchvision's, timm's) or an fmnist checkpoint, paired "
              "with the spec's tensors by structure and shape; torchvision:NAME fetches torchvision's published weights "
              "(needs the internet).", commands=("run",), to_cells=False, metavar="FILE|torchvision:NAME")
    init_fresh_head: bool = option(
        False, "With --init: leave the model's tensors that have no partner in the file (a head for another number of "
               "classes) as initialised, instead of refusing.", commands=("run",), to_cells=False, is_flag=True)
    dry_run: bool = option(False, "Print the resolved settings and stop.", commands=("run",), to_cells=False,
                           is_flag=True)
    nproc: int | None = option(None, "Train data-parallel in N processes on this machine, started by torch's elastic "
                                     "launcher (as torchrun --nproc-per-node N); the spec's batch is split among them.",
                               type=int, commands=("run",), to_cells=False, on_resume=True)
    nnodes: int = option(1, "With --nproc: machines in the run, each starting its own --nproc processes (they meet "
                            "at --rdzv-endpoint).", type=int, commands=("run",), to_cells=False, on_resume=True)
    rdzv_endpoint: str | None = option(None, "With --nproc: HOST:PORT where the machines meet (the first machine's "
                                             "address; a free local port on one machine).", commands=("run",),
                                       to_cells=False, on_resume=True, metavar="HOST:PORT")
    rdzv_timeout: int = option(120, "With --nproc: seconds to wait for every machine to join.", type=int,
                               commands=("run",), to_cells=False, on_resume=True, show_default=True)

    @classmethod
    def declared(cls, command: str | None = None) -> list[dataclasses.Field]:
        """The fields with a command-line option (those `command` takes, when given), in declaration order."""
        return [item for item in dataclasses.fields(cls)
                if "option" in item.metadata and (command is None or command in item.metadata["option"].commands)]

    @classmethod
    def from_flags(cls, flags: dict[str, Any], command: str = "run") -> "RunOptions":
        """The options `command` takes among its parsed flags, taken out of `flags` (what is left: its own)."""
        return cls(**{item.name: flags.pop(item.name) for item in cls.declared(command) if item.name in flags})

    def to_argv(self) -> list[str]:
        """These options as `fmnist run` flags for a grid cell's child process: those declared to_cells, where they
        differ from the default and can be written as a flag (a recorded data mapping cannot)."""
        argv: list[str] = []
        for item in self.declared("run"):
            how: Option = item.metadata["option"]
            value = getattr(self, item.name)
            if not how.to_cells or value == item.default or isinstance(value, dict):
                continue
            if how.flag and "/" in how.flag:
                on, off = how.flag.split("/")
                argv.append(on if value else off)
            elif how.is_flag:
                argv.append(flag_name(item))
            else:
                argv += [flag_name(item), str(value)]
        return argv

    def replace(self, **changes: Any) -> "RunOptions":
        return dataclasses.replace(self, **changes)


def flag_name(item: dataclasses.Field) -> str:
    """--train-limit for train_limit; a switch pair's first half for a switch."""
    how: Option = item.metadata["option"]
    return how.flag.split("/")[0] if how.flag else "--" + item.name.replace("_", "-")
