"""What fmnist shares with its surroundings: a machine without torch, the caller's hooks, plug-ins that collide with
fmnist's own kinds, and caches that must not mix two layers up."""
from __future__ import annotations

import os
import subprocess
import sys
import textwrap

import pytest

from tests.conftest import SPECS

NO_TORCH = "import sys; sys.modules['torch'] = None; sys.modules['torchvision'] = None\n"  # as if not installed


def fmnist_without_torch(tmp_path, *args):
    (tmp_path / "blocker").mkdir(exist_ok=True)
    (tmp_path / "blocker" / "sitecustomize.py").write_text(NO_TORCH)
    paths = [str(tmp_path / "blocker"), *filter(None, os.environ.get("PYTHONPATH", "").split(os.pathsep))]
    return subprocess.run([sys.executable, "-m", "fmnist", *map(str, args)], capture_output=True, text=True,
                          cwd=tmp_path, env={**os.environ, "PYTHONPATH": os.pathsep.join(paths)})


def test_without_torch_each_command_says_what_needs_it_in_one_line(tmp_path):
    for args, extra in ((("validate", SPECS / "cnn_4.yaml"), "'validate --no-expect' checks syntax and shapes without it"),
                        (("summary", SPECS / "cnn_4.yaml"), ""), (("run", "cnn_4", "--dry-run"), "")):
        done = fmnist_without_torch(tmp_path, *args)
        assert done.returncode == 2 and len(done.stderr.splitlines()) == 1, done.stderr
        assert done.stderr.startswith(f"fmnist: error: 'fmnist {args[0]}' needs PyTorch, which cannot be imported here")
        assert "pip install torch torchvision" in done.stderr and extra in done.stderr
    checked = fmnist_without_torch(tmp_path, "validate", "--no-expect", SPECS / "cnn_4.yaml")
    assert checked.returncode == 0 and checked.stdout == f"{SPECS / 'cnn_4.yaml'}: ok (CNN_4, 14 layers)\n"


def test_the_caller_keeps_its_own_unraisable_hook_and_signal_handlers():
    import signal

    from fmnist.cli import main

    def mine(unraisable):
        pass

    before = signal.getsignal(signal.SIGTERM)
    sys.unraisablehook = mine
    try:
        assert main(["validate", "--no-expect", str(SPECS / "cnn_4.yaml")]) == 0
        assert sys.unraisablehook is mine and signal.getsignal(signal.SIGTERM) is before
    finally:
        sys.unraisablehook = sys.__unraisablehook__


MIXER = textwrap.dedent('''
    from dataclasses import dataclass
    from typing import ClassVar

    import torch
    from torch import nn

    from fmnist.builder import Layer, register


    class Mix(nn.Module):
        """Its repr shows no settings: only `times` tells two of them apart."""

        def __init__(self, channels, times):
            super().__init__()
            self.times = times
            self.conv = nn.Conv2d(channels, channels, 3, padding=1)

        def forward(self, x):
            for _ in range(self.times):
                x = self.conv(x)
            return x

        def __repr__(self):
            return "Mix()"


    @register("mix")
    @dataclass
    class MixLayer(Layer):
        times: int = 1
        usage: ClassVar[str] = "mix N"
        optional_value: ClassVar[str | None] = "times"
        converters: ClassVar[dict] = {"times": lambda value, what: int(value)}

        def build(self, shape):
            return Mix(shape[0], self.times)
''')


def test_two_plugin_layers_of_one_kind_get_their_own_mult_adds(tmp_path):
    """Round 3 keyed the count by repr(module): the second mix got the first's figure (56,448 instead of 307,328)."""
    import json

    (tmp_path / "mix.py").write_text(MIXER)
    (tmp_path / "mix.yaml").write_text("name: m\ninput: [4, 14, 14]\nlayers: [mix 1, mix 5, gap, fc 10]\n")
    done = subprocess.run([sys.executable, "-m", "fmnist", "--plugin", "mix.py", "summary", "mix.yaml", "--json"],
                          capture_output=True, text=True, cwd=tmp_path)
    rows = json.loads(done.stdout)["layers"]
    one = 4 * 4 * 9 * 14 * 14  # a 3x3 conv of 4 -> 4 channels on 14x14: 28,224 mult-adds
    assert (rows[0]["macs"], rows[1]["macs"]) == (one, 5 * one)


@pytest.mark.parametrize("name", ["conv", "gate", "residual", "se"])
def test_a_plugin_that_takes_a_builtin_name_is_one_line_whichever_module_defines_it(tmp_path, name):
    """Round 3: 'conv' was one line, 'gate' (a block kind, registered after plug-ins loaded) an internal error."""
    (tmp_path / "clash.py").write_text(MIXER.replace('@register("mix")', f'@register("{name}")'))
    done = subprocess.run([sys.executable, "-m", "fmnist", "--plugin", "clash.py", "validate", "--no-expect",
                           str(SPECS / "cnn_4.yaml")], capture_output=True, text=True, cwd=tmp_path)
    assert done.returncode == 2 and len(done.stderr.splitlines()) == 1, done.stderr
    assert f"--plugin clash.py: could not load it (ValueError: layer kind name '{name}' is registered twice" in done.stderr
