"""Append-only jsonl files: torn lines are cut, nothing else is touched."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from magicoder.io import JsonlAppender, iter_jsonl, read_indices, repair_jsonl


def test_appender_writes_one_complete_line_per_record(tmp_path: Path):
    path = tmp_path / "sub" / "rows.jsonl"
    with JsonlAppender(path) as out:
        out.write({"index": 0, "text": "naïve\nline"})
        out.write({"index": 1})
        # Flushed as written: a reader (or a process killed now) sees both lines.
        assert path.read_text().count("\n") == 2
    assert [r["index"] for r in iter_jsonl(path)] == [0, 1]
    assert next(iter_jsonl(path))["text"] == "naïve\nline"


def test_repair_cuts_only_a_torn_last_line(tmp_path: Path):
    path = tmp_path / "rows.jsonl"
    good = json.dumps({"index": 0}) + "\n" + json.dumps({"index": 1}) + "\n"
    path.write_text(good + '{"index": 2, "seed": "par')
    assert repair_jsonl(path) == len('{"index": 2, "seed": "par')
    assert path.read_text() == good
    assert repair_jsonl(path) == 0
    assert read_indices(path) == [0, 1]


def test_repair_of_a_single_torn_line_and_of_missing_files(tmp_path: Path):
    path = tmp_path / "rows.jsonl"
    path.write_text('{"ind')
    repair_jsonl(path)
    assert path.read_text() == ""
    assert repair_jsonl(tmp_path / "missing.jsonl") == 0
    assert read_indices(tmp_path / "missing.jsonl") == []


def test_repair_scans_back_over_long_lines(tmp_path: Path):
    path = tmp_path / "rows.jsonl"
    line = json.dumps({"index": 0, "seed": "x" * 200_000}) + "\n"
    path.write_text(line + '{"index": 1, "seed": "' + "y" * 150_000)
    repair_jsonl(path)
    assert path.read_text() == line


def test_appender_repairs_before_appending(tmp_path: Path):
    path = tmp_path / "rows.jsonl"
    path.write_text('{"index": 0}\n{"index": 1, "se')
    with JsonlAppender(path) as out:
        out.write({"index": 1})
    assert read_indices(path) == [0, 1]


def test_corrupt_middle_line_is_reported_with_its_number(tmp_path: Path):
    path = tmp_path / "rows.jsonl"
    path.write_text('{"index": 0}\nnot json\n{"index": 2}\n')
    with pytest.raises(ValueError, match=r"rows.jsonl:2 is not valid JSON"):
        read_indices(path)
