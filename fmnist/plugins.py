"""Layer kinds from outside fmnist: a file or module given with --plugin (or $FMNIST_PLUGINS), and installed
packages that name their module in the `fmnist.layers` entry-point group. Each registers its kinds with
@register, exactly as fmnist's own kinds do; its mult-adds are counted by torch like every kind's."""
from __future__ import annotations

import importlib
import importlib.util
import os
import sys
from contextlib import contextmanager
from pathlib import Path

from .errors import UsageError, one_line

ENTRY_POINT_GROUP = "fmnist.layers"
ENVIRONMENT = "FMNIST_PLUGINS"  # plug-ins separated by os.pathsep; grid cells get theirs this way
_loaded: set[str] = set()


@contextmanager
def _noting_kinds():
    """The kinds registered inside the block are noted as plug-ins' (fmnist's own are all registered before, so a
    plug-in that takes one of their names is refused at its own load, whichever module defines the kind)."""
    from .builder.kinds import PLUGIN_KINDS, load_builtin_kinds

    KINDS = load_builtin_kinds()
    before = set(KINDS.values())
    try:
        yield
    finally:
        PLUGIN_KINDS.update(set(KINDS.values()) - before)


def load_plugin(target: str) -> None:
    """Import a plug-in file (path/to/layers.py) or module (my_package.layers) once; a failure is one line."""
    path = Path(target)
    key = str(path.resolve()) if path.suffix == ".py" or path.exists() else target
    if key in _loaded:
        return
    try:
        with _noting_kinds():
            if path.suffix == ".py" or path.exists():
                if not path.is_file():
                    raise UsageError("no such plug-in file", target)
                name = f"fmnist_plugin_{abs(hash(key))}"
                spec = importlib.util.spec_from_file_location(name, path)
                if spec is None or spec.loader is None:
                    raise UsageError("not a Python file Python can load", target)
                module = importlib.util.module_from_spec(spec)
                sys.modules[name] = module
                spec.loader.exec_module(module)
            else:
                importlib.import_module(target)
    except UsageError:
        raise
    except (Exception, SystemExit) as error:  # a plug-in's own bug, a missing import, a kind registered twice, an exit
        raise UsageError(f"--plugin {target}: could not load it ({type(error).__name__}: {one_line(error)})") from None
    _loaded.add(key)


def load_installed() -> None:
    """Every module installed packages list under the `fmnist.layers` entry points."""
    from importlib.metadata import entry_points

    for point in entry_points(group=ENTRY_POINT_GROUP):
        if point.value in _loaded:
            continue
        try:
            with _noting_kinds():
                point.load()
        except (Exception, SystemExit) as error:
            raise UsageError(f"installed plug-in '{point.name}' ({point.value}) could not be loaded "
                             f"({type(error).__name__}: {one_line(error)})") from None
        _loaded.add(point.value)


def load_all(given: tuple[str, ...] = ()) -> list[str]:
    """The installed plug-ins, then $FMNIST_PLUGINS, then those given; returns what was given and named, for children."""
    load_installed()
    named = [entry for entry in os.environ.get(ENVIRONMENT, "").split(os.pathsep) if entry]
    for target in [*named, *given]:
        load_plugin(target)
    return [str(Path(t).resolve()) if Path(t).suffix == ".py" else t for t in [*named, *given]]
