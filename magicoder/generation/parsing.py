"""Teacher responses → problem and solution, or the reason they are rejected.

The parser is Magicoder's ``parse_problem_solution``: the first line that mentions
``[Problem Description]`` (any case) opens the problem, the first line that mentions
``[Solution]`` opens the solution; the header lines themselves are dropped and both parts are
stripped. A response is kept only when the teacher stopped on its own (``finish_reason ==
"stop"``) and both parts are non-empty.

Prompt versions that ask for tests (``prompts.PROMPTS_WITH_TESTS``) parse with
``with_tests=True``: the first line after ``[Solution]`` that mentions ``[Tests]`` ends the
solution and opens the tests. A response without tests is still kept (with ``tests=""``): the
``execute`` curation step rejects it as ``no_tests``, so the funnel shows how many had them.
"""

from __future__ import annotations

from dataclasses import dataclass

PROBLEM_HEADER = "[problem description]"
SOLUTION_HEADER = "[solution]"
TESTS_HEADER = "[tests]"


@dataclass(frozen=True)
class ParsedResponse:
    """The outcome of parsing one response.

    Attributes:
        problem: The problem text (None when rejected).
        solution: The solution text (None when rejected).
        reason: Why the response was rejected (None when accepted).
        tests: The tests section ("" when there was none; None when tests were not asked for
            or the response was rejected).
    """

    problem: str | None = None
    solution: str | None = None
    reason: str | None = None
    tests: str | None = None

    @property
    def accepted(self) -> bool:
        """Whether both sections were found and the response finished normally."""
        return self.reason is None


def split_sections(text: str) -> tuple[str, str] | str:
    """Split a response into its ``[Problem Description]`` and ``[Solution]`` sections.

    Args:
        text: The teacher's message.

    Returns:
        ``(problem, solution)``, both stripped (possibly empty), or the reason the sections
        could not be found.
    """
    lines = text.splitlines(keepends=True)
    problem_at: int | None = None
    solution_at: int | None = None
    for i, line in enumerate(lines):
        lower = line.lower()
        if problem_at is None and PROBLEM_HEADER in lower:
            problem_at = i
        if solution_at is None and SOLUTION_HEADER in lower:
            solution_at = i
    if problem_at is None and solution_at is None:
        return "no [Problem Description] and no [Solution] section"
    if problem_at is None:
        return "no [Problem Description] section"
    if solution_at is None:
        return "no [Solution] section"
    if problem_at >= solution_at:
        return "[Solution] does not come after [Problem Description]"
    problem = "".join(lines[problem_at + 1 : solution_at]).strip()
    solution = "".join(lines[solution_at + 1 :]).strip()
    return problem, solution


def split_tests(solution: str) -> tuple[str, str]:
    """Split a solution section at its first line that mentions ``[Tests]``.

    Returns:
        ``(solution, tests)``, both stripped; tests is "" when there is no such line.
    """
    lines = solution.splitlines(keepends=True)
    for i, line in enumerate(lines):
        if TESTS_HEADER in line.lower():
            return "".join(lines[:i]).strip(), "".join(lines[i + 1 :]).strip()
    return solution.strip(), ""


def parse_response(
    content: str | None, finish_reason: str | None, *, with_tests: bool = False
) -> ParsedResponse:
    """Judge one chat completion as the paper does.

    Args:
        content: The assistant message (None when the server sent none).
        finish_reason: The choice's ``finish_reason``.
        with_tests: Also split off a ``[Tests]`` section after the solution (prompt versions
            that ask for tests).

    Returns:
        The problem and solution, or the rejection reason.
    """
    if finish_reason != "stop":
        return ParsedResponse(reason=f"finish_reason={finish_reason}")
    if not content or not content.strip():
        return ParsedResponse(reason="empty response")
    sections = split_sections(content)
    if isinstance(sections, str):
        return ParsedResponse(reason=sections)
    problem, solution = sections
    tests = None
    if with_tests:
        solution, tests = split_tests(solution)
    if not problem:
        return ParsedResponse(reason="empty problem")
    if not solution:
        return ParsedResponse(reason="empty solution")
    return ParsedResponse(problem=problem, solution=solution, tests=tests)
