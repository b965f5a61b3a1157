#!/usr/bin/env bash
# Run here (with network to PyPI) before benchmarks/gpu_check.sh: wheels the GPU image lacks go to .whl/, the
# dataset's four files to .data/; both are git-ignored and travel with the device tool's `carry: [".whl", ".data"]`.
set -euo pipefail
cd "$(dirname "$0")/.."
rm -rf .whl && mkdir -p .whl .data
for package in jsonschema==4.26.0 jsonschema-specifications==2025.9.1 referencing==0.37.0 rpds-py==0.30.0; do
  python3 -m pip download -q --no-deps --only-binary=:all: --python-version 3.12 --implementation cp \
    --platform manylinux_2_28_x86_64 --platform manylinux_2_17_x86_64 --platform manylinux2014_x86_64 -d .whl "$package"
done
.venv/bin/python - <<'PY'
import shutil
from fmnist.datasets.fashion_mnist import locate
for path in locate().paths.values():
    shutil.copy(path, ".data/")
PY
ls -la .whl .data
