"""Every prompt, byte for byte, against the texts of the paper's repository.

The expected strings are typed out from ise-uiuc/magicoder: ``src/magicoder/prompt_template.py``
(training template, OSS-Instruct instruction), ``src/magicoder/generate_data.py`` and
``data/prompt.txt`` (teacher prompts), ``experiments/text2code.py`` (evaluation instructions
and response prefixes). A change to any prompt must change these on purpose.
"""

from __future__ import annotations

import gzip
import json
from pathlib import Path

from magicoder.evaluation.benchmarks import humaneval_prompt, mbpp_prompt
from magicoder.prompts import (
    MAGICODER_PROMPT,
    OSS_INSTRUCT_INSTRUCTION,
    OSS_INSTRUCT_SYSTEM_PROMPT,
    OSS_INSTRUCT_USER_PROMPT,
    format_prompt,
)

PAPER_MAGICODER_PROMPT = (
    "You are an exceptionally intelligent coding assistant that consistently delivers "
    "accurate and reliable responses to user instructions.\n"
    "\n"
    "@@ Instruction\n"
    "{instruction}\n"
    "\n"
    "@@ Response\n"
    "{response}"
)
PAPER_SRC_INSTRUCT_INSTRUCTION = "Write a solution to the following coding problem:\n{problem}"
PAPER_SYSTEM = (
    "You are exceptionally skilled at crafting high-quality programming problems and offering "
    "precise solutions."
)
PAPER_USER_PROMPT = (
    "Please gain inspiration from the following random code snippet to create a high-quality "
    "programming problem. Present your output in two distinct sections: [Problem Description] "
    "and [Solution].\n"
    "\n"
    "Code snippet for inspiration:\n"
    "```\n"
    "{code}\n"
    "```\n"
    "\n"
    "Guidelines for each section:\n"
    "\n"
    "1. [Problem Description]: This should be **completely self-contained**, providing all the "
    "contextual information one needs to understand and solve the problem. Assume common "
    "programming knowledge, but ensure that any specific context, variables, or code snippets "
    "pertinent to this problem are explicitly included.\n"
    "\n"
    "2. [Solution]: Offer a comprehensive, **correct** solution that accurately addresses the "
    "[Problem Description] you provided."
)


def test_training_and_generation_prompts_are_the_papers() -> None:
    assert MAGICODER_PROMPT == PAPER_MAGICODER_PROMPT
    assert OSS_INSTRUCT_INSTRUCTION == PAPER_SRC_INSTRUCT_INSTRUCTION
    assert OSS_INSTRUCT_SYSTEM_PROMPT == PAPER_SYSTEM
    assert OSS_INSTRUCT_USER_PROMPT == PAPER_USER_PROMPT


def _rows(path: Path) -> list[dict]:
    with gzip.open(path, "rt", encoding="utf-8") as file:
        return [json.loads(line) for line in file]


def _paper_humaneval(problem: dict) -> tuple[str, str]:
    prompt = problem["prompt"].strip()
    return (
        f"Write a solution to the following problem:\n```python\n{prompt}\n```",
        f"```python\n{prompt}",
    )


def _paper_mbpp(problem: dict) -> tuple[str, str]:
    text = problem["prompt"]
    text = text[text.index('"""') + 3 : text.rindex('"""')]
    assertion_at = text.index("assert")
    instruction = text[:assertion_at].strip()
    if not instruction.endswith("."):
        instruction += "."
    assertion = text[assertion_at:].strip()
    return (
        f"{instruction} Your code should satisfy the following assertion:\n"
        f"```python\n{assertion}\n```",
        "```python",
    )


def test_evaluation_prompts_are_the_papers_on_every_task(data_dir: Path) -> None:
    for file, ours, theirs in [
        ("HumanEvalPlus-v0.1.9.jsonl.gz", humaneval_prompt, _paper_humaneval),
        ("HumanEvalPlus-v0.1.10.jsonl.gz", humaneval_prompt, _paper_humaneval),
        ("MbppPlus-v0.1.0.jsonl.gz", mbpp_prompt, _paper_mbpp),
        ("MbppPlus-v0.2.0.jsonl.gz", mbpp_prompt, _paper_mbpp),
    ]:
        rows = _rows(data_dir / file)
        mismatched = [row["task_id"] for row in rows if ours(row) != theirs(row)]
        assert not mismatched, (file, mismatched[:5])
    # The full text the model sees for HumanEval/0: template, instruction, response prefix.
    first = _rows(data_dir / "HumanEvalPlus-v0.1.9.jsonl.gz")[0]
    instruction, prefix = _paper_humaneval(first)
    assert format_prompt(*humaneval_prompt(first)) == PAPER_MAGICODER_PROMPT.format(
        instruction=instruction, response=prefix
    )
