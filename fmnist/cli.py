"""The `fmnist` command: a click group; turns every problem into one line on stderr and an exit code.

The sub-commands (and torch behind them) are imported inside main()'s guard, so even a Ctrl-C during
start-up is one line, and no input a user can give ends in a traceback.
"""
from __future__ import annotations

import os
import signal
import sys

from . import interrupts, invocation

EXIT_INTERRUPTED = 130
EXIT_INTERNAL = 3
SHOW_TRACEBACK = "FMNIST_TRACEBACK"  # set to 1 to see the traceback of an internal error


def make_cli():
    """The click group with every sub-command added."""
    import click

    from .commands import COMMANDS

    @click.group(context_settings={"help_option_names": ["-h", "--help"], "max_content_width": 100})
    @click.version_option(package_name="fmnist")
    @click.option("--plugin", "plugins", multiple=True, metavar="FILE.py|MODULE",
                  help="Load layer kinds registered with @register from a file or module (repeatable; also "
                       "$FMNIST_PLUGINS and installed packages' 'fmnist.layers' entry points).")
    @click.pass_context
    def cli(context: click.Context, plugins: tuple[str, ...]) -> None:
        """Write a CNN as a YAML list of layers; build, summarise, train and test it on Fashion-MNIST."""
        from .plugins import load_all

        context.obj = {"plugins": load_all(plugins)}  # a grid passes them on to its cells' processes as --plugin

    for command in COMMANDS:
        cli.add_command(command)
    return cli


def _say(text: str) -> None:
    print(f"fmnist: {' '.join(str(text).split())}", file=sys.stderr)  # one line, whatever the message holds


def _say_interrupted() -> None:
    """'interrupted', from one process: rank 0 of a data-parallel run says it for all of them."""
    from .world import world_from_environment

    if world_from_environment().is_writer:
        _say("interrupted")


QUICK_ONLY = {"--help", "-h", "--version"}  # these need no torch: start-up stays well under a second
NO_TORCH_UP_FRONT = {"validate", "schema", "draw"}  # they check specs without torch, importing it only if they must count


def _command_name(argv: list[str]) -> str | None:
    """The sub-command in argv, past the group's options (--plugin takes a value)."""
    words = iter(argv)
    for word in words:
        if word == "--plugin":
            next(words, None)
        elif not word.startswith("-"):
            return word
    return None


def _quiet_torch_internals(argv: list[str]) -> None:
    """A data-parallel run's processes (and its launcher) lose connections on purpose when one stops: torch's C++ side
    would print each lost connection with a stack trace. Only its errors are kept; read as torch is imported."""
    from .world import world_from_environment

    if world_from_environment().launched or "--nproc" in argv or any(word.startswith("--nproc=") for word in argv):
        os.environ.setdefault("TORCH_CPP_LOG_LEVEL", "ERROR")


def _import_commands(argv: list[str]):
    """The group, and torch unless only help or the version is asked for, with Ctrl-C held back while they load:
    a KeyboardInterrupt inside torch's native start-up aborts the process (SIGABRT), and one inside a library's
    import can be swallowed by it. None when Ctrl-C came meanwhile."""
    def load():
        _quiet_torch_internals(argv)
        group = make_cli()
        if argv and not QUICK_ONLY & set(argv) and _command_name(argv) not in NO_TORCH_UP_FRONT:
            import torch  # noqa: F401  (loaded here, while signals wait)
        return group

    pressed = []
    try:
        previous = {number: signal.signal(number, lambda *_: pressed.append(True)) for number in interrupts.STOPPING}
    except ValueError:  # not the main thread: signals cannot be held back here
        return load()
    try:
        group = load()
    finally:
        for number, handler in previous.items():
            signal.signal(number, handler)
    return None if pressed else group


EXIT_BROKEN_PIPE = 128 + 13  # what a shell reports for a tool that stopped because its reader went away (SIGPIPE)


def main(argv: list[str] | None = None) -> int:
    """Entry point of the console script; returns the exit code. Ctrl-C, `kill PID` (a scheduler, docker stop) and a
    closed terminal stop as cleanly as each other: the epoch under way is saved."""
    previous = interrupts.install()
    try:
        code = _main(argv)
        if code == 0 and interrupts.received():  # a signal Python swallowed where it landed: still an interruption
            _say_interrupted()
            code = EXIT_INTERRUPTED
    finally:
        if argv is None:  # the console script: a signal from here to the process's end cannot undo finished work
            interrupts.ignore_from_now()
        else:  # called in-process (tests, the Python API): leave the caller's handlers as they were
            interrupts.restore(previous)
    if argv is None:
        _exit_now(code)
    return code


