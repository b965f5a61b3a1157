"""Every `fmnist` sub-command; cli.py adds each one to the group."""
from .compare_commands import compare
from .experiment_commands import grid, search
from .inspect_commands import data, evaluate, export_model, predict
from .run_commands import run
from .runs_commands import runs
from .spec_commands import draw, schema, summary, validate

COMMANDS = [summary, validate, schema, draw, run, runs, compare, evaluate, predict, export_model, data, grid, search]
