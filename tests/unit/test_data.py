"""Data sources, the stdlib pair extractor, the held-out split and the resumable sampler."""

from __future__ import annotations

import json

import pytest

from magicoder.data.datamodule import ResumableSampler, is_validation
from magicoder.data.sources import JsonlFile, convert_rows, to_instruction_row
from magicoder.data.stdlib import extract_pairs, stdlib_files

SOURCE = '''
def documented(a, b):
    """Return the sum of a and b, saturating at one hundred."""
    total = a + b
    return min(total, 100)


def undocumented(x):
    return x


class Box:
    def size(self):
        """Number of items currently held in the box."""
        count = len(self.items)
        return count

    def tiny(self):
        """Too short a docstring? No: four words here."""
        return 1
'''


def test_extract_pairs_takes_docstring_as_instruction_and_code_as_response():
    rows = extract_pairs(SOURCE, "example")
    assert [r["qualname"] for r in rows] == ["documented", "Box.size"]
    first = rows[0]
    assert first["instruction"] == "Return the sum of a and b, saturating at one hundred."
    assert first["response"] == (
        "```python\ndef documented(a, b):\n    total = a + b\n    return min(total, 100)\n```"
    )
    assert '"""' not in rows[1]["response"]
    assert rows[1]["response"].startswith("```python\ndef size(self):\n")
    assert {r["lang"] for r in rows} == {"python"}


def test_extract_pairs_ignores_unparsable_source():
    assert extract_pairs("def broken(:\n", "x") == []


def test_stdlib_files_are_sorted_and_skip_tests():
    files = stdlib_files(max_files=50)
    assert files == sorted(files)
    assert len(files) == 50
    assert not any("test" in p.parts for p in stdlib_files())


def test_oss_instruct_rows_become_the_papers_instruction():
    row = to_instruction_row(
        {"problem": "Sum a list.", "solution": "sum(xs)", "lang": "python"}, "oss_instruct"
    )
    assert row == {
        "instruction": "Write a solution to the following coding problem:\nSum a list.",
        "response": "sum(xs)",
        "lang": "python",
    }


def test_rows_without_instruction_or_response_are_skipped_with_a_warning(caplog):
    rows = convert_rows(
        [{"instruction": "a", "response": "b"}, {"instruction": "a"}, {"response": " "}, {}],
        "instruction",
        "demo",
    )
    assert rows == [{"instruction": "a", "response": "b"}]
    assert "skipped 3 rows" in caplog.text


def test_dataset_with_no_usable_row_is_an_error():
    with pytest.raises(ValueError, match="no usable row"):
        convert_rows([{"text": "x"}], "instruction", "demo")


def test_missing_jsonl_names_the_path_and_the_setting(tmp_path):
    missing = tmp_path / "nope.jsonl"
    with pytest.raises(FileNotFoundError, match=r"nope\.jsonl.*data\.path"):
        JsonlFile(name="x", path=str(missing)).check()


def test_jsonl_file_loads_rows(tmp_path):
    path = tmp_path / "rows.jsonl"
    path.write_text(
        "\n".join(json.dumps({"instruction": f"i{n}", "response": f"r{n}"}) for n in range(3))
        + "\n"
    )
    assert [r["response"] for r in JsonlFile(name="x", path=str(path)).load()] == ["r0", "r1", "r2"]


def test_validation_split_is_deterministic_and_near_the_fraction():
    keys = [f"instruction {n}" for n in range(20_000)]
    held = [k for k in keys if is_validation(k, 0.05)]
    assert held == [k for k in keys if is_validation(k, 0.05)]
    assert 0.04 < len(held) / len(keys) < 0.06
    assert not any(is_validation(k, 0.0) for k in keys)


def test_sampler_shuffles_per_epoch_and_resumes_mid_epoch():
    full = ResumableSampler(10, seed=3)
    first = list(full)
    assert sorted(first) == list(range(10))
    full.set_epoch(1)
    assert list(full) != first
    full.set_epoch(0)
    resumed = ResumableSampler(10, seed=3, skip_fn=lambda: 4)
    assert list(resumed) == first[4:]


def test_sampler_shards_over_ranks_without_overlap():
    shards = [list(ResumableSampler(11, seed=0, rank=r, world_size=2)) for r in range(2)]
    assert len(shards[0]) == len(shards[1]) == 5
    assert not set(shards[0]) & set(shards[1])


def test_jsonl_rows_that_are_not_objects_count_as_skipped(tmp_path, caplog):
    path = tmp_path / "rows.jsonl"
    path.write_text('{"instruction": "i", "response": "r"}\n[1, 2]\n\n"text"\n')
    assert len(JsonlFile(name="x", path=str(path)).load()) == 1
    assert "skipped 2 rows" in caplog.text


def test_invalid_json_names_the_file_and_line(tmp_path):
    path = tmp_path / "rows.jsonl"
    path.write_text('{"instruction": "i", "response": "r"}\n{oops\n')
    with pytest.raises(ValueError, match=r"rows\.jsonl:2 is not valid JSON"):
        JsonlFile(name="x", path=str(path)).load()


def test_completion_pair_splits_after_the_docstring_with_no_template():
    from magicoder.data.sources import completion_pairs_from_source
    from magicoder.prompts import MAGICODER_PROMPT

    rows = completion_pairs_from_source(SOURCE)
    by_name = {row["prompt"].split("(")[0]: row for row in rows}
    assert set(by_name) == {"def documented", "def size", "def tiny"}
    row = by_name["def documented"]
    assert row["prompt"] == (
        'def documented(a, b):\n    """Return the sum of a and b, saturating at one hundred."""'
    )
    assert row["completion"] == "\n    total = a + b\n    return min(total, 100)"
    template_lines = [line for line in MAGICODER_PROMPT.splitlines() if line.strip()]
    assert not any(line in row["prompt"] + row["completion"] for line in template_lines[:3])


def test_completion_pair_skips_unusable_docstrings():
    from magicoder.data.sources import completion_pair

    assert completion_pair('def f():\n    """"""\n    return 1', "") is None
    assert completion_pair('def f():\n    """----"""\n    return 1', "----") is None
    assert completion_pair('def f():\n    "one line"\n    return 1', "one line") is None
    single = completion_pair("def f():\n    '''Doc.'''\n    return 1", "Doc.")
    assert single == {"prompt": "def f():\n    '''Doc.'''", "completion": "\n    return 1"}
