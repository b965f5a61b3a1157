#!/bin/bash
# Issue #37 part 3: 12-minute budgeted probes of candidate changes to fmnist_95_budget, one after another, 2 threads.
cd "$(dirname "$0")/.." && mkdir -p runs  # the checkout
run() {  # NAME ARGS...
  name=$1; shift
  .venv/bin/fmnist run specs/fmnist_95_budget.yaml --budget 12m --threads 2 --run-dir runs/probe-$name "$@" \
    > runs/probe-$name.log 2>&1 && .venv/bin/python scripts/result_file.py runs/probe-$name results/probe95/$name.json
}
run baseline
run deeper --set 'layers.5={repeat: {times: 1, layers: ["basic(64, 2)", "basic(64, 1)"]}}' --set 'layers.6={repeat: {times: 1, layers: ["basic(128, 2)", "basic(128, 1)"]}}'
run wider --set 'layers.1=conv 3x3x48 pad=1 bias=false' --set 'layers.4=basic(48, 1)' --set 'layers.5=basic(96, 2)' --set 'layers.6=basic(192, 2)'
run batch256 --batch-size 256 --lr 0.2
