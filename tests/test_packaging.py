"""What a wheel holds: every folder of Python code is a package that `packages = find:` picks up."""
import subprocess
import sys
from pathlib import Path

from setuptools import find_packages

ROOT = Path(__file__).resolve().parents[1]


def test_every_folder_of_code_is_in_the_wheel():
    code_folders = {str(p.parent.relative_to(ROOT)).replace("/", ".") for p in (ROOT / "fmnist").rglob("*.py")}
    assert code_folders - set(find_packages(str(ROOT), include=["fmnist*"])) == set()


def test_packaged_specs_ship_with_the_package():
    from fmnist.builder.spec import PACKAGED_SPECS

    assert PACKAGED_SPECS.is_relative_to(ROOT / "fmnist") and len(list(PACKAGED_SPECS.glob("cnn_*.yaml"))) == 5
    assert "specs/zoo/*.yaml" in (ROOT / "setup.cfg").read_text() and len(list((PACKAGED_SPECS / "zoo").glob("*.yaml"))) == 32


def test_python_dash_m_fmnist_is_the_command(tmp_path):
    result = subprocess.run([sys.executable, "-m", "fmnist", "summary", "cnn_4"], cwd=tmp_path, capture_output=True, text=True)
    assert result.returncode == 0 and "Total params: 65,994" in result.stdout


def test_help_does_not_load_torch():
    code = "import sys; from fmnist.cli import main; main(['--help']); main(['run', '--help']); print('torch' in sys.modules)"
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert result.returncode == 0 and result.stdout.strip().endswith("False")
