"""Turn a generated completion into the program EvalPlus scores, by one of three sanitizers.

- ``none``: the program as generated (HumanEval+: ``prompt + completion``, what evalplus builds
  from a ``{"task_id", "completion"}`` sample; MBPP+: the completion).
- ``legacy``: the line-based sanitizer the paper's MBPP+ numbers went through --
  ``tools/sanitize.py`` of the evalplus commit Magicoder's repository pins (1895d2f), run on
  ``prompt + "\\n" + completion`` as that script builds it. evalplus 0.3.1 ships a later
  rewrite of it as ``evalplus.lecacy_sanitize``, which behaves differently (e.g. it drops an
  entry point without a ``return`` line), so it is reimplemented here from the pinned commit.
- ``tree-sitter``: evalplus's current sanitizer (``evalplus.sanitize.sanitize``: keep imports and
  the definitions the entry point needs), falling back to the program as generated when it
  fails or returns nothing.
"""

from __future__ import annotations

import ast
import logging
from typing import Any

from magicoder.evaluation.protocols import SANITIZERS
from magicoder.prompts import CODE_FENCE

logger = logging.getLogger(__name__)


def cut_completion(completion: str) -> str:
    """Everything before the first code fence (the paper's text2code post-processing)."""
    index = completion.find(CODE_FENCE)
    return completion if index == -1 else completion[:index]


def assemble_solution(
    benchmark_name: str, problem: dict[str, Any], completion: str, sanitizer: str = "tree-sitter"
) -> str:
    """The full program EvalPlus scores for one raw completion.

    Args:
        benchmark_name: "humaneval" or "mbpp".
        problem: The evalplus problem (needs "prompt" and "entry_point").
        completion: The raw generated text (everything after the response prefix); it is cut
            at the first code fence first.
        sanitizer: One of :data:`~magicoder.evaluation.protocols.SANITIZERS`.

    Returns:
        The program text.

    Raises:
        ValueError: For an unknown benchmark or sanitizer.
    """
    if benchmark_name not in ("humaneval", "mbpp"):
        raise ValueError(f"Unknown benchmark {benchmark_name!r}; choose one of humaneval, mbpp.")
    code = cut_completion(completion)
    if sanitizer == "legacy":
        # tools/sanitize.py's rule for a {"task_id", "completion"} sample.
        return sanitize_program(benchmark_name, problem, problem["prompt"] + "\n" + code, sanitizer)
    # The HumanEval+ response prefix ends with the (stripped) prompt: the model continues it.
    program = problem["prompt"] + code if benchmark_name == "humaneval" else code
    return sanitize_program(benchmark_name, problem, program, sanitizer)


def sanitize_program(
    benchmark_name: str, problem: dict[str, Any], program: str, sanitizer: str
) -> str:
    """Apply ``sanitizer`` to a full program (a samples file's ``solution``)."""
    if sanitizer == "none":
        return program
    if sanitizer == "legacy":
        humaneval_prompt = problem["prompt"] if benchmark_name == "humaneval" else None
        return legacy_sanitize(program, problem["entry_point"], humaneval_prompt)
    if sanitizer == "tree-sitter":
        return tree_sitter_sanitize(program, problem["entry_point"])
    raise ValueError(
        f"eval.sanitize.{benchmark_name}={sanitizer!r} is unknown; use one of {SANITIZERS}."
    )


def tree_sitter_sanitize(program: str, entry_point: str) -> str:
    """evalplus's current sanitizer, or ``program`` unchanged when it fails or empties it."""
    # Imported here: evalplus.sanitize pulls in tree-sitter and evalplus.data (datasets, pandas).
    from evalplus.sanitize import sanitize as evalplus_sanitize

    try:
        sanitized = evalplus_sanitize(program, entrypoint=entry_point)
    except Exception as exc:  # any failure of the sanitizer means "keep it as generated"
        logger.debug("sanitize failed on %s (%s); keeping it as is", entry_point, exc)
        return program
    return sanitized if sanitized.strip() else program


def legacy_sanitize(code: str, entry_point: str, humaneval_prompt: str | None = None) -> str:
    """The paper's MBPP+ post-processing: evalplus 1895d2f's ``tools/sanitize.py``, step by step.

    1. Keep the body of the first fenced block, if the text has one.
    2. HumanEval only: put the prompt's text before ``def <entry_point>`` (its imports) in
       front of the first definition of the entry point.
    3. From the first ``def <entry_point>`` on: widen 3-space indents to 4, and cut at the first
       non-blank line that is neither indented nor a ``def``.
    4. Drop every top-level function after the first line that does not parse, unless it is the
       entry point.

    Args:
        code: ``prompt + "\\n" + completion``, as the script builds it from a sample.
        entry_point: The function the tests call.
        humaneval_prompt: The HumanEval+ prompt, for step 2; None for MBPP+.

    Returns:
        The sanitized program, stripped.
    """
    text = "\n" + code
    for opener in ("\n```python\n", "\n```\n"):
        _, found, rest = text.partition(opener)
        if found:
            text = "\n" + rest.split("\n```", 1)[0]
    definition = "def " + entry_point
    if humaneval_prompt is not None:
        imports = humaneval_prompt.split(definition)[0]
        text = imports + definition + text.split(definition, 1)[-1]
    before, *after = text.split(definition)
    tail = _widen_three_space_indents(definition + definition.join(after))
    text = before + _cut_at_first_unindented_line(tail)
    head, *functions = text.split("\ndef ")
    kept = [
        function
        for function in functions
        if function.strip().startswith((entry_point + " ", entry_point + "("))
        or _parses("\ndef " + function)
    ]
    return "\ndef ".join([head, *kept]).strip()


def _widen_three_space_indents(code: str) -> str:
    """Lines indented by exactly 3 spaces get a 4th; every line ends with a newline."""
    lines = []
    for line in code.splitlines():
        indent = len(line) - len(line.lstrip())
        lines.append((" " if indent == 3 else "") + line + "\n")
    return "".join(lines)


def _cut_at_first_unindented_line(code: str) -> str:
    """Lines up to the first non-blank line that is not indented and not a ``def``."""
    lines = code.splitlines()
    for index, line in enumerate(lines):
        if line.strip() and not line.startswith("def ") and not line[0].isspace():
            return "\n".join(lines[:index])
    return "\n".join(lines)


def _parses(code: str) -> bool:
    try:
        ast.parse(code)
    except (SyntaxError, MemoryError, ValueError):
        return False
    return True
