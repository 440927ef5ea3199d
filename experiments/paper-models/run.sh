#!/usr/bin/env bash
# The paper's four models. Each magicoder-s-* run trains OSS-Instruct-75K, then
# Evol-Instruct-110K, and scores each stage once both are trained: stage oss-instruct is Magicoder-{CL,DS},
# stage evol-instruct is Magicoder-S-{CL,DS}. Two runs give all four rows.
#   SCALE=gpu experiments/paper-models/run.sh      # 2 GPUs (bf16, flash-attn) + hub, ~2 days per run
#   SCALE=laptop experiments/paper-models/run.sh   # the same two-stage path, tiny model, CPU
set -euo pipefail
STUDY=paper-models
. "$(dirname "$0")/../lib.sh"
record_revision

if [ "$SCALE" = gpu ]; then
  for experiment in magicoder-s-cl magicoder-s-ds; do
    magicoder-train experiment="$experiment" paths.log_dir="$OUT" \
      hydra.run.dir="$OUT/$experiment/run" ckpt_path="${CKPT_PATH:-null}"
    report "$OUT/$experiment/run" "$experiment"
  done
else
  # At laptop scale both bases become the tiny model, so one run exercises the path; 5% of each
  # stage held out for a validation loss (the paper holds out none), checked every 50 steps
  # (validation otherwise waits for an epoch end that 100 steps never reach).
  magicoder-train experiment=magicoder-s-ds scale=laptop trainer.max_steps=100 trainer.val_check_interval=50 \
    eval.limit=20 \
    data.stages.oss-instruct.val_fraction=0.05 data.stages.evol-instruct.val_fraction=0.05 \
    trainer.enable_progress_bar=false paths.log_dir="$OUT" hydra.run.dir="$OUT/magicoder-s-ds/run"
  report "$OUT/magicoder-s-ds/run"
fi
finish
