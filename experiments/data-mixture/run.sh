#!/usr/bin/env bash
# Data schedules on CodeLlama-7B-Python: OSS only, Evol only, OSS→Evol, Evol→OSS, joint.
# The paper's claim is OSS only (Magicoder-CL-7B) against OSS→Evol (Magicoder-S-CL-7B).
#   SCALE=gpu experiments/data-mixture/run.sh      # 5 runs, 2 GPUs each + hub
#   SCALE=laptop experiments/data-mixture/run.sh   # 5 tiny runs on CPU (~12 min on 2 cores)
set -euo pipefail
STUDY=data-mixture
. "$(dirname "$0")/../lib.sh"
record_revision

if [ "$SCALE" = gpu ]; then
  magicoder-train experiment=ablate-mixture hparams_search=data-schedules paths.log_dir="$OUT"
else
  magicoder-train experiment=ablate-mixture hparams_search=data-schedules scale=laptop \
    trainer.enable_progress_bar=false paths.log_dir="$OUT"
fi
report "$OUT/ablate-mixture/sweep"
finish
