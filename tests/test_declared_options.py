"""The run options and the training settings are each one table: a field there is a flag on every command it names,
a grid cell's argument, a `train:` key, and a row of the docs; nothing else is edited to add one."""
from __future__ import annotations

import dataclasses

import click
import pytest

from fmnist.commands import grid, run, search
from fmnist.commands.declared import PER_COMMAND, run_options
from fmnist.hparams import HPARAMS, TRAIN_SCHEMA, TrainConfig
from fmnist.runner.options import RunOptions, option

COMMANDS = {"run": run, "grid": grid, "search": search}


def flags_of(command: click.Command) -> set[str]:
    return {param.name for param in command.params}


def test_every_run_option_is_a_flag_on_the_commands_it_names_and_no_other():
    for name, command in COMMANDS.items():
        declared = {item.name for item in RunOptions.declared(name)}
        every = {item.name for item in RunOptions.declared()}
        assert declared <= flags_of(command), name
        own = {"out"}  # grid and search have an --out of their own: the grid's folder, the study's
        assert not (every - declared - own) & flags_of(command), name  # run-only options are not grid's or search's


def test_a_cells_options_survive_the_trip_through_its_command_line():
    """What a grid passes its cells (to_argv) is read back by `fmnist run` as the same options (from_flags)."""
    given = RunOptions(device="cpu", data="mnist", data_dir="/data", train_limit=300, fast=False, threads=3,
                       log="tensorboard", precision="fp32")
    argv = given.to_argv()
    context = run.make_context("run", ["spec.yaml", *argv])
    read = RunOptions.from_flags(dict(context.params))
    passed = [item.name for item in RunOptions.declared("run") if item.metadata["option"].to_cells]
    assert {name: getattr(read, name) for name in passed} == {name: getattr(given, name) for name in passed}
    assert "--out" not in argv and "--init" not in argv  # the grid gives each cell its own folder, no weights


def test_a_new_run_option_is_one_field():
    """Declared once, it is a flag on the commands it names, reaches the command as options.<name>, and goes to a
    grid's cells; nothing else changes."""
    extended = dataclasses.make_dataclass(
        "Extended", [("cache_dir", "str | None", option(None, "Where decoded data is kept.", commands=("run", "grid")))],
        bases=(RunOptions,), frozen=True)
    seen = {}

    @click.command()
    @run_options("grid", extended)
    def command(options):
        seen["options"] = options

    command.main(["--cache-dir", "/fast", "--threads", "2"], standalone_mode=False)
    assert seen["options"].cache_dir == "/fast" and seen["options"].threads == 2
    assert seen["options"].to_argv() == ["--threads", "2", "--cache-dir", "/fast"]


def test_every_training_setting_is_a_flag_a_train_key_and_a_documented_row():
    """TrainConfig is the table: HPARAMS, the spec's train: schema, the flags and the docs' reference are made from it."""
    import sys

    from tests.conftest import ROOT

    sys.path.insert(0, str(ROOT / "scripts"))
    from reference_tables import train_settings

    names = [item.name for item in dataclasses.fields(TrainConfig)]
    assert list(HPARAMS) == names and list(TRAIN_SCHEMA["properties"]) == names
    for command in COMMANDS.values():
        assert set(names) - set(PER_COMMAND) <= flags_of(command)
    documented = train_settings()
    assert all(f"`{name}`" in documented for name in names)


@pytest.mark.parametrize("name", [item.name for item in dataclasses.fields(TrainConfig)])
def test_each_training_setting_declares_its_rule_and_help(name):
    item = next(item for item in dataclasses.fields(TrainConfig) if item.name == name)
    assert item.metadata["schema"] and item.metadata["help"] and item.default == HPARAMS[name].default
