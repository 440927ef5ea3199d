"""Named evaluation protocols, and the fingerprint that says which one a number was made under.

A protocol fixes everything that moves pass@1 besides the model: the benchmark releases, how
each completion becomes a program (the sanitizer), the prompts, the decoding and the generation
length. Numbers are comparable only when their fingerprints (:func:`protocol_record`'s ``id``)
are equal; the paper's numbers only beside ``magicoder-paper``.

Both protocols prompt every model with ``MAGICODER_PROMPT`` and the paper's instructions and
response prefixes (``prompt: magicoder``). A model scored in its own chat template
(``eval.prompt=chat-template``, how EvalPlus prompts chat models: the instruct baselines) is
scored under another protocol than the named one: its record is ``custom``, labelled
``<protocol>, prompt=chat-template``, and its ``prompt_sha256`` hashes the chat template it
was given, so two runs share an id only when their models were prompted with the same text.

- ``magicoder-paper``: what the paper's numbers come from -- the evalplus commit its repository
  pins (1895d2f) scores HumanEval+ v0.1.9 and MBPP+ v0.1.0 (399 tasks); HumanEval+ programs are
  ``prompt + completion`` as generated, MBPP+ programs go through that commit's line-based
  ``tools/sanitize.py`` first (its experiments/README.md); greedy, 512 new tokens.
- ``evalplus-current``: today's releases (HumanEval+ v0.1.10, MBPP+ v0.2.0, 378 tasks) and
  today's tree-sitter sanitizer on both, as ``evalplus.codegen`` does; greedy, 512 new tokens.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from typing import Any

from magicoder.prompts import (
    CHAT_SPLITTER,
    CODE_FENCE,
    EVALPLUS_INSTRUCTION_PREFIX,
    EVALPLUS_RESPONSE_PREFIX,
    HUMANEVAL_INSTRUCTION,
    HUMANEVAL_RESPONSE_PREFIX,
    MAGICODER_PROMPT,
    MBPP_INSTRUCTION,
    MBPP_RESPONSE_PREFIX,
    PROMPT_FORMATS,
)

SANITIZERS: tuple[str, ...] = ("none", "legacy", "tree-sitter")
"""How a completion becomes the scored program: as generated; the paper's line-based sanitizer
(evalplus commit 1895d2f's ``tools/sanitize.py``); evalplus's current tree-sitter sanitizer."""


@dataclass(frozen=True)
class Protocol:
    """One complete evaluation protocol.

    Attributes:
        name: How configs name it (``eval.protocol``).
        versions: Benchmark -> EvalPlus release scored.
        sanitizers: Benchmark -> one of :data:`SANITIZERS`.
        max_new_tokens: Generation length.
        prompt: How models are prompted, one of :data:`~magicoder.prompts.PROMPT_FORMATS`.
    """

    name: str
    versions: dict[str, str]
    sanitizers: dict[str, str]
    max_new_tokens: int = 512
    prompt: str = "magicoder"

    def release_file(self, benchmark: str) -> str:
        """The release's file name, as evalplus publishes it (``HumanEvalPlus-v0.1.9.jsonl.gz``)."""
        stem = "HumanEvalPlus" if benchmark == "humaneval" else "MbppPlus"
        return f"{stem}-{self.versions[benchmark]}.jsonl.gz"


PROTOCOLS: dict[str, Protocol] = {
    "magicoder-paper": Protocol(
        name="magicoder-paper",
        versions={"humaneval": "v0.1.9", "mbpp": "v0.1.0"},
        sanitizers={"humaneval": "none", "mbpp": "legacy"},
    ),
    "evalplus-current": Protocol(
        name="evalplus-current",
        versions={"humaneval": "v0.1.10", "mbpp": "v0.2.0"},
        sanitizers={"humaneval": "tree-sitter", "mbpp": "tree-sitter"},
    ),
}

PAPER_PROTOCOL = "magicoder-paper"
"""The protocol behind the paper's numbers: the only one they are shown beside."""


def get_protocol(name: str) -> Protocol:
    """The protocol called ``name``.

    Raises:
        ValueError: For an unknown name, listing the known ones.
    """
    if name not in PROTOCOLS:
        raise ValueError(
            f"eval.protocol={name!r} is unknown; choose one of {sorted(PROTOCOLS)} "
            "(magicoder-paper: the paper's numbers; evalplus-current: today's releases)."
        )
    return PROTOCOLS[name]


def prompt_sha256(prompt: str = "magicoder", chat_template: str | None = None) -> str | None:
    """Hash of every prompt text evaluation uses under the prompt format ``prompt``.

    Args:
        prompt: ``magicoder``: the training template, the instructions and response prefixes;
            ``chat-template``: the chat template with EvalPlus's prefixes.
        chat_template: For ``chat-template``, the template source the tokenizer applied.

    Returns:
        The hex digest; None for ``chat-template`` without a template (scoring a samples
        file, whose prompts this process never saw).
    """
    if prompt == "magicoder":
        texts = [
            MAGICODER_PROMPT,
            HUMANEVAL_INSTRUCTION,
            HUMANEVAL_RESPONSE_PREFIX,
            MBPP_INSTRUCTION,
            MBPP_RESPONSE_PREFIX,
            CODE_FENCE,
        ]
    elif prompt == "chat-template":
        if chat_template is None:
            return None
        texts = [
            chat_template,
            EVALPLUS_INSTRUCTION_PREFIX,
            EVALPLUS_RESPONSE_PREFIX,
            CHAT_SPLITTER,
            CODE_FENCE,
        ]
    else:
        raise ValueError(f"eval.prompt={prompt!r} is unknown; use one of {PROMPT_FORMATS}.")
    return hashlib.sha256("\x00".join(texts).encode()).hexdigest()


def protocol_record(
    protocol: Protocol,
    *,
    benchmark: str,
    version: str,
    dataset_hash: str,
    n_tasks: int,
    n_total: int,
    sanitizer: str,
    max_new_tokens: int,
    prompt: str = "magicoder",
    chat_template: str | None = None,
) -> dict[str, Any]:
    """What one benchmark's number was made under, and whether that is ``protocol``.

    Args:
        prompt: The prompt format used (``eval.prompt``).
        chat_template: With ``prompt="chat-template"``, the template the tokenizer applied.

    Returns:
        ``{"name", "id", "label", "fields"}``: ``fields`` are the settings that move pass@1,
        ``id`` a hash of them (equal ids: comparable numbers), ``name`` the protocol when every
        field is the protocol's and "custom" otherwise, and ``label`` says how it differs.
    """
    fields = {
        "benchmark": benchmark,
        "version": version,
        "dataset_hash": dataset_hash,
        "n_tasks": n_tasks,
        "sanitizer": sanitizer,
        "prompt": prompt,
        "prompt_sha256": prompt_sha256(prompt, chat_template),
        "decoding": "greedy",
        "max_new_tokens": max_new_tokens,
        "stop": CODE_FENCE,
    }
    expected = {
        "version": protocol.versions[benchmark],
        "n_tasks": n_total,
        "sanitizer": protocol.sanitizers[benchmark],
        "max_new_tokens": protocol.max_new_tokens,
        "prompt": protocol.prompt,
    }
    differences = [f"{key}={fields[key]}" for key, want in expected.items() if fields[key] != want]
    digest = hashlib.sha256(json.dumps(fields, sort_keys=True).encode()).hexdigest()[:16]
    return {
        "name": "custom" if differences else protocol.name,
        "id": digest,
        "label": ", ".join([protocol.name, *differences]),
        "fields": fields,
    }
