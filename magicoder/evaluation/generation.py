"""Greedy generation for evaluation, stopping at the closing code fence.

Two backends produce the same completions for the same prompts:

- ``hf``: batched ``generate`` of a Hugging Face causal LM (any device). Prompts are sorted
  by length and batched with left padding, decoding uses the KV cache, and each sequence
  stops on its own at the stop string. The batch size is fixed or ``"auto"`` (start at
  :data:`AUTO_BATCH_START` and halve on out-of-memory).
- ``vllm``: vLLM's continuously batched engine (GPU machines with ``vllm`` installed), fed
  the very token ids the ``hf`` backend would see, with the same stop string and cut rule.

Both show progress through :class:`magicoder.progress.Progress`: a bar on a terminal, periodic
log lines (tasks done out of the total, rate, ETA) otherwise.
"""

from __future__ import annotations

import importlib.util
import logging
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Protocol

import torch

from magicoder.memory import release_memory
from magicoder.progress import Progress
from magicoder.prompts import CODE_FENCE

logger = logging.getLogger(__name__)

BACKENDS = ("hf", "vllm")
AUTO_BATCH_START = 64
"""First batch size tried by ``batch_size="auto"``; it halves on out-of-memory errors."""


class CompletionGenerator(Protocol):
    """Greedy completions of ``prompts`` in their order; ``desc`` labels the progress."""

    def __call__(self, prompts: list[str], desc: str = "generate") -> list[str]: ...


def check_batch_size(batch_size: int | str) -> None:
    """Raise unless ``batch_size`` is a positive int or ``"auto"``."""
    if batch_size == "auto":
        return
    if isinstance(batch_size, bool) or not isinstance(batch_size, int) or batch_size < 1:
        raise ValueError(f"eval.batch_size={batch_size!r} must be an integer >= 1 or 'auto'.")


def is_out_of_memory(err: BaseException) -> bool:
    """Whether ``err`` is an accelerator running out of memory (CUDA, or MPS/XPU wording)."""
    if isinstance(err, torch.cuda.OutOfMemoryError):
        return True
    return isinstance(err, RuntimeError) and "out of memory" in str(err).lower()


