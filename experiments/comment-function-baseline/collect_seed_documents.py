"""Write the seed documents of OSS-Instruct-75K, the input of data=comment-function-75k.

For every OSS-Instruct row, the document its seed snippet was cut from: row ``raw_index`` of
the first 150,000 documents of its language in bigcode/starcoderdata (bigcode/the-stack for
Swift), as the paper's experiments/collect_seed_documents.py finds it
(:func:`magicoder.data.comment_pairs.collect_seed_documents`). Both corpora are gated on the
hub: accept their terms and ``huggingface-cli login`` first. A rerun continues the file.

    python experiments/comment-function-baseline/collect_seed_documents.py \
        --out outputs/experiments/comment-function-baseline/gpu/seed-documents.jsonl
"""

from __future__ import annotations

import argparse
import logging
from pathlib import Path

from magicoder.data.comment_pairs import MAX_DOCUMENTS, collect_seed_documents, hub_documents


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--out", type=Path, required=True, help="the seed-document jsonl")
    parser.add_argument(
        "--oss-instruct",
        default="ise-uiuc/Magicoder-OSS-Instruct-75K",
        help="the OSS-Instruct rows: a hub dataset or a local jsonl file",
    )
    parser.add_argument(
        "--max-documents",
        type=int,
        default=MAX_DOCUMENTS,
        help="documents loaded per language (the paper: 150000; raw_index points into them)",
    )
    args = parser.parse_args()
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")

    import datasets

    if Path(args.oss_instruct).is_file():
        rows = datasets.load_dataset("json", data_files=args.oss_instruct, split="train")
    else:
        rows = datasets.load_dataset(args.oss_instruct, split="train")
    written = collect_seed_documents(
        rows, args.out, lambda lang: hub_documents(lang, args.max_documents)
    )
    logging.info("%s: %d seed documents written", args.out, written)


if __name__ == "__main__":
    main()
