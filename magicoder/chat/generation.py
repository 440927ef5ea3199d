"""Stream one model's response to one instruction, decoded the way evaluation decodes.

The prompt is :func:`magicoder.prompts.format_prompt` (``MAGICODER_PROMPT``) and the
``generate`` arguments are :func:`magicoder.evaluation.generation.greedy_generate_kwargs`;
only sampling (``temperature > 0``) adds to them. With the defaults (greedy, no stop string,
no response prefix) the streamed text equals ``generate_completions(..., stop=None)`` of the
same prompt.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Iterator
from typing import Any

import torch
from transformers import TextIteratorStreamer

from magicoder.chat.settings import ChatSettings
from magicoder.evaluation.generation import greedy_generate_kwargs
from magicoder.prompts import format_prompt

logger = logging.getLogger(__name__)


def context_length(model: Any) -> int | None:
    """The most tokens ``model`` reads (prompt plus response), or None when it does not say."""
    value = getattr(model.config, "max_position_embeddings", None)
    return int(value) if value else None


def prepare_prompt(
    model: Any, tokenizer: Any, instruction: str, settings: ChatSettings
) -> tuple[dict[str, Any], int]:
    """Tokenize ``instruction`` in the Magicoder prompt and fit the response into the context.

    Args:
        model: The causal LM (its device and context length are used).
        tokenizer: Its tokenizer.
        instruction: What the user typed.
        settings: The generation settings.

    Returns:
        The model inputs (on the model's device) and how many new tokens fit: the configured
        ``max_new_tokens``, or fewer when the prompt leaves less room.

    Raises:
        ValueError: When the instruction is empty, or the prompt alone fills the context.
    """
    if not instruction or not instruction.strip():
        raise ValueError("The instruction is empty: type what the model should write.")
    prompt = format_prompt(instruction, settings.response_prefix)
    inputs = tokenizer([prompt], return_tensors="pt").to(model.device)
    n_prompt = int(inputs["input_ids"].shape[1])
    limit = context_length(model)
    if limit is None:
        return dict(inputs), settings.max_new_tokens
    room = limit - n_prompt
    if room < 1:
        raise ValueError(
            f"The instruction is too long: with the prompt template it is {n_prompt} tokens, "
            f"and this model reads at most {limit} (max_position_embeddings). Shorten it by "
            f"at least {1 - room} tokens."
        )
    if room < settings.max_new_tokens:
        logger.info(
            "The prompt is %d tokens: %d of generation.max_new_tokens=%d fit in the %d-token "
            "context",
            n_prompt,
            room,
            settings.max_new_tokens,
            limit,
        )
    return dict(inputs), min(settings.max_new_tokens, room)


def generate_kwargs(
    model: Any, tokenizer: Any, settings: ChatSettings, max_new_tokens: int
) -> dict[str, Any]:
    """Evaluation's greedy ``generate`` arguments, plus sampling when ``temperature > 0``."""
    kwargs = greedy_generate_kwargs(model, tokenizer, max_new_tokens, settings.stop)
    if settings.temperature > 0:
        kwargs.update(do_sample=True, temperature=settings.temperature, top_p=settings.top_p)
    return kwargs


def stream_response(
    model: Any, tokenizer: Any, instruction: str, settings: ChatSettings
) -> Iterator[str]:
    """Generate the response to ``instruction``, yielding its text piece by piece.

    The response prefix comes first; the pieces after it are what the model generates, as
    transformers' ``TextIteratorStreamer`` decodes them (special tokens skipped), so they join
    to the decoding of all new tokens. With a stop string, the text ends right after it.

    Args:
        model: A causal LM on the device to generate on, in eval mode.
        tokenizer: Its tokenizer.
        instruction: What the user typed.
        settings: The generation settings.

    Yields:
        Pieces of the response, in order.

    Raises:
        ValueError: As :func:`prepare_prompt` does (before anything is yielded).
        Exception: Whatever ``generate`` raised in its thread, once the stream ends.
    """
    inputs, max_new_tokens = prepare_prompt(model, tokenizer, instruction, settings)
    streamer = TextIteratorStreamer(tokenizer, skip_prompt=True, skip_special_tokens=True)
    kwargs = generate_kwargs(model, tokenizer, settings, max_new_tokens)
    failure: list[BaseException] = []

    def generate() -> None:
        try:
            with torch.inference_mode():
                model.generate(**inputs, **kwargs, streamer=streamer)
        except BaseException as err:  # re-raised in the consuming thread below
            failure.append(err)
            streamer.end()

    thread = threading.Thread(target=generate, daemon=True)
    thread.start()
    if settings.response_prefix:
        yield settings.response_prefix
    text, ended = "", False
    try:
        for piece in streamer:
            if settings.stop is not None and settings.stop in text + piece:
                # The stop string is kept, as evaluation's generation keeps the token ending it.
                end = (text + piece).index(settings.stop) + len(settings.stop)
                yield (text + piece)[len(text) : end]
                break
            text += piece
            if piece:
                yield piece
        else:
            ended = True
    finally:
        # After a stop, or when the consumer leaves early, wait for generate to end, so one
        # model never runs two generations at once (the streamer's end signal comes once).
        if not ended:
            for _ in streamer:
                pass
        thread.join()
    if failure:
        raise failure[0]


def complete_response(model: Any, tokenizer: Any, instruction: str, settings: ChatSettings) -> str:
    """The whole streamed response of :func:`stream_response`."""
    return "".join(stream_response(model, tokenizer, instruction, settings))
