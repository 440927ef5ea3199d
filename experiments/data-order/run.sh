#!/usr/bin/env bash
# Data order: OSS-Instruct then Evol-Instruct (the paper's) against Evol then OSS.
# An extension: the paper trains only OSS→Evol.
#   SCALE=gpu experiments/data-order/run.sh      # 2 runs, 2 GPUs each + hub
#   SCALE=laptop experiments/data-order/run.sh   # 2 tiny runs on CPU
set -euo pipefail
STUDY=data-order
. "$(dirname "$0")/../lib.sh"
record_revision

if [ "$SCALE" = gpu ]; then
  magicoder-train experiment=ablate-data-order hparams_search=data-order paths.log_dir="$OUT"
else
  # Shortened from scale=laptop's 200 steps / 40 tasks to 40 steps per stage and the first 10
  # tasks of each benchmark, so the 4 stages and their evaluations fit about 25 minutes on 2
  # shared CPU cores; 5% of each stage held out for a validation loss (the paper holds out
  # none), checked every 20 steps (40 steps never reach the epoch end where validation would
  # run). Both orders have both stages.
  magicoder-train experiment=ablate-data-order hparams_search=data-order scale=laptop \
    trainer.max_steps=40 trainer.val_check_interval=20 eval.limit=10 \
    data.stages.oss-instruct.val_fraction=0.05 data.stages.evol-instruct.val_fraction=0.05 \
    trainer.enable_progress_bar=false paths.log_dir="$OUT"
fi
report "$OUT/ablate-data-order/sweep"
finish
