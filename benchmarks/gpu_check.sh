#!/usr/bin/env bash
# The GPU checks, prepared for a bare GPU machine with torch (prepare here first: benchmarks/prepare_gpu_check.sh).
#   benchmarks/gpu_check.sh           GPU tests, then epoch speed of the five study specs, plain loop vs fmnist (< 6 min)
#   benchmarks/gpu_check.sh table1    the study's Table 1: 20 runs of 10 epochs, timed, then table.md
#   benchmarks/gpu_check.sh beyond    the beyond-the-study specs with longer schedules (resnet_small for 30 epochs)
set -uo pipefail
cd "$(dirname "$0")/.."
mode=${1:-speed}
out=${OUT:-/tmp/fmnist-gpu-check}
mkdir -p "$out"
if ls .whl/*.whl >/dev/null 2>&1; then
  python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/site .whl/*.whl || exit 1
  export PYTHONPATH=/tmp/site
fi
export PYTHONPATH="$PWD${PYTHONPATH:+:$PYTHONPATH}" PYTHONUNBUFFERED=1
export FMNIST_DATA=${FMNIST_DATA:-$PWD/.data}
fmnist() { python3 -m fmnist.cli "$@"; }
nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader
python3 -c "import torch; print('torch', torch.__version__, torch.cuda.get_device_name())"
case "$mode" in
  speed)
    python3 -m pytest -q -p no:cacheprovider tests/test_fast_path.py tests/test_training.py 2>&1 | tail -5
    fmnist run specs/cnn_1.yaml --num-epochs 1 --device cuda --out "$out/runs" | grep -E "start-up|epoch|test accuracy"
    python3 benchmarks/epoch_speed.py specs/cnn_1.yaml specs/cnn_2.yaml specs/cnn_3.yaml specs/cnn_4.yaml specs/cnn_5.yaml \
      --device cuda --epochs 3 --workers 0 4 --precision fp32 bf16 --json "$out/epoch_speed_gpu.json" 2>&1 | grep -v '^{'
    ;;
  table1)
    start=$(date +%s)
    fmnist grid specs/cnn_1.yaml specs/cnn_2.yaml specs/cnn_3.yaml specs/cnn_4.yaml specs/cnn_5.yaml --augment both \
      --loss both --num-epochs 10 --jobs 4 --device cuda --out "$out/table1" | tail -12
    echo "Table 1 grid: $(( $(date +%s) - start )) s wall"
    cp "$out/table1/table.md" "$out/table1.md"
    ;;
  beyond)
    fmnist run specs/resnet_small.yaml --num-epochs 30 --device cuda --run-dir "$out/resnet_small" | tail -3
    fmnist run specs/inception_small.yaml --num-epochs 20 --device cuda --run-dir "$out/inception_small" | tail -2
    fmnist run specs/densenet_small.yaml --num-epochs 20 --device cuda --run-dir "$out/densenet_small" | tail -2
    ;;
  *) echo "unknown mode '$mode': speed, table1 or beyond" >&2; exit 2 ;;
esac
