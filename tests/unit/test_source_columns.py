"""Column maps: a dataset's own field names become ours before rows are converted."""

from __future__ import annotations

import json
import pickle

import pytest

from magicoder.data.sources import JsonlFile, Source, check_columns, rename_columns


def test_rename_columns_moves_mapped_fields_and_keeps_the_rest():
    record = {"prompt": "p", "output": "o", "id": 7, "instruction": "replaced"}
    row = rename_columns(record, {"instruction": "prompt", "response": "output"})
    assert row == {"instruction": "p", "response": "o", "id": 7}


def test_rename_columns_without_a_map_is_the_identity():
    record = {"instruction": "i", "response": "r"}
    assert rename_columns(record, {}) is record


def test_a_row_lacking_a_mapped_field_lacks_our_field():
    assert rename_columns({"prompt": "p"}, {"response": "output"}) == {"prompt": "p"}


def test_columns_must_name_our_fields():
    with pytest.raises(ValueError, match=r"dataset x: columns names \['answer'\].*instruction"):
        check_columns({"answer": "output"}, "dataset x")
    with pytest.raises(ValueError, match="must map each field to a column name"):
        check_columns({"response": 3}, "dataset x")  # type: ignore[dict-item]


def test_jsonl_file_with_other_field_names_loads_our_rows(tmp_path):
    path = tmp_path / "rows.jsonl"
    records = [
        {"problem_text": "Add.", "answer": "a + b", "language": "python"},
        {"problem_text": "Mul.", "answer": "a * b", "language": "rust"},
    ]
    path.write_text("".join(json.dumps(r) + "\n" for r in records))
    source = JsonlFile(
        name="x",
        path=str(path),
        format="oss_instruct",
        columns={"problem": "problem_text", "solution": "answer", "lang": "language"},
        langs=["rust"],
    )
    (row,) = source.load()
    assert row["instruction"].endswith("Mul.") and row["response"] == "a * b"
    assert row["lang"] == "rust"


def test_connect_is_a_no_op_by_default():
    source = Source(name="x")
    before = pickle.dumps(source)
    assert source.connect(tokenizer=object()) is None
    assert pickle.dumps(source) == before
