#!/usr/bin/env bash
# The paper's comment–function baseline (completion-style: code up to the docstring → body, no
# template) against instruction-style rows of the same functions.
#   SCALE=laptop experiments/comment-function-baseline/run.sh   # stdlib, tiny model, 2 runs on CPU
#   SCALE=gpu experiments/comment-function-baseline/run.sh      # the paper's 75K pairs: hub + 2 GPUs (bf16, flash-attn)
set -euo pipefail
STUDY=comment-function-baseline
. "$(dirname "$0")/../lib.sh"

if [ "$SCALE" = gpu ]; then
  record_revision
  # The seed documents of OSS-Instruct-75K from the hub (gated: accept bigcode/starcoderdata's
  # and bigcode/the-stack's terms, huggingface-cli login); a rerun continues the file.
  python "$ROOT/experiments/comment-function-baseline/collect_seed_documents.py" \
    --out "$OUT/seed-documents.jsonl"
  # The paper's 75,197 pairs from them (data=comment-function-75k, grammars from the
  # comment-pairs extra), CodeLlama-Python-7B under the paper's recipe, 2 epochs; the run then
  # scores the model on HumanEval(+) and MBPP(+) under the paper's protocol.
  magicoder-train experiment=paper-recipe model=codellama-7b-python data=comment-function-75k \
    data.path="$OUT/seed-documents.jsonl" task_name=comment-function-baseline \
    paths.log_dir="$OUT" hydra.run.dir="$OUT/comment-function-75k/run" ckpt_path="${CKPT_PATH:-null}"
  report "$OUT/comment-function-75k/run" comment-function-75k
  finish
  exit 0
fi
record_revision
# The default job (tiny model, stdlib, from-scratch recipe), both data formats, cut to 40 steps
# and 10 tasks per benchmark (the default job: 452 steps, every task) to fit a few minutes;
# validation every 20 steps, since the run stops before the epoch end where it would validate.
magicoder-train -m data=stdlib-pairs,stdlib-completion-baseline task_name=comment-function-baseline \
  trainer.max_steps=40 trainer.val_check_interval=20 eval.limit=10 \
  trainer.enable_progress_bar=false paths.log_dir="$OUT" \
  hydra.sweep.dir="$OUT/comment-function-baseline/sweep" \
  'hydra.sweep.subdir=${hydra:job.override_dirname}'
report "$OUT/comment-function-baseline/sweep"
finish
