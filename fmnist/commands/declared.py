"""Click options made from declarations: the run options (RunOptions' fields) and the training settings (TrainConfig's
fields, as HPARAMS), so a new option or setting is one field, and a flag everywhere it belongs."""
from __future__ import annotations

import dataclasses
import functools

import click

from ..hparams import HPARAMS
from ..runner.options import Option, RunOptions, flag_name

STUDY_SPELLINGS = {"batch_size": "--batch_size", "num_epochs": "--num_epochs"}  # the study's train.py flags
PER_COMMAND = ("loss", "augment")  # each command words these its own way (run: --loss_type, grid: both/all)


def _click_option(item: dataclasses.Field):
    how: Option = item.metadata["option"]
    declaration = how.flag or flag_name(item)
    if how.is_flag:
        return click.option(declaration, item.name, is_flag=True, help=how.help)
    kind = click.Choice(how.choices) if how.choices else how.type
    return click.option(declaration, item.name, type=kind, default=item.default, show_default=how.show_default,
                        metavar=how.metavar, help=how.help)


def run_options(command: str, declaration: type[RunOptions] = RunOptions):
    """The run options `command` takes, as click options; the function receives them as one `options` argument, a
    RunOptions (its other parameters are left as they are)."""
    declared = declaration.declared(command)

    def decorate(function):
        @functools.wraps(function)
        def with_options(**flags):
            return function(options=declaration.from_flags(flags, command), **flags)

        for item in reversed(declared):
            with_options = _click_option(item)(with_options)
        return with_options
    return decorate


def loaded_plugins() -> tuple[str, ...]:
    """The plug-ins this invocation loaded (--plugin, $FMNIST_PLUGINS), as the group recorded them: a grid's cells,
    run as child processes, are given them as --plugin flags."""
    context = click.get_current_context(silent=True)
    recorded = context.find_root().obj if context is not None else None
    return tuple(recorded.get("plugins", ())) if isinstance(recorded, dict) else ()


def on_resume() -> set[str]:
    """The run options `--resume RUN` accepts (where the run continues, not what it trains)."""
    return {item.name for item in RunOptions.declared("run") if item.metadata["option"].on_resume}


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
    if setting.read is not None:  # written in words ('60m'): the setting reads it, and says what is wrong
        return click.option(*spellings, name, type=str, help=text)
    return click.option(*spellings, name, type=int if kind == "integer" else float, help=text)


def hparam_options(command):
    """The hyper-parameter flags (the study's train.py spellings too), shared by run, grid and search, made from
    HPARAMS: a setting added there is a flag everywhere."""
    for name in reversed([name for name in HPARAMS if name not in PER_COMMAND]):
        command = hparam_option(name)(command)
    return command