def _exit_now(code: int) -> None:
    """End the console script with `code` once its output is flushed, skipping the interpreter's finalisation: every
    file fmnist writes is complete and closed by now, and a C library's thread torn down during finalisation (seen
    after a SIGTERM mid-training) can abort the process (SIGABRT), turning a finished exit 130 into -6."""
    for stream in (sys.stdout, sys.stderr):
        try:
            stream.flush()
        except (OSError, ValueError):  # a closed pipe: nothing more can be said anyway
            pass
    os._exit(code)


TORCH_FREE = {"validate": "; 'validate --no-expect' checks syntax and shapes without it",
              "draw": ""}  # what still works without PyTorch, said where a command needs it


def _missing_torch(error: ImportError) -> bool:
    """PyTorch (or torchvision) cannot be imported: not installed, or broken."""
    return (error.name or "").split(".")[0] in ("torch", "torchvision")


def _needs_torch(words: list[str], error: ImportError) -> str:
    """One line: which command needs PyTorch, why it cannot be imported, how to get it."""
    command = _command_name(words) or "this command"
    return (f"'fmnist {command}' needs PyTorch, which cannot be imported here ({type(error).__name__}: "
            f"{' '.join(str(error).split())[:100]}): pip install torch torchvision{TORCH_FREE.get(command, '')}")


def _readable_anywhere() -> None:
    """A terminal or pipe that cannot show a character (PYTHONIOENCODING=ascii, LANG=C) gets '?' for it, not a crash."""
    for stream in (sys.stdout, sys.stderr):
        try:
            getattr(stream, "reconfigure")(errors="replace")
        except (AttributeError, ValueError):  # not a text stream of the usual kind (a test's capture)
            pass


def _where_am_i() -> str | None:
    """Why the current folder cannot be used (it was deleted under a shell still in it), or None."""
    try:
        os.getcwd()
    except OSError as error:
        return f"the current folder is gone ({error.strerror}); cd to a folder that exists and run it again"
    return None


def _quiet_broken_pipe() -> int:
    """The reader of stdout went away (`fmnist runs | head -1`): stop quietly, as Unix tools do."""
    try:
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())  # Python's own flush at exit would fail again
    except (OSError, ValueError):
        pass
    return EXIT_BROKEN_PIPE


def _main(argv: list[str] | None) -> int:
    _readable_anywhere()
    words = list(sys.argv[1:] if argv is None else argv)
    invocation.remember(words)
    if not QUICK_ONLY & set(words) and (problem := _where_am_i()):
        _say(f"error: {problem}")
        return 2
    try:
        group = _import_commands(words)
        import click

        from .errors import FmnistError, raised_by_interrupt
        from .redact import masked
    except KeyboardInterrupt:
        group = None
    except ImportError as error:
        if not _missing_torch(error):
            raise
        _say(f"error: {_needs_torch(words, error)}")
        return 2
    if group is None:
        _say_interrupted()
        return EXIT_INTERRUPTED
    try:
        # make_context + invoke rather than group.main(): main() prints a blank line of its own on Ctrl-C
        with group.make_context("fmnist", words) as context:
            result = group.invoke(context)
        return result if isinstance(result, int) else 0
    except click.exceptions.Exit as done:  # --help, --version
        return done.exit_code
    except click.UsageError as error:  # click's own usage text is four lines; users get one
        if type(error).__name__ == "NoArgsIsHelpError" and error.ctx:  # bare `fmnist` (click >= 8.2): the help
            click.echo(error.ctx.get_help())
            return 0
        command = error.ctx.command_path if error.ctx else "fmnist"
        _say(f"error: {masked(error.format_message())} (see '{command} --help')")
        return error.exit_code
    except click.ClickException as error:
        _say(f"error: {masked(error.format_message())}")
        return error.exit_code
    except (click.exceptions.Abort, KeyboardInterrupt):
        _say_interrupted()
        return EXIT_INTERRUPTED
    except FmnistError as error:
        for each in error.all() if not error.quiet else ():
            _say(f"error: {masked(each)}")
        return error.exit_code
    except BrokenPipeError:
        return _quiet_broken_pipe()
    except OSError as error:  # a disk, folder or pipe problem no command turned into a message of its own
        where = f"{error.filename}: " if error.filename else ""
        _say(f"error: {where}{error.strerror or error}")
        return 1
    except MemoryError:
        _say("error: out of memory (try a smaller --batch-size or a smaller model)")
        return 1
    except ImportError as error:
        if not _missing_torch(error):
            raise
        _say(f"error: {_needs_torch(words, error)}")
        return 2
    except Exception as error:  # a bug in fmnist, not the user's input: one line, the traceback on request
        if raised_by_interrupt(error):
            _say_interrupted()
            return EXIT_INTERRUPTED
        if os.environ.get(SHOW_TRACEBACK):
            raise
        _say(f"internal error: {type(error).__name__}: {masked(error)} (please report it; {SHOW_TRACEBACK}=1 shows the traceback)")
        return EXIT_INTERNAL


if __name__ == "__main__":
    sys.exit(main())
