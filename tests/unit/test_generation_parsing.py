"""Teacher responses: the paper's section parser and acceptance rule."""

from __future__ import annotations

import pytest

from magicoder.generation.parsing import parse_response, split_sections

WELL_FORMED = """[Problem Description]
You are given a list of integers. Write a function `pairs(nums, k)` that counts the pairs
whose sum is `k`.

[Solution]
```python
def pairs(nums, k):
    seen, count = {}, 0
    for n in nums:
        count += seen.get(k - n, 0)
        seen[n] = seen.get(n, 0) + 1
    return count
```
"""


def test_well_formed_response_is_accepted():
    parsed = parse_response(WELL_FORMED, "stop")
    assert parsed.accepted
    assert parsed.problem is not None and parsed.solution is not None
    assert parsed.problem.startswith("You are given a list of integers.")
    assert parsed.problem.endswith("whose sum is `k`.")
    assert parsed.solution.startswith("```python\ndef pairs(nums, k):")
    assert parsed.solution.endswith("```")


@pytest.mark.parametrize(
    "problem_header,solution_header",
    [
        ("**[Problem Description]**", "**[Solution]**"),
        ("### [Problem Description]", "### [Solution]"),
        ("[PROBLEM DESCRIPTION]", "[solution]"),
    ],
)
def test_decorated_and_differently_cased_headers_are_found(problem_header, solution_header):
    code = "def add(a, b):\n    return a + b\n"
    text = f"Sure!\n{problem_header}\nAdd two numbers.\n{solution_header}\n{code}"
    parsed = parse_response(text, "stop")
    assert parsed.problem == "Add two numbers."
    assert parsed.solution == "def add(a, b):\n    return a + b"


def test_text_around_the_headers_is_dropped_and_the_rest_kept():
    text = "Intro\n[Problem Description]: ignored same-line text\nP\n[Solution] also ignored\nS\n"
    assert split_sections(text) == ("P", "S")


@pytest.mark.parametrize(
    "content,finish,reason",
    [
        (WELL_FORMED, "length", "finish_reason=length"),
        (WELL_FORMED, "content_filter", "finish_reason=content_filter"),
        (WELL_FORMED, None, "finish_reason=None"),
        (None, "stop", "empty response"),
        ("   \n", "stop", "empty response"),
        ("just some code\n", "stop", "no [Problem Description] and no [Solution] section"),
        ("[Problem Description]\nP\n", "stop", "no [Solution] section"),
        ("[Solution]\nS\n", "stop", "no [Problem Description] section"),
        ("[Solution]\nS\n[Problem Description]\nP\n", "stop", "[Solution] does not come after"),
        ("[Problem Description]\n\n[Solution]\nS\n", "stop", "empty problem"),
        ("[Problem Description]\nP\n[Solution]\n  \n", "stop", "empty solution"),
    ],
)
def test_rejections_carry_their_reason(content, finish, reason):
    parsed = parse_response(content, finish)
    assert not parsed.accepted
    assert parsed.problem is None and parsed.solution is None
    assert parsed.reason is not None and parsed.reason.startswith(reason)


def test_both_headers_on_one_line_is_not_a_problem_before_a_solution():
    assert isinstance(split_sections("[Problem Description] [Solution]\nx\n"), str)


WITH_TESTS = (
    WELL_FORMED
    + """
[Tests]
```python
assert pairs([1, 2, 3, 4], 5) == 2
assert pairs([], 1) == 0
```
"""
)


def test_tests_section_is_split_off_the_solution_when_asked_for():
    parsed = parse_response(WITH_TESTS, "stop", with_tests=True)
    assert parsed.accepted
    assert parsed.solution is not None and parsed.solution.endswith("return count\n```")
    assert "[Tests]" not in parsed.solution
    assert parsed.tests == (
        "```python\nassert pairs([1, 2, 3, 4], 5) == 2\nassert pairs([], 1) == 0\n```"
    )


def test_paper_prompt_parsing_ignores_a_tests_section():
    parsed = parse_response(WITH_TESTS, "stop")
    assert parsed.tests is None
    assert parsed.solution is not None and "[Tests]" in parsed.solution


def test_response_without_tests_is_kept_with_empty_tests():
    parsed = parse_response(WELL_FORMED, "stop", with_tests=True)
    assert parsed.accepted and parsed.tests == ""


def test_tests_prompt_is_a_new_version_beside_the_papers():
    from magicoder.prompts import (
        GENERATION_PROMPTS,
        OSS_INSTRUCT_PROMPT_VERSION,
        OSS_INSTRUCT_TESTS_PROMPT_VERSION,
        PROMPTS_WITH_TESTS,
    )

    system, user = GENERATION_PROMPTS[OSS_INSTRUCT_TESTS_PROMPT_VERSION]
    assert system == GENERATION_PROMPTS[OSS_INSTRUCT_PROMPT_VERSION][0]
    assert "[Tests]" in user and "{code}" in user
    assert PROMPTS_WITH_TESTS == {OSS_INSTRUCT_TESTS_PROMPT_VERSION}
