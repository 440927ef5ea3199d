#!/usr/bin/env bash
# The four released checkpoints, scored under eval.protocol=magicoder-paper (set by
# conf/released/ for each), to compare with the paper's table and with our own runs.
#   SCALE=gpu experiments/released-checkpoints/run.sh      # 1 GPU + hub, the 4 models
#   SCALE=laptop experiments/released-checkpoints/run.sh   # the same path on the tiny model, 10 tasks
set -euo pipefail
STUDY=released-checkpoints
. "$(dirname "$0")/../lib.sh"
record_revision

if [ "$SCALE" = gpu ]; then
  for model in magicoder-cl-7b magicoder-s-cl-7b magicoder-ds-6.7b magicoder-s-ds-6.7b; do
    magicoder-evaluate model="$model" paths.log_dir="$OUT" hydra.run.dir="$OUT/runs/$model"
  done
else
  # No hub here: score the tiny model under the paper's protocol on a slice (labelled custom).
  magicoder-evaluate eval.protocol=magicoder-paper eval.limit=10 paths.log_dir="$OUT" \
    hydra.run.dir="$OUT/runs/tiny"
fi
report "$OUT/runs"
finish
