"""Every prompt template the framework uses, in one place.

The texts reproduce the Magicoder paper and its repository exactly; change them only with a
new ``*_VERSION`` so that fingerprints of generated data and results change with them.
"""

from __future__ import annotations

from typing import Any

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

# Evaluation of chat models in their own chat template (``eval.prompt=chat-template``), as
# EvalPlus prompts them: ``evalplus.provider.utility.make_raw_chat_prompt`` with the prefixes
# ``evalplus.codegen.run_codegen`` passes. The texts are kept here, not imported, because
# evalplus holds the prefixes as locals of ``run_codegen``; a test pins the function against
# evalplus's own.
PROMPT_FORMATS: tuple[str, ...] = ("magicoder", "chat-template")
"""How evaluation prompts a model: ``magicoder`` (``MAGICODER_PROMPT`` with the paper's
instructions and response prefixes) or ``chat-template`` (the tokenizer's chat template)."""

EVALPLUS_INSTRUCTION_PREFIX = "Please provide a self-contained Python script that solves the following problem in a markdown code block:"
EVALPLUS_RESPONSE_PREFIX = "Below is a Python script with a self-contained function that solves the problem and passes corresponding tests:"
CHAT_SPLITTER = "-[[]]-this-is-really-our-highest-priority-[[]]-"
"""evalplus's ``_MAGIC_SPLITTER_``: the chat is rendered with it as the assistant's code, and
the prompt is the text before it."""


def format_prompt(instruction: str, response: str = "") -> str:
    """Fill ``MAGICODER_PROMPT``; with ``response=""`` this is the generation prefix.

    Args:
        instruction: The user's instruction.
        response: The assistant's response, or a response prefix to continue from.

    Returns:
        The full prompt text.
    """
    return MAGICODER_PROMPT.format(instruction=instruction, response=response)


def format_chat_prompt(task_prompt: str, tokenizer: Any) -> str:
    """The evaluation prompt of a chat model, as EvalPlus builds it (``make_raw_chat_prompt``).

    The user asks for a script in :data:`EVALPLUS_INSTRUCTION_PREFIX` with the task's prompt in
    a fence; the assistant's turn starts with :data:`EVALPLUS_RESPONSE_PREFIX` and an opened
    Python code fence, which the model continues with the whole program (not a continuation
    of the task's prompt, as with ``magicoder``).

    Args:
        task_prompt: The benchmark task's ``prompt`` (stripped here, as evalplus does).
        tokenizer: A tokenizer whose ``chat_template`` is set.

    Returns:
        The rendered chat up to where the assistant's code begins.

    Raises:
        ValueError: If the tokenizer has no chat template.
    """
    if getattr(tokenizer, "chat_template", None) is None:
        raise ValueError(
            "format_chat_prompt needs a tokenizer with a chat_template; this one has none"
        )
    user = f"{EVALPLUS_INSTRUCTION_PREFIX}\n```\n{task_prompt.strip()}\n```\n"
    assistant = f"{EVALPLUS_RESPONSE_PREFIX}\n```python\n{CHAT_SPLITTER}\n```\n"
    chat = [{"role": "user", "content": user}, {"role": "assistant", "content": assistant}]
    return tokenizer.apply_chat_template(chat, tokenize=False).split(CHAT_SPLITTER)[0]


# OSS-Instruct generation (``magicoder-generate``), verbatim from Magicoder's
# ``src/magicoder/generate_data.py`` (system prompt) and ``data/prompt.txt`` (user prompt).
# A changed prompt gets a new version key; the version is part of the fingerprint in the name
# of every generated file, so data made with different prompts never mixes.
OSS_INSTRUCT_SYSTEM_PROMPT = "You are exceptionally skilled at crafting high-quality programming problems and offering precise solutions."
"""The teacher's system message."""

OSS_INSTRUCT_USER_PROMPT = """Please gain inspiration from the following random code snippet to create a high-quality programming problem. Present your output in two distinct sections: [Problem Description] and [Solution].

Code snippet for inspiration:
```
{code}
```

Guidelines for each section:

1. [Problem Description]: This should be **completely self-contained**, providing all the contextual information one needs to understand and solve the problem. Assume common programming knowledge, but ensure that any specific context, variables, or code snippets pertinent to this problem are explicitly included.

2. [Solution]: Offer a comprehensive, **correct** solution that accurately addresses the [Problem Description] you provided."""
"""The teacher's user message; ``{code}`` is the seed snippet."""

OSS_INSTRUCT_PROMPT_VERSION = "oss-instruct-v1"
"""The version of the pair above, the default of ``magicoder-generate``'s ``prompt`` key."""

# Execution-verified OSS-Instruct (our text, not the paper's): the teacher also writes tests,
# so ``magicoder-curate steps=[...,execute]`` can keep only solutions that pass them (the
# approach of SelfCodeAlign and KodCode). The paper's prompt stays the default.
OSS_INSTRUCT_TESTS_USER_PROMPT = """Please gain inspiration from the following random code snippet to create a high-quality programming problem, a solution to it, and tests that check the solution. Present your output in three distinct sections: [Problem Description], [Solution] and [Tests].

Code snippet for inspiration:
```
{code}
```

Guidelines for each section:

1. [Problem Description]: This should be **completely self-contained**, providing all the contextual information one needs to understand and solve the problem. Assume common programming knowledge, but ensure that any specific context, variables, or code snippets pertinent to this problem are explicitly included. Name the functions or classes the solution must define.

2. [Solution]: Offer a comprehensive, **correct** solution that accurately addresses the [Problem Description] you provided, as one code block that defines everything the problem asks for.

3. [Tests]: One code block, in the language of the solution, that tests it with assertions (in Python: plain `assert` statements). It runs directly after the solution's code in the same file, so it must not import or redefine the solution. It must be deterministic, need no input, files or network, and finish within a few seconds."""
"""The user message of the verified version; ``{code}`` is the seed snippet."""

OSS_INSTRUCT_TESTS_PROMPT_VERSION = "oss-instruct-tests-v1"
"""The version asking for problem, solution and tests (``prompt=oss-instruct-tests-v1``)."""

GENERATION_PROMPTS: dict[str, tuple[str, str]] = {
    OSS_INSTRUCT_PROMPT_VERSION: (OSS_INSTRUCT_SYSTEM_PROMPT, OSS_INSTRUCT_USER_PROMPT),
    OSS_INSTRUCT_TESTS_PROMPT_VERSION: (OSS_INSTRUCT_SYSTEM_PROMPT, OSS_INSTRUCT_TESTS_USER_PROMPT),
}
"""Generation prompt versions: version -> (system prompt, user prompt with ``{code}``)."""

PROMPTS_WITH_TESTS = frozenset({OSS_INSTRUCT_TESTS_PROMPT_VERSION})
"""Versions whose responses carry a ``[Tests]`` section (parsed into the row's ``tests``)."""
