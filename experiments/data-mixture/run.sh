#!/usr/bin/env bash
# Data schedules on CodeLlama-7B-Python: OSS only, Evol only, OSS→Evol, Evol→OSS, joint.
# The paper's claim is OSS only (Magicoder-CL-7B) against OSS→Evol (Magicoder-S-CL-7B).
#   SCALE=gpu experiments/data-mixture/run.sh      # 5 runs, 2 GPUs each + hub
#   SCALE=laptop experiments/data-mixture/run.sh   # 5 tiny runs on CPU, 40 steps per stage
set -euo pipefail
STUDY=data-mixture
. "$(dirname "$0")/../lib.sh"
record_revision

if [ "$SCALE" = gpu ]; then
  magicoder-train experiment=ablate-mixture hparams_search=data-schedules paths.log_dir="$OUT"
else
  # Shortened from scale=laptop's 200 steps / 40 tasks to 40 steps per stage and the first 10
  # tasks of each benchmark, so the 5 schedules' 7 stages fit about half an hour on 2 shared
  # CPU cores. scale=laptop holds out 5% of every stage (the paper holds out none) and
  # validates each stage's last step; val_check_interval=20 adds the midpoint.
  magicoder-train experiment=ablate-mixture hparams_search=data-schedules scale=laptop \
    trainer.max_steps=40 trainer.val_check_interval=20 eval.limit=10 \
    trainer.enable_progress_bar=false paths.log_dir="$OUT"
fi
report "$OUT/ablate-mixture/sweep"
finish
