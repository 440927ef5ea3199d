"""Supervised fine-tuning examples: prompt formatting, label masking, truncation, collation."""

from __future__ import annotations

from dataclasses import dataclass

import torch
from transformers import PreTrainedTokenizerBase

from magicoder.prompts import format_prompt

IGNORE_INDEX = -100


@dataclass
class EncodedExample:
    """One tokenized example.

    Attributes:
        input_ids: Prompt tokens, then response tokens, then EOS (possibly truncated).
        labels: ``IGNORE_INDEX`` over the prompt, the token ids over response + EOS.
        truncated: Whether the example was cut to ``max_seq_len``.
    """

    input_ids: list[int]
    labels: list[int]
    truncated: bool


def row_parts(row: dict) -> tuple[str, str, bool]:
    """(prompt text, target text, whether the prompt goes into ``MAGICODER_PROMPT``) of a row.

    Instruction rows (``instruction``/``response``) are templated; completion-style rows
    (``prompt``/``completion``, the paper's comment–function baseline) are raw code to continue.

    Raises:
        KeyError: Naming the fields a row needs, when it has neither pair.
    """
    if "instruction" in row and "response" in row:
        return row["instruction"], row["response"], True
    if "prompt" in row and "completion" in row:
        return row["prompt"], row["completion"], False
    raise KeyError(
        f"a training row needs instruction/response (instruction-style) or prompt/completion "
        f"(completion-style); this one has {sorted(row)}"
    )


def encode_row(tokenizer: PreTrainedTokenizerBase, row: dict, max_seq_len: int) -> EncodedExample:
    """:func:`encode_example` on an instruction row or a completion-style row."""
    prompt, target, templated = row_parts(row)
    return encode_example(tokenizer, prompt, target, max_seq_len, template=templated)


def encode_example(
    tokenizer: PreTrainedTokenizerBase,
    instruction: str,
    response: str,
    max_seq_len: int,
    template: bool = True,
) -> EncodedExample:
    """Tokenize one instruction/response pair with ``MAGICODER_PROMPT``.

    Prompt and response are tokenized separately, so the label boundary is exact and the
    response tokenizes the same way whatever precedes it. Loss is taken on the response and
    on the EOS after it; the prompt (and the BOS the tokenizer may add) is masked.

    Args:
        tokenizer: Tokenizer with an EOS token.
        instruction: Instruction text (with ``template=False``: the raw prompt).
        response: Response text.
        max_seq_len: Longest sequence kept; longer examples are cut from the right.
        template: Wrap the instruction in ``MAGICODER_PROMPT``; False encodes it as is (the
            paper's completion-style baseline: BOS + code, then completion + EOS).

    Returns:
        The encoded example; ``labels`` may be all ``IGNORE_INDEX`` when the prompt alone
        fills ``max_seq_len`` (callers drop those).
    """
    if tokenizer.eos_token_id is None:
        raise ValueError(f"tokenizer {tokenizer.name_or_path!r} has no EOS token")
    prompt = format_prompt(instruction) if template else instruction
    prompt_ids = tokenizer(prompt, add_special_tokens=True)["input_ids"]
    response_ids = tokenizer(response, add_special_tokens=False)["input_ids"]
    response_ids = [*response_ids, tokenizer.eos_token_id]
    input_ids = prompt_ids + response_ids
    labels = [IGNORE_INDEX] * len(prompt_ids) + response_ids
    truncated = len(input_ids) > max_seq_len
    return EncodedExample(input_ids[:max_seq_len], labels[:max_seq_len], truncated)


def collate(examples: list[dict], pad_token_id: int) -> dict[str, torch.Tensor]:
    """Right-pad a micro-batch to its longest example.

    Args:
        examples: Dicts with ``input_ids`` and ``labels`` lists.
        pad_token_id: Id written at padded positions (masked from attention and loss).

    Returns:
        ``input_ids``, ``labels`` and ``attention_mask`` tensors of shape (batch, longest).
    """
    longest = max(len(e["input_ids"]) for e in examples)
    input_ids = torch.full((len(examples), longest), pad_token_id, dtype=torch.long)
    labels = torch.full((len(examples), longest), IGNORE_INDEX, dtype=torch.long)
    attention_mask = torch.zeros((len(examples), longest), dtype=torch.long)
    for i, e in enumerate(examples):
        n = len(e["input_ids"])
        input_ids[i, :n] = torch.tensor(e["input_ids"])
        labels[i, :n] = torch.tensor(e["labels"])
        attention_mask[i, :n] = 1
    return {"input_ids": input_ids, "labels": labels, "attention_mask": attention_mask}
