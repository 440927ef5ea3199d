"""The seed-document script of the comment–function baseline, run as a user runs it, with the
hub corpus replaced by a local one (the bigcode datasets cannot be reached here)."""

from __future__ import annotations

import json
import runpy
import sys
from pathlib import Path

from magicoder.data import comment_pairs

SCRIPT = (
    Path(__file__).resolve().parents[2]
    / "experiments"
    / "comment-function-baseline"
    / "collect_seed_documents.py"
)


def test_the_script_writes_a_file_the_source_reads(tmp_path: Path, monkeypatch):
    corpus = {"rust": [{"content": "<filename>a.rs\n/// One.\nfn one() {\n    1\n}\n"}]}
    asked = []

    def documents(lang: str, max_documents: int) -> list[dict]:
        asked.append((lang, max_documents))
        return corpus[lang]

    monkeypatch.setattr(comment_pairs, "hub_documents", documents)
    rows = tmp_path / "oss-instruct.jsonl"
    rows.write_text(json.dumps({"lang": "rust", "raw_index": 0, "seed": "fn one() {\n"}) + "\n")
    out = tmp_path / "docs.jsonl"
    argv = [str(SCRIPT), "--out", str(out), "--oss-instruct", str(rows), "--max-documents", "5"]
    monkeypatch.setattr(sys, "argv", argv)
    runpy.run_path(str(SCRIPT), run_name="__main__")
    assert asked == [("rust", 5)]
    (document,) = [json.loads(line) for line in out.read_text().splitlines()]
    assert document["content"] == "/// One.\nfn one() {\n    1\n}\n"
    covered, rest = comment_pairs.comment_function_pairs([document])
    assert covered == [
        {
            "prompt": "/// One.\nfn one() {\n",
            "completion": "    1\n}",
            "lang": "rust",
            "source": "document 1",
        }
    ]
    assert rest == []
