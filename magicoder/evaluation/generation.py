"""Batched greedy generation with a Hugging Face causal LM, stopping at the closing code fence."""

from __future__ import annotations

import logging
import time
from typing import Any

import torch
from tqdm.auto import tqdm

from magicoder.prompts import CODE_FENCE

logger = logging.getLogger(__name__)


def generate_completions(
    model: Any,
    tokenizer: Any,
    prompts: list[str],
    *,
    batch_size: int,
    max_new_tokens: int,
    stop: str | None = CODE_FENCE,
) -> list[str]:
    """Greedily continue each prompt and return only the newly generated text.

    Prompts are sorted by token length (longest first, so an out-of-memory batch shows up at
    once) and batched with left padding; each sequence stops at its own ``stop`` string (via
    transformers' ``stop_strings``), at EOS, or after ``max_new_tokens``. The tokenizer's
    padding side and pad token are restored afterwards, and so is the model's train/eval mode.

    Args:
        model: A causal LM with ``generate`` (e.g. ``AutoModelForCausalLM``).
        tokenizer: Its tokenizer. Without a pad token, EOS is used for padding.
        prompts: Full prompt texts (template plus response prefix).
        batch_size: Prompts per ``generate`` call.
        max_new_tokens: Most tokens generated per prompt.
        stop: Stop a sequence once it generates this string (None: only EOS / length). The
            returned text may run past it within the last token; cut it afterwards.

    Returns:
        The decoded continuations (special tokens skipped), in the order of ``prompts``.

    Raises:
        ValueError: On a non-positive ``batch_size`` / ``max_new_tokens``, or a tokenizer with
            neither a pad nor an EOS token.
    """
    if batch_size < 1:
        raise ValueError(f"eval.batch_size={batch_size!r} must be >= 1.")
    if max_new_tokens < 1:
        raise ValueError(f"eval.max_new_tokens={max_new_tokens!r} must be >= 1.")
    if not prompts:
        return []
    if tokenizer.pad_token is None and tokenizer.eos_token is None:
        raise ValueError(
            f"{type(tokenizer).__name__} has neither a pad nor an EOS token; batched generation "
            "needs one to pad with (set eos_token in the model config)."
        )

    saved_side, saved_pad, was_training = (
        tokenizer.padding_side,
        tokenizer.pad_token,
        model.training,
    )
    tokenizer.padding_side = "left"
    if tokenizer.pad_token is None:
        tokenizer.pad_token = tokenizer.eos_token
    eos_token_id = model.generation_config.eos_token_id
    if eos_token_id is None:
        eos_token_id = tokenizer.eos_token_id
    stop_kwargs: dict[str, Any] = (
        {"stop_strings": [stop], "tokenizer": tokenizer} if stop is not None else {}
    )
    lengths = [len(ids) for ids in tokenizer(prompts)["input_ids"]]
    order = sorted(range(len(prompts)), key=lambda i: -lengths[i])
    outputs: list[str] = [""] * len(prompts)
    started, n_new_tokens = time.perf_counter(), 0
    model.eval()
    try:
        with torch.inference_mode():
            for start in tqdm(
                range(0, len(order), batch_size), desc="generate", unit="batch", disable=None
            ):
                indices = order[start : start + batch_size]
                batch = tokenizer(
                    [prompts[i] for i in indices], return_tensors="pt", padding=True
                ).to(model.device)
                generated = model.generate(
                    **batch,
                    do_sample=False,
                    num_beams=1,
                    max_new_tokens=max_new_tokens,
                    use_cache=True,
                    pad_token_id=tokenizer.pad_token_id,
                    eos_token_id=eos_token_id,
                    **stop_kwargs,
                )
                new_tokens = generated[:, batch["input_ids"].shape[1] :]
                n_new_tokens += int((new_tokens != tokenizer.pad_token_id).sum())
                texts = tokenizer.batch_decode(new_tokens, skip_special_tokens=True)
                for i, text in zip(indices, texts, strict=True):
                    outputs[i] = text
    finally:
        tokenizer.padding_side = saved_side
        tokenizer.pad_token = saved_pad
        model.train(was_training)
    elapsed = time.perf_counter() - started
    logger.info(
        "Generated %d completions (%d new tokens) in %.1f s (%.0f tokens/s)",
        len(prompts),
        n_new_tokens,
        elapsed,
        n_new_tokens / max(elapsed, 1e-9),
    )
    return outputs
