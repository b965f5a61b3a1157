"""`fmnist run`: train a spec (or the study's own train.py command line), or resume a run."""
from __future__ import annotations

from pathlib import Path

import click

from ..console import make_console
from ..errors import UsageError
from ..hparams import HPARAMS, LOSSES, STUDY_SIGMOID
from ..runner.options import RunOptions
from .declared import default_text, hparam_options, on_resume, run_options
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


def resolved_spec_yaml(spec, flags: dict, data: str | dict | None = None) -> str:
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
@run_options("run")
@click.option("--print-config", is_flag=True, help="Print the spec with every resolved setting as YAML (itself a valid "
              "spec) and stop.")
@override_option
def run(spec, model, resume_path, augment, augment_data, loss_type, options: RunOptions, print_config, overrides,
        **flags) -> int:
    """Train SPEC on its data (Fashion-MNIST unless --data or the spec's data: says otherwise), keep the best
    validation epoch, test it.

    Settings: flag > the spec's `train:` section > the study's recipe. Writes runs/<name>-<time>/.
    """
    from ..runner import distributed
    from ..runner.session import joined_world, quiet_console, resume, start
    from ..world import world_from_environment

    if options.nproc is not None and not world_from_environment().launched:  # the launcher: it trains nothing itself
        from ..invocation import words
        from ..runner.launch import launch

        return launch(words(), options)
    world = joined_world(options)  # one process: 0 of 1; a launched one joins its process group before any check
    console = make_console() if world.is_writer else quiet_console()
    with distributed.agreeing(world):  # a problem on any process is said once, and stops them all
        loaded = _checked(spec, model, resume_path, augment, augment_data, loss_type, options, overrides, flags)
    if resume_path:
        resume(resume_path, options.device, console, options.threads, options)
    elif print_config:
        if world.is_writer:
            click.echo(resolved_spec_yaml(loaded, flags, options.data), nl=False)
    else:
        start(loaded, flags, options, console)
    return 0


def _checked(spec, model, resume_path, augment, augment_data, loss_type, options: RunOptions, overrides,
             flags: dict):
    """The spec to train (None for --resume), every option checked against the others; `flags` gets the study's
    spellings resolved."""
    from ..builder.spec import load_spec

    chosen = [given for given in (spec, model, resume_path) if given]
    if len(chosen) != 1:
        raise UsageError("give one of: a spec file, --model NAME, or --resume RUN_FOLDER")
    if resume_path:
        changed = given_options(click.get_current_context(), allowed={"resume_path", *on_resume()})
        if changed:
            raise UsageError(f"--resume continues a run with the settings it started with; {', '.join(changed)} cannot "
                             f"change it (start a new run for other settings)")
        return None
    check_out_folder(options.out)
    if options.init_fresh_head and options.init is None:
        raise UsageError("--init-fresh-head goes with --init FILE")
    if augment is not None and augment_data is not None and augment != augment_data:
        raise UsageError("--augment and --augment_data disagree")
    flags["augment"] = augment if augment is not None else augment_data
    if loss_type is not None:
        if flags["loss"] is not None and flags["loss"] != STUDY_LOSSES[loss_type]:
            raise UsageError(f"--loss {flags['loss']} and --loss_type {loss_type} (= {STUDY_LOSSES[loss_type]}) disagree")
        flags["loss"] = STUDY_LOSSES[loss_type]
    return load_spec(spec or spec_for_model(model), overrides)
