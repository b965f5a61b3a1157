"""The `fmnist` command: a click group; turns user errors into one line on stderr and an exit code."""
from __future__ import annotations

import sys

import click

from .commands import COMMANDS
from .errors import FmnistError

EXIT_INTERRUPTED = 130


@click.group(context_settings={"help_option_names": ["-h", "--help"], "max_content_width": 100})
@click.version_option(package_name="fmnist")
def cli() -> None:
    """Write a CNN as a YAML list of layers; build, summarise, train and test it on Fashion-MNIST."""


for command in COMMANDS:
    cli.add_command(command)


def main(argv: list[str] | None = None) -> int:
    """Entry point of the console script; returns the exit code."""
    try:
        result = cli.main(args=argv, prog_name="fmnist", standalone_mode=False)
        return result if isinstance(result, int) else 0
    except click.UsageError as error:  # click's own usage text is four lines; users get one
        if type(error).__name__ == "NoArgsIsHelpError":  # bare `fmnist` (click >= 8.2): the help, not an error
            click.echo(error.ctx.get_help())
            return 0
        command = error.ctx.command_path if error.ctx else "fmnist"
        click.echo(f"fmnist: error: {error.format_message()} (see '{command} --help')", err=True)
        return error.exit_code
    except click.ClickException as error:
        click.echo(f"fmnist: error: {error.format_message()}", err=True)
        return error.exit_code
    except click.exceptions.Abort:
        click.echo("fmnist: interrupted", err=True)
        return EXIT_INTERRUPTED
    except FmnistError as error:
        for problem in error.all():
            click.echo(f"fmnist: error: {problem}", err=True)
        return error.exit_code
    except KeyboardInterrupt:
        click.echo("fmnist: interrupted", err=True)
        return EXIT_INTERRUPTED


if __name__ == "__main__":
    sys.exit(main())
