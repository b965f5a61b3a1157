"""`fmnist summary` and `fmnist validate`: look at specs without training anything."""
from __future__ import annotations

import json

import click

from ..builder.build import plan
from ..builder.summary import print_summary, summary_dict
from ..console import make_console
from ..errors import FmnistError


@click.command()
@click.argument("spec", type=click.Path(dir_okay=False))
@click.option("--json", "as_json", is_flag=True, help="Print one JSON object instead of the table.")
def summary(spec: str, as_json: bool) -> int:
    """Per-layer table of SPEC: output shapes, params, mult-adds, totals and `expect` checks.

    Exit 1 when an `expect` figure does not come out, 2 when the spec is invalid.
    """
    built = plan(spec)
    if as_json:
        data = summary_dict(built)
        click.echo(json.dumps(data, indent=2))
    else:
        print_summary(built, make_console())
    return 0 if all(check.ok for check in built.checks()) else 1


@click.command()
@click.argument("specs", nargs=-1, required=True, type=click.Path(dir_okay=False))
def validate(specs: tuple[str, ...]) -> int:
    """Check SPECS (schema, layers, shapes, `expect` figures): exit 0 if all good, else 2 with one line per problem."""
    problems = 0
    for spec in specs:
        try:
            built = plan(spec)
            failed = [check for check in built.checks() if not check.ok]
        except FmnistError as error:
            for problem in error.all():
                click.echo(f"{problem}", err=True)
                problems += 1
            continue
        for check in failed:
            click.echo(f"{spec}: expect {check.describe()}", err=True)
            problems += 1
        if not failed:
            click.echo(f"{spec}: ok ({built.spec.name}, {built.params['total']:,} params)")
    return 2 if problems else 0
