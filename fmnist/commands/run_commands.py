"""`fmnist run`: train a spec (or the study's own train.py command line), or resume a run."""
from __future__ import annotations

from pathlib import Path

import click

from ..console import make_console
from ..errors import UsageError
from ..hparams import HPARAMS, LOSSES, PRECISIONS, STUDY_SIGMOID
from .spec_commands import override_option

STUDY_LOSSES = {"softmax": "softmax", "sigmoid": STUDY_SIGMOID}  # train.py --loss_type VALUE -> our loss



def spec_for_model(name: str) -> Path:
    """--model CNN_1 -> the packaged specs/cnn_1.yaml."""
    from ..builder.spec import PACKAGED_SPECS

    path = PACKAGED_SPECS / f"{name.lower()}.yaml"
    if not path.is_file():
        known = ", ".join(sorted(p.stem.upper() for p in PACKAGED_SPECS.glob("*.yaml")))
        raise UsageError(f"--model {name}: no such model; known: {known} (or give a spec file)")
    return path


def given_options(context: click.Context, allowed: set[str]) -> list[str]:
    """The options typed on the command line (not defaults), as the user wrote them, other than `allowed`."""
    from click.core import ParameterSource

    return [param.opts[0] for param in context.command.params
            if param.name not in allowed and context.get_parameter_source(param.name) == ParameterSource.COMMANDLINE]


def resolved_spec_yaml(spec, flags: dict, data: str | None = None) -> str:
    """The spec as it will train, every setting written out in `train:`: a spec `fmnist validate` accepts again."""
    import yaml

    from ..datasets.choice import choose_data
    from ..datasets.named import data_defaults
    from ..hparams import resolve

    document = dict(spec.document)
    choice = choose_data(spec.data, data, spec.file)
    if data is not None or spec.data is not None:
        document["data"] = choice.as_mapping()
    document["train"] = {name: value for name, value in resolve(spec.train, flags, data_defaults(choice)).as_dict().items()
                         if value is not None}
    return yaml.safe_dump(document, sort_keys=False, allow_unicode=True)


def check_out_folder(out: str | Path) -> None:
    """--out must be a folder (or not exist yet): a file there is refused before anything runs."""
    path = Path(out)
    if path.exists() and not path.is_dir():
        raise UsageError(f"--out {out}: is a file, not a folder")


STUDY_SPELLINGS = {"batch_size": "--batch_size", "num_epochs": "--num_epochs"}  # the study's train.py flags
PER_COMMAND = ("loss", "augment")  # each command words these its own way (run: --loss_type, grid: both/all)


def default_text(name: str) -> str:
    """' [128]': a setting's default as its help shows it, from HPARAMS (never typed a second time)."""
    default = HPARAMS[name].default
    if default is None:
        return " [off]"
    if isinstance(default, bool):
        return f" [{name.replace('_', '-') if default else 'off'}]"
    return f" [{default:g}]" if isinstance(default, float) else f" [{default}]"


def hparam_option(name: str):
    """One setting's click option, made from its HPARAMS entry: its type, choices, help and default shown."""
    setting = HPARAMS[name]
    flag = "--" + name.replace("_", "-")
    spellings = [flag, *([STUDY_SPELLINGS[name]] if name in STUDY_SPELLINGS else [])]
    text = setting.help + default_text(name)
    kind = setting.schema.get("type")
    if "enum" in setting.schema:
        return click.option(*spellings, name, type=click.Choice(setting.schema["enum"]), help=text)
    if kind == "boolean":
        return click.option(f"{flag}/--no-{flag[2:]}", name, default=None, help=text)
    return click.option(*spellings, name, type=int if kind == "integer" else float, help=text)


def hparam_options(command):
    """The hyper-parameter flags (the study's train.py spellings too), shared by run, grid and search, made from
    HPARAMS: a setting added there is a flag everywhere."""
    for name in reversed([name for name in HPARAMS if name not in PER_COMMAND]):
        command = hparam_option(name)(command)
    return command


def where_options(command):
    """Device, data and speed flags, shared by run, grid and search."""
    for option in reversed((
        click.option("--device", default="auto", show_default=True, help="auto, cpu, cuda, cuda:N or mps."),
        click.option("--data", help="Dataset: fashion-mnist, mnist, kmnist, cifar10, cifar100, or a folder of images "
                     "(one sub-folder per class) [the spec's data:, else fashion-mnist]."),
        click.option("--data-dir", help="Folder of the named datasets' files, in torchvision's layout (else $FMNIST_DATA, "
                     "./data; Fashion-MNIST also Debian's package)."),
        click.option("--train-limit", type=int, help="Train on only the first N training images (quick looks)."),
        click.option("--fast/--plain", default=True, help="The measured speed levers, or the plain eager fp32 loop. [fast]"),
        click.option("--threads", type=int, help="CPU threads of this process (torch's intra-op threads) [all cores]."),
        click.option("--log", type=click.Choice(["tensorboard"]), help="Also log to TensorBoard, in RUN/tensorboard "
                     "(pip install 'fmnist[tensorboard]')."),
        click.option("--precision", type=click.Choice(PRECISIONS), default="auto", show_default=True,
                     help="auto = bf16 autocast where the device does bf16 natively (about 2x faster), else fp32."),
    )):
        command = option(command)
    return command


