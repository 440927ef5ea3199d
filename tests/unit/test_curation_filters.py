"""The paper's cleaning filters, near-duplicate removal and formatting, on small rows."""

from __future__ import annotations

import pytest

from magicoder.curation.app import format_rows
from magicoder.curation.filters import (
    copied_code_filter,
    detect_codeblocks,
    exact_dedup,
    missing_fields_filter,
    remove_all_whitespace,
    solution_copies_problem,
)
from magicoder.curation.near_dedup import near_dedup, shingles
from magicoder.prompts import OSS_INSTRUCT_INSTRUCTION


def row(i: int, seed: str, problem: str, solution: str, **extra) -> dict:
    return {"index": i, "seed": seed, "problem": problem, "solution": solution, **extra}


def test_exact_dedup_ignores_whitespace_and_keeps_the_first():
    rows = [
        row(0, "a = 1", "Add numbers.", "def add(a, b): return a + b"),
        row(1, "b = 2", "Add  numbers.\n", "other"),  # same problem up to whitespace
        row(2, "a=1", "P2", "S2"),  # same seed
        row(3, "c", "P3", "def add(a,b):\n    return a+b"),  # same solution
        row(4, "d", "P4", "S4"),
    ]
    kept, rejected = exact_dedup(rows, ["seed", "problem", "solution"])
    assert [r["index"] for r in kept] == [0, 4]
    assert [(r["index"], r["reason"], r["duplicate_of"]) for r in rejected] == [
        (1, "duplicate problem", 0),
        (2, "duplicate seed", 0),
        (3, "duplicate solution", 0),
    ]
    assert all(r["step"] == "exact_dedup" for r in rejected)


def test_a_rejected_row_does_not_block_later_rows():
    rows = [row(0, "s", "P", "S"), row(1, "s", "Q", "T"), row(2, "x", "Q", "U")]
    kept, _ = exact_dedup(rows, ["seed", "problem", "solution"])
    # Row 1 is a duplicate seed, so its problem "Q" is not remembered: row 2 stays.
    assert [r["index"] for r in kept] == [0, 2]


def test_detect_codeblocks_pairs_fences_line_by_line():
    text = "intro\n```python\nx = 1\n```\nmid\n  ```\ny = 2\n  ```\n```\nunclosed\n"
    assert detect_codeblocks(text) == ["x = 1\n", "y = 2\n"]
    assert remove_all_whitespace(" a\tb\nc ") == "abc"


def test_solution_that_copies_a_problem_block_is_dropped():
    problem = "Fix this:\n```python\ndef f(x):\n  return x\n```\n"
    copy = "Here it is:\n```python\ndef f(x):\n    return x\n```\n"
    fixed = "```python\ndef f(x):\n    return x + 1\n```\n"
    assert solution_copies_problem(problem, copy)
    assert not solution_copies_problem(problem, fixed)
    kept, rejected = copied_code_filter([row(0, "", problem, copy), row(1, "", problem, fixed)])
    assert [r["index"] for r in kept] == [1]
    assert rejected[0]["reason"] == "solution copies a problem code block"


def test_rows_without_text_fields_are_rejected_at_load():
    kept, rejected = missing_fields_filter(
        [row(0, "", "P", "S"), {"index": 1, "problem": "P"}, row(2, "", " ", "S")],
        ["problem", "solution"],
    )
    assert [r["index"] for r in kept] == [0]
    assert [r["reason"] for r in rejected] == [
        "missing or empty solution",
        "missing or empty problem",
    ]


def test_near_dedup_drops_near_copies_and_keeps_distinct_rows():
    base = " ".join(f"word{i}" for i in range(80))
    near = base.replace("word40", "changed")
    other = " ".join(f"token{i}" for i in range(80))
    rows = [row(0, "", base, "s"), row(1, "", near, "s"), row(2, "", other, "s")]
    kept, rejected = near_dedup(rows, ["problem", "solution"], threshold=0.7)
    assert [r["index"] for r in kept] == [0, 2]
    assert rejected[0]["index"] == 1 and rejected[0]["duplicate_of"] == 0
    assert rejected[0]["reason"].startswith("near duplicate (Jaccard ≈ 0.")
    assert len(shingles("a b", 5)) == 1 and shingles("", 5) == set()
    with pytest.raises(ValueError, match="threshold"):
        near_dedup(rows, ["problem"], threshold=0)


def test_formatting_into_training_rows():
    raw = [row(0, "seed", "Do X.", "```python\nx()\n```", lang="python")]
    kept, rejected = format_rows(raw, "oss_instruct", "instruction")
    assert rejected == []
    assert kept[0]["instruction"] == OSS_INSTRUCT_INSTRUCTION.format(problem="Do X.")
    assert kept[0]["response"] == "```python\nx()\n```"
    assert kept[0]["lang"] == "python" and "problem" not in kept[0]
    assert format_rows(raw, "oss_instruct", "oss_instruct")[0] == raw
    with pytest.raises(ValueError, match="format=oss_instruct"):
        format_rows([{"instruction": "i", "response": "r"}], "instruction", "oss_instruct")
