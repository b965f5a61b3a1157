"""The package's shape, as the design notes draw it: one epoch loop, and data flowing one way."""
import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
PACKAGE = ROOT / "fmnist"


def test_there_is_one_epoch_loop_and_every_training_goes_through_it():
    callers = sorted(str(path.relative_to(ROOT)) for path in PACKAGE.rglob("*.py") if ".train_epoch(" in path.read_text())
    assert callers == ["fmnist/runner/fit.py"]
    users = sorted(str(path.relative_to(ROOT)) for path in PACKAGE.rglob("*.py")
                   if re.search(r"^\s*(state = )?fit\(", path.read_text(), re.M))
    assert users == ["fmnist/experiments/search.py", "fmnist/runner/session.py"]


def test_data_flows_one_way_datasets_import_nothing_from_runner_or_above():
    offenders = [f"{path.relative_to(ROOT)}: {line.strip()}" for path in (PACKAGE / "datasets").rglob("*.py")
                 for line in path.read_text().splitlines()
                 if re.match(r"\s*from \.\.(runner|experiments|commands)\b|\s*import fmnist\.(runner|experiments)", line)]
    assert offenders == []


def test_the_readme_is_a_newcomers_page_with_the_two_commands_ci_runs():
    readme = (ROOT / "README.md").read_text()
    assert len(readme.splitlines()) <= 200
    first_block = readme.split("```")[1]
    assert "make run" in first_block and "make test" in first_block
    assert "make test" in (ROOT / ".ci" / "run").read_text()
    linked = set(re.findall(r"\(docs/([\w.-]+\.md)\)", readme))
    assert linked == {path.name for path in (ROOT / "docs").glob("*.md")}  # every page reachable from the README