@click.command()
@click.argument("spec", required=False, type=click.Path(dir_okay=False))
@click.option("--model", help="One of the study's models (CNN_1 ... CNN_5) instead of a spec file.")
@click.option("--resume", "resume_path", type=click.Path(file_okay=False), help="Continue an interrupted run from its folder.")
@hparam_options
@click.option("--loss", type=click.Choice(LOSSES), help=HPARAMS["loss"].help + default_text("loss"))
@click.option("--loss_type", type=click.Choice(list(STUDY_LOSSES)),
              help=f"The study's spelling, meaning the study's loss: softmax, or sigmoid = {STUDY_SIGMOID}.")
@click.option("--augment/--no-augment", default=None, help=HPARAMS["augment"].help + default_text("augment"))
@click.option("--augment_data", type=click.BOOL, default=None, help="The study's spelling: --augment_data True|False.")
@where_options
@click.option("--out", default="runs", show_default=True, help="Parent folder of the run folder.")
@click.option("--run-dir", type=click.Path(file_okay=False), help="Exactly this run folder instead of OUT/<name>-<time>.")
@click.option("--init", metavar="FILE|torchvision:NAME",
              help="Start from these weights: a .pt/.pth state dict (torchvision's, timm's) or an fmnist checkpoint, "
                   "paired with the spec's tensors by structure and shape; torchvision:NAME fetches torchvision's "
                   "published weights (needs the internet).")
@click.option("--init-fresh-head", is_flag=True,
              help="With --init: leave the model's tensors that have no partner in the file (a head for another "
                   "number of classes) as initialised, instead of refusing.")
@click.option("--dry-run", is_flag=True, help="Print the resolved settings and stop.")
@click.option("--print-config", is_flag=True, help="Print the spec with every resolved setting as YAML (itself a valid "
              "spec) and stop.")
@override_option
def run(spec, model, resume_path, augment, augment_data, loss_type, device, out, data, data_dir, train_limit, fast, precision, threads,
        log, run_dir, init, init_fresh_head, dry_run, print_config, overrides, **flags) -> int:
    """Train SPEC on its data (Fashion-MNIST unless --data or the spec's data: says otherwise), keep the best
    validation epoch, test it.

    Settings: flag > the spec's `train:` section > the study's recipe. Writes runs/<name>-<time>/.
    """
    from ..builder.spec import load_spec
    from ..runner.session import RunOptions, resume, start

    console = make_console()
    chosen = [given for given in (spec, model, resume_path) if given]
    if len(chosen) != 1:
        raise UsageError("give one of: a spec file, --model NAME, or --resume RUN_FOLDER")
    if resume_path:
        changed = given_options(click.get_current_context(), allowed={"resume_path", "device", "threads"})
        if changed:
            raise UsageError(f"--resume continues a run with the settings it started with; {', '.join(changed)} cannot "
                             f"change it (start a new run for other settings)")
        resume(resume_path, device, console, threads)
        return 0
    check_out_folder(out)
    if init_fresh_head and init is None:
        raise UsageError("--init-fresh-head goes with --init FILE")
    if augment is not None and augment_data is not None and augment != augment_data:
        raise UsageError("--augment and --augment_data disagree")
    flags["augment"] = augment if augment is not None else augment_data
    if loss_type is not None:
        if flags["loss"] is not None and flags["loss"] != STUDY_LOSSES[loss_type]:
            raise UsageError(f"--loss {flags['loss']} and --loss_type {loss_type} (= {STUDY_LOSSES[loss_type]}) disagree")
        flags["loss"] = STUDY_LOSSES[loss_type]
    loaded = load_spec(spec or spec_for_model(model), overrides)
    if print_config:
        click.echo(resolved_spec_yaml(loaded, flags, data), nl=False)
        return 0
    options = RunOptions(device=device, out=out, data=data, data_dir=data_dir, train_limit=train_limit, dry_run=dry_run, fast=fast,
                         precision=precision, run_dir=run_dir, threads=threads, log=log, init=init,
                         init_fresh_head=init_fresh_head)
    start(loaded, flags, options, console)
    return 0
