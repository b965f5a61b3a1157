"""Shared helpers: run the real CLI in-process, write spec files, make tiny IDX datasets."""
from __future__ import annotations

import textwrap
from pathlib import Path

import pytest

from fmnist.cli import main

ROOT = Path(__file__).resolve().parents[1]
SPECS = ROOT / "specs"


@pytest.fixture
def cli(capsys):
    """cli('summary', 'x.yaml') -> (exit code, stdout, stderr), exactly as a user would see them."""

    def run(*args: str):
        code = main([str(arg) for arg in args])
        captured = capsys.readouterr()
        return code, captured.out, captured.err

    return run


@pytest.fixture
def write_spec(tmp_path):
    """write_spec(text, name='spec.yaml') -> path of a spec file with that (dedented) text."""

    def write(text: str, name: str = "spec.yaml") -> Path:
        path = tmp_path / name
        path.write_text(textwrap.dedent(text).lstrip("\n"))
        return path

    return write
