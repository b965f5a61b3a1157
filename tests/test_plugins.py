"""Layer kinds of the user's own, from the command line: --plugin FILE.py or MODULE, and installed entry points."""
import json
import os
import subprocess
import sys
import textwrap

from tests.conftest import only_run

PLUGIN = textwrap.dedent('''
    from dataclasses import dataclass
    from typing import ClassVar

    from torch import nn

    from fmnist.builder import Layer, register


    @register("wide_conv")
    @dataclass
    class WideConv(Layer):
        """A 3x3 'same' convolution: the user writes no mult-adds formula, torch counts them."""

        filters: int = 8
        usage: ClassVar[str] = "wide_conv [F]"
        optional_value: ClassVar[str | None] = "filters"
        converters: ClassVar[dict] = {"filters": lambda value, what: int(value)}
        group: ClassVar[str] = "conv"

        def output_shape(self, shape):
            return (self.filters, shape[1], shape[2])

        def build(self, shape):
            return nn.Conv2d(shape[0], self.filters, 3, padding=1)
''')
SPEC = "name: mine\nlayers: [wide_conv 8, relu, pool 2x2, fc 10]\n"


def fmnist(*args, cwd, env=None):
    return subprocess.run([sys.executable, "-m", "fmnist", *map(str, args)], cwd=cwd, capture_output=True, text=True,
                          env={**os.environ, **(env or {})})


def test_a_plugin_file_adds_a_kind_to_summary_run_and_grid(real_data, tmp_path):
    (tmp_path / "layers.py").write_text(PLUGIN)
    (tmp_path / "mine.yaml").write_text(SPEC)
    refused = fmnist("summary", "mine.yaml", cwd=tmp_path)
    assert refused.returncode == 2 and "unknown layer kind 'wide_conv'" in refused.stderr and "--plugin" in refused.stderr
    summary = fmnist("--plugin", "layers.py", "summary", "mine.yaml", "--json", cwd=tmp_path)
    assert summary.returncode == 0, summary.stderr
    rows = json.loads(summary.stdout)["layers"]
    assert rows[0]["macs"] == 28 * 28 * 8 * 1 * 3 * 3 and rows[0]["params"] == 8 * 9 + 8  # counted by torch
    quick = ("--train-limit", "300", "--val-limit", "500", "--num-epochs", "1")
    trained = fmnist("--plugin", "layers.py", "run", "mine.yaml", *quick, "--out", "runs", cwd=tmp_path)
    assert trained.returncode == 0, trained.stderr
    assert json.loads((only_run(tmp_path / "runs") / "summary.json").read_text())["test_acc"] > 0.1
    grid = fmnist("--plugin", "layers.py", "grid", "mine.yaml", "--augment", "off", "--loss", "softmax", *quick,
                  "--out", "grid", cwd=tmp_path)  # the cell runs in a child process, which loads the plug-in too
    assert grid.returncode == 0, grid.stdout + grid.stderr
    assert (tmp_path / "grid" / "mine-noaug-softmax" / "summary.json").is_file()


def test_a_broken_or_missing_plugin_is_one_line(tmp_path):
    (tmp_path / "broken.py").write_text("import a_module_that_is_not_there\n")
    for target, message in (("broken.py", "--plugin broken.py: could not load it (ModuleNotFoundError"),
                            ("missing.py", "missing.py: no such plug-in file"),
                            ("no.such.module", "--plugin no.such.module: could not load it (ModuleNotFoundError")):
        result = fmnist("--plugin", target, "validate", "-", cwd=tmp_path)
        assert result.returncode == 2 and message in result.stderr and len(result.stderr.splitlines()) == 1


