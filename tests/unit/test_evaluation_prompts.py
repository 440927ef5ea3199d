"""Benchmark prompts, completion cutting and program assembly, on real HumanEval+/MBPP+ rows."""

from __future__ import annotations

import gzip
import json
from pathlib import Path

import pytest

from magicoder.evaluation.benchmarks import humaneval_prompt, mbpp_prompt
from magicoder.evaluation.sanitizers import assemble_solution, cut_completion
from magicoder.prompts import format_prompt


def _first_row(path: Path) -> dict:
    with gzip.open(path, "rt", encoding="utf-8") as file:
        return json.loads(file.readline())


@pytest.fixture(scope="module")
def humaneval_0(data_dir: Path) -> dict:
    row = _first_row(data_dir / "HumanEvalPlus-v0.1.10.jsonl.gz")
    assert row["task_id"] == "HumanEval/0"
    return row


@pytest.fixture(scope="module")
def mbpp_2(data_dir: Path) -> dict:
    row = _first_row(data_dir / "MbppPlus-v0.2.0.jsonl.gz")
    assert row["task_id"] == "Mbpp/2"
    return row


HUMANEVAL_0_PROMPT = '''from typing import List


def has_close_elements(numbers: List[float], threshold: float) -> bool:
    """ Check if in given list of numbers, are any two numbers closer to each other than
    given threshold.
    >>> has_close_elements([1.0, 2.0, 3.0], 0.5)
    False
    >>> has_close_elements([1.0, 2.8, 3.0, 4.0, 5.0, 2.0], 0.3)
    True
    """'''


def test_humaneval_prompt_uses_the_stripped_prompt_in_both_places(humaneval_0: dict) -> None:
    instruction, prefix = humaneval_prompt(humaneval_0)
    assert instruction == (
        "Write a solution to the following problem:\n```python\n" + HUMANEVAL_0_PROMPT + "\n```"
    )
    assert prefix == "```python\n" + HUMANEVAL_0_PROMPT
    assert humaneval_0["prompt"] == HUMANEVAL_0_PROMPT + "\n"


def test_generation_prompt_ends_with_the_response_prefix(humaneval_0: dict) -> None:
    text = format_prompt(*humaneval_prompt(humaneval_0))
    assert text.startswith("You are an exceptionally intelligent coding assistant")
    assert "@@ Instruction\nWrite a solution to the following problem:\n```python\nfrom typing" in (
        text
    )
    assert text.endswith("\n\n@@ Response\n```python\n" + HUMANEVAL_0_PROMPT)


def test_mbpp_prompt_splits_description_and_assertion(mbpp_2: dict) -> None:
    instruction, prefix = mbpp_prompt(mbpp_2)
    assert instruction == (
        "Write a function to find the shared elements from the given two lists. "
        "Your code should satisfy the following assertion:\n```python\n"
        "assert set(similar_elements((3, 4, 5, 6),(5, 7, 4, 10))) == set((4, 5))\n```"
    )
    assert prefix == "```python"


def test_mbpp_prompt_adds_a_period_only_when_missing() -> None:
    problem = {"task_id": "Mbpp/0", "prompt": '"""\nDouble x\nassert f(1) == 2\n"""\n'}
    assert mbpp_prompt(problem)[0].startswith("Double x. Your code should satisfy")
    problem = {"task_id": "Mbpp/0", "prompt": '"""\nDouble x.\nassert f(1) == 2\n"""\n'}
    assert mbpp_prompt(problem)[0].startswith("Double x. Your code should satisfy")


def test_mbpp_prompt_rejects_a_prompt_without_assertion() -> None:
    with pytest.raises(ValueError, match="Mbpp/7"):
        mbpp_prompt({"task_id": "Mbpp/7", "prompt": "def f(): pass\n"})


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("\n    return 1\n```\n\nExplanation: ...", "\n    return 1\n"),
        ("\n    return 1\n", "\n    return 1\n"),
        ("```", ""),
        ("a\n```python\nb\n```", "a\n"),
        ("", ""),
    ],
)
def test_cut_completion_stops_at_the_first_fence(text: str, expected: str) -> None:
    assert cut_completion(text) == expected


