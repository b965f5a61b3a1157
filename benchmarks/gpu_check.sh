#!/usr/bin/env bash
# The GPU check, one short script (< 6 min on one H200): fmnist beside the machine's own torch, the GPU tests,
# then epoch speed of every study spec, plain loop against fmnist (fp32 and bf16). Prepare with prepare_gpu_check.sh.
set -uo pipefail
cd "$(dirname "$0")/.."
out=${OUT:-/tmp/fmnist-gpu-check}
mkdir -p "$out"
if ls .whl/*.whl >/dev/null 2>&1; then
  python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/site .whl/*.whl || exit 1
  export PYTHONPATH=/tmp/site
fi
export PYTHONPATH="$PWD${PYTHONPATH:+:$PYTHONPATH}" PYTHONUNBUFFERED=1
export FMNIST_DATA=${FMNIST_DATA:-$PWD/.data}
nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader
python3 -c "import torch; print('torch', torch.__version__, torch.cuda.get_device_name())"
python3 -m pytest -q -p no:cacheprovider tests/test_fast_path.py tests/test_training.py 2>&1 | tail -5
start=$(date +%s.%N)
python3 -m fmnist.cli run specs/cnn_1.yaml --num-epochs 1 --device cuda --out "$out/runs" | tail -2
echo "start-up to finished 1-epoch CNN_1 run: $(echo "$(date +%s.%N) - $start" | bc) s"
python3 benchmarks/epoch_speed.py specs/cnn_1.yaml specs/cnn_2.yaml specs/cnn_3.yaml specs/cnn_4.yaml specs/cnn_5.yaml \
  --device cuda --epochs 3 --workers 0 4 --precision fp32 bf16 --json "$out/epoch_speed_gpu.json" 2>&1 | grep -v '^{'
