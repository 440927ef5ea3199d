"""Every prompt template the framework uses, in one place.

The texts reproduce the Magicoder paper and its repository exactly; change them only with a
new ``*_VERSION`` so that fingerprints of generated data and results change with them.
"""

from __future__ import annotations

MAGICODER_PROMPT = """You are an exceptionally intelligent coding assistant that consistently delivers accurate and reliable responses to user instructions.

@@ Instruction
{instruction}

@@ Response
{response}"""
"""Training and inference template; loss is taken on ``{response}`` (plus EOS) only."""

OSS_INSTRUCT_INSTRUCTION = "Write a solution to the following coding problem:\n{problem}"
"""How an OSS-Instruct ``problem`` becomes an instruction; its ``solution`` is the response."""

HUMANEVAL_INSTRUCTION = "Write a solution to the following problem:\n```python\n{prompt}\n```"
HUMANEVAL_RESPONSE_PREFIX = "```python\n{prompt}"
MBPP_INSTRUCTION = (
    "{description} Your code should satisfy the following assertion:\n```python\n{assertion}\n```"
)
MBPP_RESPONSE_PREFIX = "```python"
CODE_FENCE = "```"
"""Evaluation completions are cut at the first closing fence."""


def format_prompt(instruction: str, response: str = "") -> str:
    """Fill ``MAGICODER_PROMPT``; with ``response=""`` this is the generation prefix.

    Args:
        instruction: The user's instruction.
        response: The assistant's response, or a response prefix to continue from.

    Returns:
        The full prompt text.
    """
    return MAGICODER_PROMPT.format(instruction=instruction, response=response)