def test_humaneval_program_is_prompt_plus_cut_completion(humaneval_0: dict) -> None:
    body = "    return any(abs(a - b) < threshold for i, a in enumerate(numbers)"
    body += " for b in numbers[i + 1:])\n"
    completion = "\n" + body + "```\n\nThis checks every pair."
    program = assemble_solution("humaneval", humaneval_0, completion, "none")
    assert program == humaneval_0["prompt"] + "\n" + body
    namespace: dict = {}
    exec(program, namespace)  # our own fixed text, not model output
    assert namespace["has_close_elements"]([1.0, 2.8, 3.0], 0.3) is True


def test_mbpp_program_is_the_cut_completion(mbpp_2: dict) -> None:
    code = "\ndef similar_elements(a, b):\n    return tuple(set(a) & set(b))\n"
    assert assemble_solution("mbpp", mbpp_2, code + "```\nmore", "none") == code


def test_sanitize_keeps_what_the_entry_point_needs(mbpp_2: dict) -> None:
    completion = (
        "\nimport math\n\n"
        "def helper(a):\n    return set(a)\n\n"
        "def similar_elements(a, b):\n    return tuple(helper(a) & helper(b))\n\n"
        "def unused():\n    return 0\n\n"
        "print(similar_elements((1, 2), (2, 3)))\n"
        "assert similar_elements((1,), (1,)) == (1,)\n```"
    )
    program = assemble_solution("mbpp", mbpp_2, completion, "tree-sitter")
    assert "import math" in program
    assert "def helper" in program and "def similar_elements" in program
    assert "unused" not in program and "print(" not in program and "assert " not in program


def test_sanitize_falls_back_to_the_raw_program_when_nothing_parses(mbpp_2: dict) -> None:
    assert assemble_solution("mbpp", mbpp_2, "no code here ((", "tree-sitter") == "no code here (("


def test_assemble_rejects_unknown_benchmarks(mbpp_2: dict) -> None:
    with pytest.raises(ValueError, match="apps"):
        assemble_solution("apps", mbpp_2, "", "none")
    with pytest.raises(ValueError, match="eval.sanitize.mbpp='black'"):
        assemble_solution("mbpp", mbpp_2, "", "black")


# The paper's MBPP+ sanitizer (evalplus 1895d2f tools/sanitize.py) on ``prompt + "\n" + code``.
# Its expected outputs below follow that script step by step; evalplus 0.3.1's
# ``lecacy_sanitize`` is a later rewrite and gives other programs for some of them.


def test_legacy_keeps_helpers_and_cuts_at_the_first_unindented_statement(mbpp_2: dict) -> None:
    completion = (
        "import math\n"
        "def similar_elements(a, b):\n   return tuple(set(a) & set(b))\n\n"
        "def helper(:\n    pass\n"
        "def other(x):\n    return x\n"
        "print(similar_elements((1, 2), (2, 3)))\n"
        "def after_print(x):\n    return x\n"
    )
    program = assemble_solution("mbpp", mbpp_2, completion, "legacy")
    # The docstring prompt and the import before the entry point stay; the 3-space body is
    # widened to 4; the function that does not parse goes; everything from the first
    # unindented non-def line (the print) on is cut.
    assert program == (
        mbpp_2["prompt"].strip() + "\n\nimport math\n"
        "def similar_elements(a, b):\n    return tuple(set(a) & set(b))\n\n"
        "def other(x):\n    return x"
    )


def test_legacy_differs_from_evalplus_0_3_1_lecacy_sanitize(mbpp_2: dict) -> None:
    from evalplus.lecacy_sanitize import sanitize as later_rewrite

    # An entry point without a "    return " line: the pinned script keeps it; the later
    # rewrite drops every definition and leaves only the prompt.
    completion = "def similar_elements(a, b):\n    yield from set(a) & set(b)\n"
    ours = assemble_solution("mbpp", mbpp_2, completion, "legacy")
    assert "def similar_elements(a, b):\n    yield from" in ours
    later = later_rewrite(mbpp_2["prompt"] + "\n" + completion, "similar_elements")
    assert "def similar_elements" not in later


def test_legacy_humaneval_is_prompt_newline_completion(humaneval_0: dict) -> None:
    # The script joins prompt and completion with a newline (evalplus.evaluate does not).
    program = assemble_solution("humaneval", humaneval_0, "    return False\n```", "legacy")
    assert program == humaneval_0["prompt"] + "\n    return False"
