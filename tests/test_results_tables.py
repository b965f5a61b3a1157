"""The README's and docs/results.md's result tables are the ones scripts/results_tables.py makes from the committed
result files: a figure typed in by hand, or a result file changed without the tables, fails here."""
import re
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def test_the_published_tables_are_made_from_the_result_files():
    printed = subprocess.run([sys.executable, str(ROOT / "scripts" / "results_tables.py")], capture_output=True, text=True,
                             check=True).stdout
    made = dict(re.findall(r"<!-- (\w+) -->\n(.*?)\n\n(?=<!-- |\Z)", printed, flags=re.S))
    assert set(made) == {"table1", "noise", "sigmoid", "readings", "tuned", "search", "shared_search", "search_spend", "best", "best95", "attention", "probes95", "headline", "checks",
                         "distributed", "scaling", "data_scan", "data_epochs"}
    shown = set()
    for document in (ROOT / "README.md", *(ROOT / "docs").glob("*.md")):
        blocks = dict(re.findall(r"<!-- (\w+):begin -->\n(.*?)\n<!-- \1:end -->", document.read_text(), flags=re.S))
        for name, table in ((name, table) for name, table in blocks.items() if name in made):
            shown.add(name)
            assert table == made[name].rstrip("\n"), f"{document.name}: the {name} table is not what the result files give"
    assert shown == set(made)  # every table is on a page
    assert "| `cnn2-pg`: hyperband by epochs, epochs searched | **all** | 25 | 202 | 100% |" in made["search_spend"]
    assert "CNN_4-noaug-softmax" not in made["table1"].split("Not run yet")[-1]  # a committed cell shows as run


def test_the_curves_of_the_attempts_at_95_are_drawn_from_their_result_files(tmp_path):
    import json

    script = [sys.executable, str(ROOT / "scripts" / "results_figures.py")]
    drawn = subprocess.run([*script, "--write", "--out", str(tmp_path)], capture_output=True, text=True, check=True).stdout
    files = sorted((ROOT / "results").glob("fmnist_95*/seed*.json"))
    assert files and len(drawn.splitlines()) == 1 + len(files)  # a line per run
    for path in files:
        run = json.loads(path.read_text())
        assert f"{run['name']} seed {run['hparams']['seed']}: {len(run['epochs'])} epochs" in drawn
        assert f"best validation {100 * run['best_val_acc']:.2f}% at epoch {run['best_epoch']}" in drawn
        assert f"test {100 * run['test_acc']:.2f}%" in drawn
    assert (tmp_path / "best95_curves.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    empty = subprocess.run([*script, "--results", str(tmp_path)], capture_output=True, text=True)
    assert (empty.returncode, empty.stdout) == (1, "")
    assert len(empty.stderr.splitlines()) == 1 and "no result files under" in empty.stderr