def generate_completions(
    model: Any,
    tokenizer: Any,
    prompts: list[str],
    *,
    batch_size: int | str,
    max_new_tokens: int,
    stop: str | None = CODE_FENCE,
    desc: str = "generate",
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
        batch_size: Prompts per ``generate`` call, or ``"auto"``: start at
            :data:`AUTO_BATCH_START` (or the number of prompts, if fewer) and halve whenever a
            batch runs out of accelerator memory, keeping the size that fits.
        max_new_tokens: Most tokens generated per prompt.
        stop: Stop a sequence once it generates this string (None: only EOS / length). The
            returned text may run past it within the last token; cut it afterwards.
        desc: Starts each progress line (e.g. "generate humaneval").

    Returns:
        The decoded continuations (special tokens skipped), in the order of ``prompts``.

    Raises:
        ValueError: On a bad ``batch_size`` / ``max_new_tokens``, or a tokenizer with
            neither a pad nor an EOS token.
        torch.cuda.OutOfMemoryError: When a fixed batch size (or, with ``"auto"``, a single
            prompt) does not fit.
    """
    check_batch_size(batch_size)
    if max_new_tokens < 1:
        raise ValueError(f"eval.max_new_tokens={max_new_tokens!r} must be >= 1.")
    if not prompts:
        return []
    _check_can_pad(tokenizer)
    auto = batch_size == "auto"
    size = min(AUTO_BATCH_START, len(prompts)) if auto else int(batch_size)
    with _left_padded_eval(model, tokenizer):
        generate_kwargs = greedy_generate_kwargs(model, tokenizer, max_new_tokens, stop)
        return _generate_longest_first(
            model, tokenizer, prompts, generate_kwargs, size=size, auto=auto, desc=desc
        )


def _check_can_pad(tokenizer: Any) -> None:
    if tokenizer.pad_token is None and tokenizer.eos_token is None:
        raise ValueError(
            f"{type(tokenizer).__name__} has neither a pad nor an EOS token; batched generation "
            "needs one to pad with (set eos_token in the model config)."
        )


@contextmanager
def _left_padded_eval(model: Any, tokenizer: Any) -> Iterator[None]:
    """Left padding (EOS when there is no pad token) and eval mode, restored on exit."""
    saved_side, saved_pad, was_training = (
        tokenizer.padding_side,
        tokenizer.pad_token,
        model.training,
    )
    # Decoder-only models continue from the last position, so padding must go on the left.
    tokenizer.padding_side = "left"
    if tokenizer.pad_token is None:
        tokenizer.pad_token = tokenizer.eos_token
    model.eval()
    try:
        yield
    finally:
        tokenizer.padding_side = saved_side
        tokenizer.pad_token = saved_pad
        model.train(was_training)


def greedy_generate_kwargs(
    model: Any, tokenizer: Any, max_new_tokens: int, stop: str | None
) -> dict[str, Any]:
    """``model.generate`` arguments for greedy decoding that stops at ``stop`` (or EOS).

    Evaluation and the chat/demo apps (:mod:`magicoder.chat.generation`) both decode with
    these, so what the demo shows is what EvalPlus scored.
    """
    eos_token_id = model.generation_config.eos_token_id
    if eos_token_id is None:
        eos_token_id = tokenizer.eos_token_id
    kwargs: dict[str, Any] = {
        "do_sample": False,
        "num_beams": 1,
        "max_new_tokens": max_new_tokens,
        "use_cache": True,
        "pad_token_id": tokenizer.pad_token_id,
        "eos_token_id": eos_token_id,
    }
    if stop is not None:
        kwargs.update(stop_strings=[stop], tokenizer=tokenizer)
    return kwargs


def _generate_longest_first(
    model: Any,
    tokenizer: Any,
    prompts: list[str],
    generate_kwargs: dict[str, Any],
    *,
    size: int,
    auto: bool,
    desc: str,
) -> list[str]:
    """Generate in batches of ``size`` prompts, longest first, halving ``size`` when ``auto``
    and a batch runs out of memory; log the throughput.

    Returns:
        The completions, in the order of ``prompts``.
    """
    lengths = [len(ids) for ids in tokenizer(prompts)["input_ids"]]
    # Longest first, so a batch size that does not fit fails at once rather than at the end.
    order = sorted(range(len(prompts)), key=lambda i: -lengths[i])
    outputs: list[str] = [""] * len(prompts)
    started, n_new_tokens, done = time.perf_counter(), 0, 0
    with (
        torch.inference_mode(),
        Progress(total=len(prompts), desc=desc, unit="tasks", logger=logger) as progress,
    ):
        while done < len(order):
            indices = order[done : done + size]
            generated = _generate_batch(
                model, tokenizer, [prompts[i] for i in indices], generate_kwargs
            )
            if generated is None:
                size = _smaller_batch_size(size, auto, generate_kwargs["max_new_tokens"])
                continue
            texts, batch_new_tokens = generated
            for i, text in zip(indices, texts, strict=True):
                outputs[i] = text
            done += len(indices)
            n_new_tokens += batch_new_tokens
            tokens_per_sec = n_new_tokens / max(time.perf_counter() - started, 1e-9)
            progress.update(len(indices), tokens_per_sec=round(tokens_per_sec))
    elapsed = time.perf_counter() - started
    logger.info(
        "Generated %d completions (%d new tokens) in %.1f s (%.0f tokens/s, batch size %d)",
        len(prompts),
        n_new_tokens,
        elapsed,
        n_new_tokens / max(elapsed, 1e-9),
        size,
    )
    return outputs


def _generate_batch(
    model: Any, tokenizer: Any, texts: list[str], generate_kwargs: dict[str, Any]
) -> tuple[list[str], int] | None:
    """The decoded continuations of ``texts`` and their count of new (non-pad) tokens, or None
    when the batch ran out of accelerator memory."""
    try:
        batch = tokenizer(texts, return_tensors="pt", padding=True).to(model.device)
        generated = model.generate(**batch, **generate_kwargs)
    except Exception as err:
        if not is_out_of_memory(err):
            raise
        # The caller frees memory once this frame, and the traceback pinning the batch, is gone.
        return None
    new_tokens = generated[:, batch["input_ids"].shape[1] :]
    n_new_tokens = int((new_tokens != tokenizer.pad_token_id).sum())
    return tokenizer.batch_decode(new_tokens, skip_special_tokens=True), n_new_tokens


def _smaller_batch_size(size: int, auto: bool, max_new_tokens: int) -> int:
    """The batch size to retry with after ``size`` ran out of memory.

    Raises:
        torch.cuda.OutOfMemoryError: When the batch size is fixed, or already 1.
    """
    release_memory()
    if not auto:
        raise torch.cuda.OutOfMemoryError(
            f"eval.batch_size={size} does not fit in accelerator memory; "
            "lower eval.batch_size or set eval.batch_size=auto"
        ) from None
    if size == 1:
        raise torch.cuda.OutOfMemoryError(
            "a single prompt does not fit in accelerator memory with "
            f"eval.max_new_tokens={max_new_tokens}; lower it or use a larger "
            "device"
        ) from None
    size //= 2
    logger.warning("Generation ran out of memory; batch size now %d", size)
    return size


def vllm_engine_args(
    model_path: str | Path,
    *,
    dtype: str = "auto",
    seed: int = 0,
    extra: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """Keyword arguments for ``vllm.LLM``.

    Args:
        model_path: A ``save_pretrained`` directory or hub id (the weights to evaluate).
        dtype: Weights dtype ("float32", "bfloat16", "float16" or "auto").
        seed: Engine seed (greedy decoding does not depend on it).
        extra: Further ``vllm.LLM`` arguments (``eval.vllm_args``), e.g.
            ``tensor_parallel_size`` or ``gpu_memory_utilization``; they win over the above.

    Returns:
        The arguments; the tokenizer is the model's own, so vLLM decodes the same vocabulary.
    """
    args: dict[str, Any] = {
        "model": str(model_path),
        "tokenizer": str(model_path),
        "dtype": dtype,
        "seed": seed,
    }
    args.update(extra or {})
    return args


def vllm_sampling_args(max_new_tokens: int, stop: str | None) -> dict[str, Any]:
    """Keyword arguments for ``vllm.SamplingParams``: greedy, like the ``hf`` backend.

    The stop string is kept in the output (as the ``hf`` backend keeps the token completing
    it), so both backends' completions go through the same cut at the first fence.
    """
    if max_new_tokens < 1:
        raise ValueError(f"eval.max_new_tokens={max_new_tokens!r} must be >= 1.")
    return {
        "n": 1,
        "temperature": 0.0,
        "top_p": 1.0,
        "max_tokens": max_new_tokens,
        "stop": [stop] if stop is not None else None,
        "include_stop_str_in_output": True,
        "skip_special_tokens": True,
    }


_VLLM_MISSING = (
    "eval.backend=vllm needs the vllm package, which runs on GPU machines (pip install vllm); "
    "install it there, or use eval.backend=hf"
)


def check_backend(backend: str) -> None:
    """Raise early (before any training) when ``backend`` is unknown or not installed.

    Raises:
        ValueError: For an unknown backend.
        ImportError: For ``vllm`` without the vllm package (found without importing it).
    """
    if backend not in BACKENDS:
        raise ValueError(f"eval.backend={backend!r} is unknown; use one of {list(BACKENDS)}")
    if backend == "vllm":
        try:
            found = importlib.util.find_spec("vllm") is not None
        except ValueError:  # a module entry without a spec counts as missing
            found = False
        if not found:
            raise ImportError(_VLLM_MISSING)


def _import_vllm() -> Any:
    try:
        import vllm
    except ImportError as err:
        raise ImportError(_VLLM_MISSING) from err
    return vllm


class VllmGenerator:
    """Generates with vLLM; the engine starts on the first call and is reused after.

    Args:
        model_path: Directory (or hub id) of the weights to evaluate.
        tokenizer: The model's tokenizer; prompts are tokenized with it exactly as the ``hf``
            backend does, and vLLM gets the token ids.
        max_new_tokens: Most tokens generated per prompt.
        stop: Stop string (None: only EOS / length).
        dtype: Weights dtype for the engine.
        engine_args: Extra ``vllm.LLM`` arguments.
    """

    def __init__(
        self,
        model_path: str | Path,
        tokenizer: Any,
        *,
        max_new_tokens: int,
        stop: str | None = CODE_FENCE,
        dtype: str = "auto",
        engine_args: dict[str, Any] | None = None,
    ):
        self.vllm = _import_vllm()
        self.tokenizer = tokenizer
        self.engine_args = vllm_engine_args(model_path, dtype=dtype, extra=engine_args)
        self.sampling_args = vllm_sampling_args(max_new_tokens, stop)
        self._llm: Any = None

    def __call__(self, prompts: Sequence[str], desc: str = "generate") -> list[str]:
        """Greedy completions of ``prompts``, in their order; ``desc`` labels the progress."""
        if not prompts:
            return []
        if self._llm is None:
            check_free_gpu_memory(
                self.engine_args.get("gpu_memory_utilization", VLLM_DEFAULT_UTILIZATION),
                int(self.engine_args.get("tensor_parallel_size", 1)),
            )
            logger.info("Starting vLLM: %s", self.engine_args)
            self._llm = self.vllm.LLM(**self.engine_args)
        params = self.vllm.SamplingParams(**self.sampling_args)
        token_ids = self.tokenizer(list(prompts))["input_ids"]
        started = time.perf_counter()
        results = self._llm.generate(
            [{"prompt_token_ids": ids} for ids in token_ids],
            params,
            use_tqdm=vllm_progress(desc),
        )
        logger.info(
            "Generated %d completions with vLLM in %.1f s",
            len(prompts),
            time.perf_counter() - started,
        )
        return [result.outputs[0].text for result in results]

    def close(self) -> None:
        """Shut the engine down and hand its GPU memory back (a no-op before it started)."""
        if self._llm is None:
            return
        llm, self._llm = self._llm, None
        shutdown = getattr(llm, "shutdown", None)  # newer vLLM releases
        if callable(shutdown):
            shutdown()
        del llm
        cleanup = getattr(
            getattr(self.vllm, "distributed", None), "cleanup_dist_env_and_memory", None
        )
        if callable(cleanup):
            cleanup()
        release_memory()


VLLM_DEFAULT_UTILIZATION = 0.9
"""vLLM's default ``gpu_memory_utilization``: the share of each GPU's memory it takes."""


def check_free_gpu_memory(
    utilization: float, n_gpus: int = 1, wait_seconds: float = 120.0, poll_seconds: float = 2.0
) -> None:
    """Refuse to start vLLM where its GPUs are not free enough, naming what to do.

    vLLM takes ``utilization`` of each GPU's total memory and refuses to start (after
    minutes of loading, with a message about its profiling) when less is free. This
    process's training memory is released before evaluation, and the other ranks of a
    distributed run exit once training ends; their memory is waited for up to
    ``wait_seconds``, since they may still be exiting.

    Args:
        utilization: ``gpu_memory_utilization`` the engine will be given.
        n_gpus: ``tensor_parallel_size``: the first ``n_gpus`` visible GPUs are checked.
        wait_seconds: How long to wait for memory held by other processes to be freed.
        poll_seconds: Time between looks.

    Raises:
        RuntimeError: When fewer GPUs are visible than asked for, or one is still short of
            free memory after the wait.
    """
    if not torch.cuda.is_available():
        return  # vLLM itself says it needs a GPU
    if torch.cuda.device_count() < n_gpus:
        raise RuntimeError(
            f"+eval.vllm_args.tensor_parallel_size={n_gpus} but {torch.cuda.device_count()} "
            "GPU(s) are visible; lower it or make more GPUs visible (CUDA_VISIBLE_DEVICES)."
        )
    deadline = time.monotonic() + wait_seconds
    for index in range(n_gpus):
        free, total = torch.cuda.mem_get_info(index)
        while free < utilization * total and time.monotonic() < deadline:
            logger.info("Waiting for GPU %d to be freed (%.1f GiB free)", index, free / 2**30)
            time.sleep(poll_seconds)
            free, total = torch.cuda.mem_get_info(index)
        if free < utilization * total:
            raise RuntimeError(
                f"vLLM needs {utilization:.0%} of GPU {index}'s memory free, but "
                f"{free / 2**30:.1f} of {total / 2**30:.1f} GiB are: another process holds "
                "the rest (nvidia-smi names it; a training rank that has not exited, another "
                "job). Free that GPU, or give vLLM less with "
                f"+eval.vllm_args.gpu_memory_utilization={max(free / total - 0.05, 0.05):.2f}."
            )


def vllm_progress(desc: str) -> Callable[..., Progress]:
    """A progress factory for ``vllm.LLM.generate(use_tqdm=...)``, which takes a tqdm class.

    vLLM calls it with ``total=`` for the prompts it processes (that one is labelled
    ``desc``, counted in tasks, and keeps vLLM's token-speed postfix), and in some versions
    with an iterable while it adds the requests (quick; shown as nothing).
    """

    def make(*args: Any, **kwargs: Any) -> Progress:
        if args or "iterable" in kwargs:
            kwargs["disable"] = True
            return Progress(*args, **kwargs)
        kwargs.update(desc=desc, unit="tasks", logger=logger)
        return Progress(**kwargs)

    return make


def completion_generator(
    backend: str,
    model: Any,
    tokenizer: Any,
    *,
    batch_size: int | str,
    max_new_tokens: int,
    stop: str | None = CODE_FENCE,
    model_path: str | Path | None = None,
    engine_args: dict[str, Any] | None = None,
) -> CompletionGenerator:
    """A function from prompts (and a progress label) to completions for the backend.

    Args:
        backend: ``"hf"`` or ``"vllm"``.
        model: The in-memory model (``hf``; for ``vllm`` only its dtype and, without
            ``model_path``, its ``name_or_path`` are used).
        tokenizer: Its tokenizer.
        batch_size: ``hf`` batch size (int or ``"auto"``); vLLM schedules its own batches.
        max_new_tokens: Most tokens generated per prompt.
        stop: Stop string.
        model_path: For ``vllm``: the saved weights to load (the in-memory model is not
            shared with vLLM); None uses ``model.name_or_path``.
        engine_args: Extra ``vllm.LLM`` arguments.

    Raises:
        ValueError: On an unknown backend, or ``vllm`` without a model directory.
        ImportError: For ``vllm`` when the package is missing.
    """
    if backend == "hf":
        return _hf_generator(
            model, tokenizer, batch_size=batch_size, max_new_tokens=max_new_tokens, stop=stop
        )
    if backend == "vllm":
        return _vllm_generator(
            model,
            tokenizer,
            max_new_tokens=max_new_tokens,
            stop=stop,
            model_path=model_path,
            engine_args=engine_args,
        )
    raise ValueError(f"eval.backend={backend!r} is unknown; use one of {list(BACKENDS)}")


def _hf_generator(
    model: Any, tokenizer: Any, *, batch_size: int | str, max_new_tokens: int, stop: str | None
) -> CompletionGenerator:
    check_batch_size(batch_size)

    def generate(prompts: list[str], desc: str = "generate") -> list[str]:
        return generate_completions(
            model,
            tokenizer,
            prompts,
            batch_size=batch_size,
            max_new_tokens=max_new_tokens,
            stop=stop,
            desc=desc,
        )

    return generate


def _vllm_generator(
    model: Any,
    tokenizer: Any,
    *,
    max_new_tokens: int,
    stop: str | None,
    model_path: str | Path | None,
    engine_args: dict[str, Any] | None,
) -> VllmGenerator:
    path = model_path if model_path is not None else getattr(model, "name_or_path", None)
    if not path:
        raise ValueError(
            "eval.backend=vllm loads the weights from disk, but the model has no "
            "name_or_path; save it with save_pretrained and pass its directory"
        )
    dtype = str(getattr(model, "dtype", "auto")).removeprefix("torch.")
    return VllmGenerator(
        path,
        tokenizer,
        max_new_tokens=max_new_tokens,
        stop=stop,
        dtype=dtype,
        engine_args=engine_args,
    )
