"""docs/spec.md's and docs/zoo.md's tables that restate code (the spec keys, the layer and block kinds with their
settings and defaults, the zoo's figures) are the ones scripts/reference_tables.py makes from the code: a table
edited by hand, or code changed without the docs, fails here."""
import re
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def test_the_reference_tables_are_made_from_the_code():
    printed = subprocess.run([sys.executable, str(ROOT / "scripts" / "reference_tables.py")], capture_output=True,
                             text=True, check=True).stdout
    made = dict(re.findall(r"<!-- (\w+) -->\n(.*?)\n\n(?=<!-- |\Z)", printed, flags=re.S))
    assert set(made) == {"spec_keys", "layer_kinds", "block_kinds", "zoo", "train_settings", "summary_json"}
    found = set()
    for document in (ROOT / "docs").glob("*.md"):
        blocks = dict(re.findall(r"<!-- (\w+):begin -->\n(.*?)\n<!-- \1:end -->", document.read_text(), flags=re.S))
        for name, table in blocks.items():
            if name in made:
                found.add(name)
                assert table == made[name].rstrip("\n"), f"{document.name}: the {name} table is not what the code gives"
    assert found == set(made)
    assert "| `conv` |" in made["layer_kinds"] and "`groups` (1)" in made["layer_kinds"]
