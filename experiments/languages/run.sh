#!/usr/bin/env bash
# The paper's language ablation: 30,000 Python rows against 30,000 non-Python rows of
# OSS-Instruct-75K, on CodeLlama-7B-Python.
#   SCALE=gpu experiments/languages/run.sh      # 2 runs, 2 GPUs each + hub
#   SCALE=laptop experiments/languages/run.sh   # the Python arm only (the stand-in has no other language)
set -euo pipefail
STUDY=languages
. "$(dirname "$0")/../lib.sh"
record_revision

if [ "$SCALE" = gpu ]; then
  magicoder-train experiment=ablate-languages hparams_search=languages paths.log_dir="$OUT"
  report "$OUT/ablate-languages/sweep"
else
  # The embedded stand-in is all Python stdlib code: the non-Python arm is empty and refuses
  # to run, so the laptop scale checks the Python arm's path only (no comparison).
  magicoder-train experiment=ablate-languages scale=laptop data.stages.oss-instruct.datasets.oss.n=null \
    trainer.max_steps=100 trainer.val_check_interval=50 eval.limit=20 \
    data.stages.oss-instruct.val_fraction=0.05 \
    trainer.enable_progress_bar=false paths.log_dir="$OUT" hydra.run.dir="$OUT/ablate-languages/run"
  report "$OUT/ablate-languages/run"
fi
finish
