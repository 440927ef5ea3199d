#!/usr/bin/env bash
# The paper's contamination analysis: each row's TF-IDF cosine similarity to its closest
# HumanEval problem, per dataset (magicoder-data-report), and for all datasets in one vector
# space (joint_similarity.py).
#   SCALE=gpu experiments/contamination/run.sh      # OSS-Instruct-75K and Evol-Instruct-110K from the hub (CPU is enough)
#   SCALE=laptop experiments/contamination/run.sh   # the embedded stdlib stand-ins, offline
set -euo pipefail
STUDY=contamination
. "$(dirname "$0")/../lib.sh"
record_revision
HUMANEVAL="${MAGICODER_BENCHMARK_DIR:-$ROOT/../shared/data}/HumanEval.jsonl.gz"
mkdir -p "$OUT/data"

# Write the datasets as jsonl: the hub's two released datasets, or the stdlib stand-ins
# (module-level functions play OSS-Instruct, methods play Evol-Instruct, as sources=embedded).
SCALE="$SCALE" DATA="$OUT/data" python - <<'PY'
import json, os
from pathlib import Path

out = Path(os.environ["DATA"])
if os.environ["SCALE"] == "gpu":
    from datasets import load_dataset

    sets = {
        "oss-instruct-75k": load_dataset("ise-uiuc/Magicoder-OSS-Instruct-75K", split="train"),
        "evol-instruct-110k": load_dataset("ise-uiuc/Magicoder-Evol-Instruct-110K", split="train"),
    }
    rows = {name: list(ds) for name, ds in sets.items()}
else:
    from magicoder.data.sources import StdlibPairs

    rows = {
        "stdlib-functions": StdlibPairs(name="stdlib-functions", kind="functions").load(),
        "stdlib-methods": StdlibPairs(name="stdlib-methods", kind="methods").load(),
    }
for name, items in rows.items():
    with open(out / f"{name}.jsonl", "w") as f:
        for row in items:
            f.write(json.dumps(row) + "\n")
PY

names=()
for file in "$OUT"/data/*.jsonl; do
  name="$(basename "$file" .jsonl)"
  names+=("$name=$file")
  # One report per dataset: languages, token lengths, closest-HumanEval similarity.
  magicoder-data-report "inputs=[$file]" humaneval_path="$HUMANEVAL" logger=none \
    hydra.run.dir="$OUT/data-report/$name"
done
python experiments/contamination/joint_similarity.py --humaneval "$HUMANEVAL" \
  --out "$OUT/joint" "${names[@]}"

if [ "$SCALE" = laptop ]; then
  dest="$ROOT/experiments/$STUDY/laptop-report"
  rm -rf "$dest"
  mkdir -p "$dest"
  cp "$OUT"/joint/joint_similarity.{md,csv} "$dest"/
  for dir in "$OUT"/data-report/*/; do
    name="$(basename "$dir")"
    mkdir -p "$dest/$name"
    cp "$dir"/report.md "$dir"/*.png "$dest/$name"/
  done
  # The study's summary the notebook checks for: the joint table.
  cp "$OUT/joint/joint_similarity.md" "$dest/report.md"
fi
finish
