"""Tests for magicoder.io.markdown_table, the one markdown-table writer of reports."""

from __future__ import annotations

from magicoder.io import markdown_table


def test_cells_follow_the_columns_and_missing_ones_are_empty() -> None:
    rows = [{"run": "a", "HumanEval": 12.5, "extra": "ignored"}, {"run": "b", "HumanEval": None}]
    assert markdown_table(["run", "stage", "HumanEval"], rows) == (
        "| run | stage | HumanEval |\n|---|---|---|\n| a |  | 12.5 |\n| b |  |  |\n"
    )


def test_float_format_applies_to_floats_only() -> None:
    rows = [{"lang": "python", "rows": 3, "mean": 2 / 3, "flag": True}]
    assert markdown_table(["lang", "rows", "mean", "flag"], rows, float_format=".3f") == (
        "| lang | rows | mean | flag |\n|---|---|---|---|\n| python | 3 | 0.667 | True |\n"
    )


def test_a_cell_cannot_break_the_table() -> None:
    table = markdown_table(["a|b"], [{"a|b": "x | y\nz"}])
    assert table == "| a\\|b |\n|---|\n| x \\| y z |\n"


def test_no_rows_is_a_header() -> None:
    assert markdown_table(["a", "b"], []) == "| a | b |\n|---|---|\n"
