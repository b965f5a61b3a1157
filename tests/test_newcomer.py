"""What a newcomer meets first: the README's commands pasted in order, progress where output is no terminal, and a
checkout the tour leaves clean."""
from __future__ import annotations

import re
import shutil
import subprocess
import sys

import pytest

from tests.conftest import ROOT, only_run


def readme_spec() -> str:
    """The README's 'A spec' block, as a newcomer saves it as my_net.yaml."""
    text = (ROOT / "README.md").read_text()
    section = text[text.index("## A spec"):]
    assert "Save this as `my_net.yaml`" in section.split("```yaml")[0]
    return re.search(r"```yaml\n(.*?)```", section, re.S).group(1)


def test_the_readme_spec_trains_on_the_tours_folder_as_the_readme_says(cli, real_data, tmp_path, monkeypatch):
    """Round 3: the tour's folder held 32-px images, the README's spec wants [1, 28, 28], and nothing said to save it."""
    monkeypatch.chdir(tmp_path)
    made = subprocess.run([sys.executable, str(ROOT / "scripts" / "make_image_folder.py"), "photos", "--limit", "400"],
                          capture_output=True, text=True)
    assert made.returncode == 0 and "28x28 grey png" in made.stdout, made.stderr
    (tmp_path / "my_net.yaml").write_text(readme_spec())
    code, out, err = cli("run", "my_net.yaml", "--data", "photos", "--num-epochs", "1", "--threads", "1")
    assert (code, err) == (0, ""), err
    assert "test accuracy" in out and (only_run(tmp_path / "runs") / "summary.json").is_file()


def test_without_a_terminal_a_long_epoch_prints_a_plain_progress_line(cli, real_data, tmp_path, monkeypatch):
    """Round 3 printed nothing under `make run` until the first epoch ended."""
    monkeypatch.setenv("FMNIST_PROGRESS_EVERY_S", "0.01")  # every report the trainer makes (4 a second) is a line
    code, out, err = cli("run", "cnn_4", "--train-limit", "3000", "--batch-size", "16", "--num-epochs", "1",
                         "--threads", "1", "--out", tmp_path / "runs")
    assert (code, err) == (0, ""), err
    lines = [line for line in out.splitlines() if line.startswith("epoch 1/1: step ")]
    assert lines, out
    step, steps = map(int, re.match(r"epoch 1/1: step (\d+)/(\d+) \(\d+%\) loss \d+\.\d{4} [\d,]+ img/s$", lines[0]).groups())
    assert 0 < step <= steps == 3000 // 16 + 1


@pytest.mark.skipif(not (ROOT / ".git").exists() or not shutil.which("git"), reason="not a git checkout")
def test_what_the_tour_and_the_zoo_page_write_is_ignored_by_git():
    written = ["photos/test/Bag/00001.png", "fm32/train/Bag/00002.png", "resnet18.svg", "resnet18.png", "resnet18.pth",
               "my_net.yaml", "runs/x/config.yaml", "c.dot"]
    checked = subprocess.run(["git", "check-ignore", *written], cwd=ROOT, capture_output=True, text=True)
    assert checked.stdout.split() == written
    kept = subprocess.run(["git", "check-ignore", "docs/best95_curves.png", "specs/cnn_4.yaml"], cwd=ROOT,
                          capture_output=True, text=True)
    assert kept.stdout == ""  # the docs' own pictures and the specs stay tracked