def test_an_installed_package_registers_kinds_through_its_entry_point(tmp_path):
    site = tmp_path / "site"
    (site / "my_layers-1.0.dist-info").mkdir(parents=True)
    (site / "my_layers.py").write_text(PLUGIN)
    (site / "my_layers-1.0.dist-info" / "METADATA").write_text("Metadata-Version: 2.1\nName: my-layers\nVersion: 1.0\n")
    (site / "my_layers-1.0.dist-info" / "entry_points.txt").write_text("[fmnist.layers]\nwide = my_layers\n")
    (tmp_path / "mine.yaml").write_text(SPEC)
    result = fmnist("validate", "mine.yaml", cwd=tmp_path, env={"PYTHONPATH": str(site)})
    assert result.returncode == 0 and "mine.yaml: ok (mine, 5 layers)" in result.stdout, result.stderr
    result = fmnist("summary", "mine.yaml", cwd=tmp_path, env={"PYTHONPATH": str(site)})
    wide_conv = 8 * 1 * 3 * 3 + 8  # 8 filters of 3x3 over 1 channel, and their biases
    fc = 8 * 14 * 14 * 10 + 10  # after pool 2x2: 8 x 14 x 14 inputs to 10 units, and their biases
    assert result.returncode == 0 and f"Total params: {wide_conv + fc:,}" in result.stdout, result.stderr  # 15,770


BAD_PLUGINS = textwrap.dedent('''
    import sys
    from dataclasses import dataclass
    from typing import ClassVar

    from torch import nn

    from fmnist.builder import Layer, register


    @dataclass
    class Plain(Layer):
        usage: ClassVar[str] = "plain"

        def build(self, shape):
            return nn.Identity()


    @register("liar")
    class Liar(Plain):
        def output_shape(self, shape):
            return (4, shape[1], shape[2])  # but its conv makes 8 channels

        def build(self, shape):
            return nn.Conv2d(shape[0], 8, 3, padding=1)


    @register("boom")
    class Boom(Plain):
        def build(self, shape):
            raise RuntimeError("kaboom")


    @register("quitter")
    class Quitter(Plain):
        def build(self, shape):
            sys.exit(0)


    @register("nothing")
    class Nothing(Plain):
        def output_shape(self, shape):
            return (0, shape[1], shape[2])


    @register("halves")
    class Halves(Plain):
        def output_shape(self, shape):
            return (shape[0], shape[1] / 2, shape[2] / 2)
''')


BAD_KINDS = {
    "liar": "plug-in kind 'liar' (bad.py: Liar): output_shape says (4, 28, 28) but the module build() makes gives (8, 28, 28)",
    "boom": "plug-in kind 'boom' (bad.py: Boom): its build failed (RuntimeError: kaboom)",
    "quitter": "plug-in kind 'quitter' (bad.py: Quitter): its build failed (SystemExit: 0)",
    "nothing": "output_shape gave (0, 28, 28); every size must be a whole number >= 1",
    "halves": "output_shape gave (4, 14.0, 14.0); every size must be a whole number >= 1",
}


def test_a_plugin_kind_is_held_to_its_output_shape_and_its_failures_are_one_line(tmp_path):
    (tmp_path / "bad.py").write_text(BAD_PLUGINS)
    for kind in BAD_KINDS:
        (tmp_path / f"{kind}.yaml").write_text(f"name: {kind}\nlayers: [conv 3x3x4 pad=1, {kind}, relu, fc 10]\n")
    checked = fmnist("--plugin", "bad.py", "validate", *(f"{kind}.yaml" for kind in BAD_KINDS), cwd=tmp_path)
    lines = checked.stderr.splitlines()
    assert checked.returncode == 2 and len(lines) == len(BAD_KINDS), checked.stderr  # one line each, none passes
    for line, (kind, message) in zip(lines, BAD_KINDS.items()):
        assert line.startswith(f"{kind}.yaml:2: layer 2 '{kind}': ") and message in line, line
    for command in (("summary", "liar.yaml"), ("run", "quitter.yaml", "--train-limit", "100", "--out", "runs")):
        done = fmnist("--plugin", "bad.py", *command, cwd=tmp_path)
        assert done.returncode == 2 and done.stderr.count("\n") == 1 and BAD_KINDS[command[1][:-5]] in done.stderr
        assert "Traceback" not in done.stderr and "internal error" not in done.stderr
    assert not (tmp_path / "runs").exists()  # refused before any run folder
