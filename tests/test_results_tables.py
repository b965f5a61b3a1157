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
    assert set(made) == {"table1", "noise", "sigmoid", "readings", "tuned", "search", "shared_search", "best", "best95", "headline", "checks"}
    shown = set()
    for document in (ROOT / "README.md", *(ROOT / "docs").glob("*.md")):
        blocks = dict(re.findall(r"<!-- (\w+):begin -->\n(.*?)\n<!-- \1:end -->", document.read_text(), flags=re.S))
        for name, table in ((name, table) for name, table in blocks.items() if name in made):
            shown.add(name)
            assert table == made[name].rstrip("\n"), f"{document.name}: the {name} table is not what the result files give"
    assert shown == set(made)  # every table is on a page
    assert "CNN_4-noaug-softmax" not in made["table1"].split("Not run yet")[-1]  # a committed cell shows as run
