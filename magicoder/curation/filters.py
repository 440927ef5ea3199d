"""The paper's cleaning filters (Magicoder's ``clean_data.py``) as pure functions.

Each filter takes rows and returns ``(kept, rejected)``; a rejected row is the row plus
``step`` and ``reason`` (and ``duplicate_of`` for duplicates), in input order.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

Row = dict[str, Any]


def remove_all_whitespace(text: str) -> str:
    """``text`` with every whitespace character removed (the paper's dedup key)."""
    return "".join(text.split())


def reject(row: Row, step: str, reason: str, **extra: Any) -> Row:
    """The rejects-file record for ``row``."""
    return {**row, "step": step, "reason": reason, **extra}


def exact_dedup(rows: Sequence[Row], fields: Sequence[str]) -> tuple[list[Row], list[Row]]:
    """Keep a row only if none of its ``fields`` (whitespace removed) was seen in a kept row.

    This is the paper's ``filter_same_seed_problem_solution``: seeds, problems and solutions
    each have their own set; the first row with a value wins; a rejected row adds nothing.
    Fields a row lacks are ignored.

    Args:
        rows: Rows in order.
        fields: Fields to compare, e.g. ``["seed", "problem", "solution"]``.

    Returns:
        ``(kept, rejected)``; reasons are ``"duplicate <field>"`` (the first field that
        matched, in ``fields`` order) with ``duplicate_of`` = the kept row's ``index``.
    """
    seen: dict[str, dict[str, Any]] = {field: {} for field in fields}
    kept: list[Row] = []
    rejected: list[Row] = []
    for position, row in enumerate(rows):
        keys = {f: remove_all_whitespace(str(row[f])) for f in fields if row.get(f) is not None}
        hit = next((f for f in fields if f in keys and keys[f] in seen[f]), None)
        if hit is not None:
            rejected.append(
                reject(row, "exact_dedup", f"duplicate {hit}", duplicate_of=seen[hit][keys[hit]])
            )
            continue
        for f, key in keys.items():
            seen[f][key] = row.get("index", position)
        kept.append(row)
    return kept, rejected


def detect_codeblocks(text: str) -> list[str]:
    """Contents of the fenced code blocks of a markdown text (the paper's line-based rule).

    A line starting (after indentation) with a fence opens a block and the next such line
    closes it; an unclosed block is ignored.
    """
    lines = text.splitlines(keepends=True)
    blocks: list[str] = []
    start: int | None = None
    for i, line in enumerate(lines):
        if line.strip().startswith("```"):
            if start is None:
                start = i
            else:
                blocks.append("".join(lines[start + 1 : i]))
                start = None
    return blocks


def solution_copies_problem(problem: str, solution: str) -> bool:
    """Whether a code block of the solution equals one of the problem (whitespace ignored)."""
    problem_blocks = {remove_all_whitespace(b) for b in detect_codeblocks(problem)}
    solution_blocks = (remove_all_whitespace(b) for b in detect_codeblocks(solution))
    return any(s in problem_blocks for s in solution_blocks)


def copied_code_filter(
    rows: Sequence[Row], problem_field: str = "problem", solution_field: str = "solution"
) -> tuple[list[Row], list[Row]]:
    """Drop rows whose solution just repeats a code block of the problem (the paper's
    ``filter_same_codeblocks``).

    Returns:
        ``(kept, rejected)`` with reason ``"solution copies a problem code block"``.
    """
    kept: list[Row] = []
    rejected: list[Row] = []
    for row in rows:
        problem, solution = str(row.get(problem_field, "")), str(row.get(solution_field, ""))
        if solution_copies_problem(problem, solution):
            rejected.append(reject(row, "copied_code", "solution copies a problem code block"))
        else:
            kept.append(row)
    return kept, rejected


def missing_fields_filter(
    rows: Sequence[Row], fields: Sequence[str]
) -> tuple[list[Row], list[Row]]:
    """Drop rows without a non-empty string in each of ``fields``."""
    kept: list[Row] = []
    rejected: list[Row] = []
    for row in rows:
        missing = [f for f in fields if not isinstance(row.get(f), str) or not row[f].strip()]
        if missing:
            rejected.append(reject(row, "load", f"missing or empty {', '.join(missing)}"))
        else:
            kept.append(row)
    return kept, rejected
