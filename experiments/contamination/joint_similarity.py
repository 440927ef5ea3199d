"""TF-IDF similarity to HumanEval for several instruction files in ONE vector space.

``magicoder-data-report`` fits its TF-IDF vectorizer on the rows of one report plus HumanEval,
so two datasets reported separately are scored with different IDF weights, and several inputs
given to one report are pooled with no per-file breakdown. This script fits one vectorizer on
every file's rows together with HumanEval (``magicoder.curation.report.humaneval_similarity``)
and reports each file's distribution of closest-HumanEval cosine similarity:

    python experiments/contamination/joint_similarity.py --humaneval HumanEval.jsonl.gz \
        --out outputs/experiments/contamination/laptop/joint name=rows.jsonl other=rows2.jsonl
"""

from __future__ import annotations

import argparse
import csv
import json
from pathlib import Path

import numpy as np

from magicoder.curation.benchmarks import read_records
from magicoder.curation.report import humaneval_similarity, problem_solution

QUANTILES = (0.5, 0.9, 0.99)
THRESHOLDS = (0.3, 0.5)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--humaneval", type=Path, required=True, help="HumanEval jsonl(.gz)")
    parser.add_argument("--out", type=Path, required=True, help="output directory")
    parser.add_argument("inputs", nargs="+", help="NAME=FILE.jsonl, one per dataset")
    args = parser.parse_args()

    names: list[str] = []
    texts: list[str] = []
    for spec in args.inputs:
        name, sep, path = spec.partition("=")
        if not sep:
            raise ValueError(f"input {spec!r} must be NAME=FILE.jsonl")
        rows = list(read_records(Path(path)))
        if not rows:
            raise ValueError(f"input {path!r} has no rows")
        for row in rows:
            problem, solution = problem_solution(row)
            names.append(name)
            texts.append(problem + " " + solution)
    scores, _ = humaneval_similarity(texts, list(read_records(args.humaneval)))

    table = []
    labels = np.array(names)
    for name in dict.fromkeys(names):
        sims = scores[labels == name]
        entry = {"dataset": name, "rows": int(sims.size), "mean": round(float(sims.mean()), 4)}
        for q in QUANTILES:
            entry[f"p{int(q * 100)}"] = round(float(np.quantile(sims, q)), 4)
        for t in THRESHOLDS:
            entry[f"share>{t}"] = round(float((sims > t).mean()), 4)
        table.append(entry)

    args.out.mkdir(parents=True, exist_ok=True)
    with open(args.out / "joint_similarity.csv", "w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=list(table[0]))
        writer.writeheader()
        writer.writerows(table)
    (args.out / "joint_similarity.json").write_text(json.dumps(table, indent=2) + "\n")
    header = list(table[0])
    lines = [
        "# TF-IDF similarity to the closest HumanEval problem (one vectorizer, all datasets)",
        "",
        "| " + " | ".join(header) + " |",
        "|" + "---|" * len(header),
        *("| " + " | ".join(str(row[k]) for k in header) + " |" for row in table),
    ]
    (args.out / "joint_similarity.md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
