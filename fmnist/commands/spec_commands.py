"""`fmnist summary` and `fmnist validate`: look at specs without training anything."""
from __future__ import annotations

import json
from pathlib import Path

import click

from ..console import make_console
from ..errors import FmnistError, UsageError

STDIN = "-"  # a spec read from standard input (builder.spec reads it)


def override_option(command):
    """--set KEY=VALUE, shared by summary, draw, run, grid and search."""
    return click.option("--set", "overrides", multiple=True, metavar="KEY=VALUE",
                        help="Change the spec: a dotted key (train.lr=0.001, input=[1,28,28], layers.3='conv 3x3x64'); "
                             "repeatable, checked like the file, recorded in config.yaml.")(command)


@click.command()
@click.argument("spec")
@click.option("--json", "as_json", is_flag=True, help="Print one JSON object instead of the table.")
@override_option
def summary(spec: str, as_json: bool, overrides: tuple[str, ...]) -> int:
    """Per-layer table of SPEC (a file, or - for standard input): output shapes, params, mult-adds, totals, `expect` checks.

    Exit 1 when an `expect` figure does not come out, 2 when the spec is invalid (as validate).
    """
    from ..builder.build import plan
    from ..builder.spec import load_spec
    from ..builder.summary import print_summary, summary_dict

    built = plan(load_spec(spec, overrides))
    if as_json:
        data = summary_dict(built)
        click.echo(json.dumps(data, indent=2))
    else:
        print_summary(built, make_console())
    return 0 if all(check.ok for check in built.checks()) else EXIT_EXPECT


EXIT_EXPECT = 1  # the spec builds, but an `expect` figure does not come out (summary and validate alike)
EXIT_INVALID = 2  # the spec is not valid


def spec_paths(given: tuple[str, ...]) -> list[str]:
    """The spec files named, with a folder standing for the *.yaml / *.yml files in it and '-' for standard input."""
    paths = []
    for entry in given:
        if entry != STDIN and Path(entry).is_dir():
            found = sorted(str(p) for p in Path(entry).iterdir() if p.suffix in (".yaml", ".yml") and p.is_file())
            if not found:
                raise UsageError("no spec files (*.yaml, *.yml) in this folder", entry)
            paths += found
        else:
            paths.append(entry)
    return paths


@click.command()
@click.argument("specs", nargs=-1, required=True)
@click.option("--json", "as_json", is_flag=True, help="Print one JSON list, an object per spec, instead of lines.")
@click.option("--no-expect", is_flag=True,
              help="Check syntax and shapes only, never the `expect` figures: no torch, well under a second "
                   "(for an editor or a pre-commit hook).")
def validate(specs: tuple[str, ...], as_json: bool, no_expect: bool) -> int:
    """Check SPECS (files, folders of *.yaml, or - for standard input): schema, layers, shapes, `expect` figures.

    Syntax and shapes are checked without torch; a spec with `expect` figures is counted with it (a few seconds).
    Exit 0 if all are good, 2 if any is invalid, else 1 if an `expect` figure does not come out; one line per problem.
    """
    from ..builder.build import SHAPES, plan

    reports: list[dict] = []
    for spec in spec_paths(specs):
        try:
            built = plan(spec, SHAPES)
            counted = bool(built.spec.expect) and not no_expect
            if counted:
                built = plan(built.spec)
        except FmnistError as error:
            reports.append({"file": spec, "ok": False, "valid": False,
                            "problems": [" ".join(str(problem).split()) for problem in error.all()]})
            continue
        failed = [check.describe() for check in built.checks() if not check.ok] if counted else []
        reports.append({"file": built.spec.file, "ok": not failed, "valid": True, "name": built.spec.name,
                        "output": list(built.records[-1].output_shape),
                        "layers": sum(not record.block for record in built.records),
                        "params": built.params["total"] if counted else None, "macs": built.macs if counted else None,
                        "problems": [f"{built.spec.file}: expect {text}" for text in failed]})
    if as_json:
        click.echo(json.dumps(reports, indent=2))
    else:
        for report in reports:
            for problem in report["problems"]:
                click.echo(problem, err=True)
            if report["ok"]:
                figures = f", {report['params']:,} params as expected" if report["params"] is not None else ""
                click.echo(f"{report['file']}: ok ({report['name']}, {report['layers']} layers{figures})")
    if any(not report["valid"] for report in reports):
        return EXIT_INVALID
    return EXIT_EXPECT if any(not report["ok"] for report in reports) else 0


@click.command()
def schema() -> int:
    """Print the JSON Schema of a spec file, for editors with a YAML language server (completion and checks as you
    type): save it as fmnist-spec.schema.json and start a spec with '# yaml-language-server: $schema=fmnist-spec.schema.json'."""
    from ..builder.spec import json_schema

    click.echo(json.dumps(json_schema(), indent=2))
    return 0


@click.command()
@click.argument("spec")
@click.option("--out", type=click.Path(dir_okay=False, path_type=Path), default=None,
              help="Where to write the picture; its suffix picks the format: .svg (default: NAME.svg here), .png, "
                   ".pdf, or .dot for the graph text.")
@click.option("--expand", is_flag=True, help="Draw every repetition of a repeated block (default: each once, "
                                             "framed with its count).")
@override_option
def draw(spec: str, out: Path | None, expand: bool, overrides: tuple[str, ...]) -> int:
    """Draw SPEC's architecture (a file, a packaged name, or - for standard input): layers as boxes with their output
    shapes and parameters, blocks framed with their totals, a repeated block once with its count, residual and
    parallel branches as branches. Needs Graphviz's dot, except for .dot."""
    from ..builder.drawing import draw as render
    from ..builder.spec import load_spec
    from ..runner.outputs import check_output

    loaded = load_spec(spec, overrides)
    check_output(out or Path(f"{loaded.name}.svg"), "--out")
    written = render(loaded, out or Path(f"{loaded.name}.svg"), expand)
    click.echo(f"wrote {written}")
    return 0
