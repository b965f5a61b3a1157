#!/usr/bin/env bash
# The package as a user installs it: build a wheel, install it (not editable) into a fresh venv, and from a folder
# outside the checkout run `fmnist --version`, `fmnist summary cnn_4`, `python -m fmnist` and a tiny real run.
# An editable install would hide a module left out of the wheel.
set -euo pipefail
repo="$(cd "$(dirname "$0")/.." && pwd)"
python="${PYTHON:-python3}"
work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT
"$python" -m pip wheel -q --no-deps --disable-pip-version-check -w "$work/dist" "$repo"
wheel=$(ls "$work"/dist/fmnist-*.whl)
"$python" -m venv "$work/venv"
"$work/venv/bin/pip" install -q --disable-pip-version-check "$wheel"
cd "$work"  # nothing of the checkout is importable from here
"$work/venv/bin/fmnist" --version
"$work/venv/bin/python" -m fmnist --version
"$work/venv/bin/fmnist" summary cnn_4 | tail -n 3
"$work/venv/bin/fmnist" validate resnet50 convnext_tiny   # the zoo ships in the wheel, found by name
"$work/venv/bin/fmnist" draw googlenet --out "$work/googlenet.dot"
"$work/venv/bin/fmnist" run cnn_4 --train-limit 300 --num-epochs 1 --out "$work/runs"
test -f "$work"/runs/CNN_4-*/summary.json
echo "wheel check: ok ($(basename "$wheel"))"
