"""Evaluate a model on HumanEval+ / MBPP+ the way the Magicoder paper did, and record it.

For each benchmark: build the paper's text2code prompts (or, with ``eval.prompt=chat-template``,
EvalPlus's chat prompts in the tokenizer's chat template), generate greedily (512 new tokens by
default), cut at the closing fence, assemble full programs (EvalPlus-sanitized by default),
write ``<out_dir>/<benchmark>/samples.jsonl`` (EvalPlus's sample format, so
``evalplus.evaluate --samples`` can rescore it), score it with EvalPlus, and write
``<out_dir>/<benchmark>/results.json``.

pass@1 is reported in percent (0-100), like the paper's table: ``BenchmarkResult.pass_at_1``,
``BenchmarkResult.pass_at_1_plus``, the ``metrics`` keys and ``results.json``'s
``pass@1_percent``. ``scoring.pass_at_1`` returns fractions, like evalplus prints them.
"""

from __future__ import annotations

import contextlib
import json
import logging
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from evalplus.config import DEFAULT_GT_TIME_LIMIT_FACTOR, DEFAULT_MIN_TIME_LIMIT

from magicoder.config import check_device
from magicoder.evaluation.benchmarks import BENCHMARK_NAMES, Benchmark, load_benchmark
from magicoder.evaluation.generation import (
    BACKENDS,
    check_backend,
    check_batch_size,
    completion_generator,
)
from magicoder.evaluation.protocols import SANITIZERS, Protocol, get_protocol, protocol_record
from magicoder.evaluation.sanitizers import assemble_solution, cut_completion, sanitize_program
from magicoder.evaluation.scoring import Scorer, pass_at_1
from magicoder.io import write_jsonl
from magicoder.prompts import CODE_FENCE, PROMPT_FORMATS, format_chat_prompt, format_prompt
from magicoder.provenance import provenance
from magicoder.sandbox import MODES as SANDBOX_MODES

logger = logging.getLogger(__name__)


@dataclass
class EvalSettings:
    """What ``conf/eval/*.yaml`` configures (the ``eval`` group).

    Attributes:
        protocol: The named protocol (:data:`~magicoder.evaluation.protocols.PROTOCOLS`) that
            sets the releases, sanitizers and generation length not set below.
        benchmarks: Which benchmarks to run, in order: "humaneval" and/or "mbpp"; [] for none.
        benchmark_dir: Where the protocol's release files are looked for by name.
        humaneval_path: A HumanEval+ file; None: the protocol's release from ``benchmark_dir``
            when it is there, else evalplus's copy (downloaded when online).
        mbpp_path: The same for MBPP+.
        limit: Evaluate only the first N tasks of each benchmark (quick runs); None for all.
        batch_size: Prompts per generation batch (``hf`` backend), or "auto": start large and
            halve on out-of-memory.
        max_new_tokens: Generation budget per task; None: the protocol's (512).
        sanitize: Benchmark -> sanitizer ("none", "legacy" or "tree-sitter") for the
            benchmarks set; the others (or all, when None) get the protocol's.
        n_workers: Scoring processes; None uses every CPU.
        groundtruth_dir: Cache of the benchmarks' expected outputs; None:
            ``$MAGICODER_CACHE/groundtruth``.
        min_time_limit: EvalPlus's minimum seconds per test input.
        gt_time_limit_factor: EvalPlus's time limit as a multiple of the reference time.
        sandbox: Where the programs run (:mod:`magicoder.sandbox`): "auto" (bubblewrap when it
            works here, else evalplus's guard with a warning), "bwrap" (required) or "none".
        backend: "hf" (transformers ``generate``) or "vllm" (GPU, needs the vllm package).
        vllm_args: Extra ``vllm.LLM`` arguments for the vllm backend.
        device: Where the ``hf`` backend generates: "auto" (see :func:`resolve_device`),
            "cpu", "cuda", "cuda:1", ...
        prompt: How each task is put to the model (:data:`~magicoder.prompts.PROMPT_FORMATS`):
            "magicoder" (``MAGICODER_PROMPT`` with the paper's instruction and response
            prefix; the model continues the task's prompt) or "chat-template" (the tokenizer's
            chat template around EvalPlus's instruction, as EvalPlus prompts chat models; the
            model writes the whole program). Every protocol prompts with "magicoder": a
            "chat-template" result is labelled custom (see :mod:`.protocols`).
        new_tokens: ``max_new_tokens`` resolved against the protocol (not configuration).
        sanitizers: One sanitizer per benchmark, ``sanitize`` resolved against the protocol
            (not configuration).
    """

    protocol: str = "evalplus-current"
    benchmarks: list[str] = field(default_factory=lambda: ["humaneval", "mbpp"])
    benchmark_dir: str | None = None
    humaneval_path: str | None = None
    mbpp_path: str | None = None
    limit: int | None = None
    batch_size: int | str = 16
    max_new_tokens: int | None = None
    sanitize: dict[str, str] | None = None
    n_workers: int | None = None
    groundtruth_dir: str | None = None
    min_time_limit: float = DEFAULT_MIN_TIME_LIMIT
    gt_time_limit_factor: float = DEFAULT_GT_TIME_LIMIT_FACTOR
    sandbox: str = "auto"
    backend: str = "hf"
    vllm_args: dict[str, Any] = field(default_factory=dict)
    device: str = "auto"
    prompt: str = "magicoder"
    new_tokens: int = field(init=False)
    sanitizers: dict[str, str] = field(init=False)

    def __post_init__(self) -> None:
        # Accept any sequence (Hydra hands over a ListConfig) but keep a plain list.
        if isinstance(self.benchmarks, str):
            self.benchmarks = [self.benchmarks]
        self.benchmarks = list(self.benchmarks)
        unknown = [name for name in self.benchmarks if name not in BENCHMARK_NAMES]
        if unknown:
            raise ValueError(
                f"eval.benchmarks={self.benchmarks!r}: unknown {unknown}; choose from "
                f"{list(BENCHMARK_NAMES)} (or [] for no evaluation)."
            )
        if len(set(self.benchmarks)) != len(self.benchmarks):
            raise ValueError(f"eval.benchmarks={self.benchmarks!r} lists a benchmark twice.")
        check_batch_size(self.batch_size)
        if self.prompt not in PROMPT_FORMATS:
            raise ValueError(
                f"eval.prompt={self.prompt!r} is unknown; use magicoder (the paper's template, "
                "for models trained with it) or chat-template (the tokenizer's own chat "
                "template, for chat models such as the instruct baselines)."
            )
        spec = get_protocol(self.protocol)
        self.new_tokens = (
            spec.max_new_tokens if self.max_new_tokens is None else self.max_new_tokens
        )
        self.sanitizers = _sanitizers(self.sanitize, spec)
        if self.new_tokens < 1:
            raise ValueError(f"eval.max_new_tokens={self.max_new_tokens!r} must be >= 1.")
        if self.benchmarks:
            check_backend(self.backend)
        elif self.backend not in BACKENDS:
            raise ValueError(f"eval.backend={self.backend!r} is unknown; use one of {BACKENDS}.")
        self.vllm_args = dict(self.vllm_args or {})
        check_device("eval.device", self.device)
        if self.limit is not None and self.limit < 1:
            raise ValueError(f"eval.limit={self.limit!r} must be >= 1, or null for all tasks.")
        if self.n_workers is not None and self.n_workers < 1:
            raise ValueError(f"eval.n_workers={self.n_workers!r} must be >= 1, or null.")
        if self.sandbox not in SANDBOX_MODES:
            raise ValueError(
                f"eval.sandbox={self.sandbox!r} is unknown; use one of {list(SANDBOX_MODES)}."
            )
        if self.min_time_limit <= 0 or self.gt_time_limit_factor <= 0:
            raise ValueError(
                f"eval.min_time_limit={self.min_time_limit!r} and eval.gt_time_limit_factor="
                f"{self.gt_time_limit_factor!r} must be positive (evalplus: 1.0 and 4.0)."
            )

    def path_for(self, benchmark: str) -> str | None:
        """The dataset file of ``benchmark``: the configured one, else the protocol's release in
        ``benchmark_dir`` when it is there (None: let evalplus find it)."""
        path = self.humaneval_path if benchmark == "humaneval" else self.mbpp_path
        if path is None and self.benchmark_dir is not None:
            candidate = Path(self.benchmark_dir).expanduser() / self.spec.release_file(benchmark)
            path = str(candidate) if candidate.is_file() else None
        return path

    @property
    def spec(self) -> Protocol:
        """The named protocol."""
        return get_protocol(self.protocol)

    def protocol_record(
        self, benchmark: Benchmark, chat_template: str | None = None
    ) -> dict[str, Any]:
        """What ``benchmark``'s numbers are made under (see :func:`protocol_record`).

        Args:
            benchmark: The benchmark scored.
            chat_template: With ``prompt="chat-template"``, the template the prompts were
                rendered with (None: not known here, e.g. when scoring a samples file).
        """
        return protocol_record(
            self.spec,
            benchmark=benchmark.name,
            version=benchmark.version,
            dataset_hash=benchmark.dataset_hash,
            n_tasks=len(benchmark.problems),
            n_total=benchmark.n_total,
            sanitizer=self.sanitizers[benchmark.name],
            max_new_tokens=self.new_tokens,
            prompt=self.prompt,
            chat_template=chat_template,
        )


def _sanitizers(configured: Any, spec: Protocol) -> dict[str, str]:
    """One sanitizer per benchmark: the configured ones over the protocol's."""
    configured = dict(configured or {})
    unknown = sorted(set(configured) - set(BENCHMARK_NAMES))
    if unknown:
        raise ValueError(
            f"eval.sanitize has unknown benchmark(s) {unknown}; use keys from {BENCHMARK_NAMES}."
        )
    for name, sanitizer in configured.items():
        if sanitizer not in SANITIZERS:
            raise ValueError(
                f"eval.sanitize.{name}={sanitizer!r} is not allowed: use one of {SANITIZERS} "
                "(none: as generated; legacy: the paper's MBPP+ sanitizer; tree-sitter: "
                "evalplus's current one)."
            )
    return {**spec.sanitizers, **configured}


@dataclass
class BenchmarkResult:
    """The outcome of one benchmark.

    Attributes:
        benchmark: "humaneval" or "mbpp".
        version: Dataset release (e.g. "v0.1.10").
        dataset_hash: evalplus's md5 of the dataset file.
        n_tasks: Tasks scored.
        pass_at_1: Base-test pass@1, in percent (HumanEval / MBPP columns of the paper).
        pass_at_1_plus: Base+plus pass@1, in percent (HumanEval+ / MBPP+ columns).
        rows: Per task: task_id, base_status, plus_status, solution.
        samples_path: The EvalPlus samples file scored.
        results_path: Where ``results.json`` was written (None if not written).
        protocol: What the numbers were made under (:meth:`EvalSettings.protocol_record`).
    """

    benchmark: str
    version: str
    dataset_hash: str
    n_tasks: int
    pass_at_1: float
    pass_at_1_plus: float
    rows: list[dict[str, Any]]
    samples_path: Path
    results_path: Path | None
    protocol: dict[str, Any] = field(default_factory=dict)

    def metrics(self, stage: str) -> dict[str, float]:
        """Slash-namespaced metrics for the logger, in percent.

        Args:
            stage: Training stage (or "base") the model comes from, e.g. "sft".

        Returns:
            ``eval/<stage>/<benchmark>/pass@1`` (base tests) and
            ``eval/<stage>/<benchmark>_plus/pass@1`` (base + plus tests).
        """
        return {
            f"eval/{stage}/{self.benchmark}/pass@1": self.pass_at_1,
            f"eval/{stage}/{self.benchmark}_plus/pass@1": self.pass_at_1_plus,
        }


def load_benchmarks(settings: EvalSettings) -> dict[str, Benchmark]:
    """Load and validate every configured benchmark (call it before training to fail early).

    Args:
        settings: The eval settings.

    Returns:
        Benchmark name -> benchmark, in ``settings.benchmarks`` order.

    Raises:
        ValueError, FileNotFoundError: As ``load_benchmark`` does, naming the setting to fix.
    """
    return {
        name: load_benchmark(
            name,
            path=settings.path_for(name),
            limit=settings.limit,
            version=settings.spec.versions[name],
        )
        for name in settings.benchmarks
    }


def _read_samples(path: Path, benchmark: Benchmark, sanitizer: str) -> list[dict[str, Any]]:
    """Read an EvalPlus samples file into sanitized programs.

    ``completion``-only rows become ``prompt + completion`` (evalplus.evaluate's rule), or
    ``prompt + "\n" + completion`` for the legacy sanitizer (its ``tools/sanitize.py``'s rule).
    """
    from evalplus.data import load_solutions

    samples = []
    for sample in load_solutions(str(path)):
        task_id, solution = sample["task_id"], sample.get("solution")
        problem = benchmark.problems.get(task_id)
        if problem is not None:
            if solution is None:
                joint = "\n" if sanitizer == "legacy" else ""
                solution = problem["prompt"] + joint + sample["completion"]
            solution = sanitize_program(benchmark.name, problem, solution, sanitizer)
        samples.append({"task_id": task_id, "solution": solution})
    return samples


def _finish(
    scorer: Scorer,
    benchmark: Benchmark,
    samples_path: Path,
    samples: list[dict[str, Any]],
    settings: EvalSettings,
    results_path: Path | None,
    extra: dict[str, Any],
    chat_template: str | None = None,
) -> BenchmarkResult:
    rows = scorer.score(
        benchmark,
        samples,
        min_time_limit=settings.min_time_limit,
        gt_time_limit_factor=settings.gt_time_limit_factor,
    )
    base, plus = pass_at_1(rows)
    result = BenchmarkResult(
        benchmark=benchmark.name,
        version=benchmark.version,
        dataset_hash=benchmark.dataset_hash,
        n_tasks=len(rows),
        pass_at_1=100.0 * base,
        pass_at_1_plus=100.0 * plus,
        rows=rows,
        samples_path=samples_path,
        results_path=results_path,
        protocol=settings.protocol_record(benchmark, chat_template),
    )
    if results_path is not None:
        _write_results(result, benchmark, settings, extra)
    limited = f", first {benchmark.limit} tasks" if not benchmark.is_complete else ""
    logger.info(
        "%s %s: pass@1 %.1f, %s+ pass@1 %.1f (%d tasks%s)",
        benchmark.name,
        benchmark.version,
        result.pass_at_1,
        benchmark.name,
        result.pass_at_1_plus,
        len(rows),
        limited,
    )
    return result


def _write_results(
    result: BenchmarkResult, benchmark: Benchmark, settings: EvalSettings, extra: dict[str, Any]
) -> None:
    """``results.json``: pass@1, what was scored and how, and every task's statuses."""
    assert result.results_path is not None
    report = {
        "benchmark": benchmark.name,
        "version": benchmark.version,
        "dataset_hash": benchmark.dataset_hash,
        "dataset_path": benchmark.path,
        "n_tasks": result.n_tasks,
        "n_tasks_total": benchmark.n_total,
        "limit": benchmark.limit,
        "pass@1_percent": {
            benchmark.name: result.pass_at_1,
            f"{benchmark.name}_plus": result.pass_at_1_plus,
        },
        "samples_path": str(result.samples_path),
        "protocol": result.protocol,
        "provenance": provenance(),
        "scoring": {
            "n_workers": settings.n_workers,
            "sandbox": settings.sandbox,
            "min_time_limit": settings.min_time_limit,
            "gt_time_limit_factor": settings.gt_time_limit_factor,
        },
        **extra,
        "tasks": [
            {key: row[key] for key in ("task_id", "base_status", "plus_status")}
            for row in result.rows
        ],
    }
    result.results_path.parent.mkdir(parents=True, exist_ok=True)
    result.results_path.write_text(json.dumps(report, indent=2) + "\n", encoding="utf-8")


def chat_template_of(tokenizer: Any, prompt: str) -> str | None:
    """The chat template evaluation renders its prompts with (None for ``magicoder``).

    Args:
        tokenizer: The model's tokenizer.
        prompt: ``eval.prompt``.

    Returns:
        The template's source (a tokenizer with several named templates: all of them, as
        sorted JSON), for the protocol record's ``prompt_sha256``.

    Raises:
        ValueError: ``eval.prompt=chat-template`` with a tokenizer that has no chat template.
    """
    if prompt != "chat-template":
        return None
    template = getattr(tokenizer, "chat_template", None)
    if template is None:
        name = getattr(tokenizer, "name_or_path", None) or type(tokenizer).__name__
        raise ValueError(
            f"eval.prompt=chat-template needs a tokenizer with a chat template, and the "
            f"tokenizer of {name!r} has none. Use eval.prompt=magicoder (the paper's template: "
            "base models and models trained here), or a model whose tokenizer has one (a "
            "chat_template in its tokenizer_config.json, or a chat_template.jinja file)."
        )
    return template if isinstance(template, str) else json.dumps(template, sort_keys=True)


def task_prompts(
    benchmark: Benchmark, task_ids: Sequence[str], prompt: str, tokenizer: Any = None
) -> list[str]:
    """The text generation starts from, for each task.

    Args:
        benchmark: The loaded benchmark.
        task_ids: Tasks of ``benchmark``, in the order wanted.
        prompt: ``eval.prompt``: ``magicoder`` fills ``MAGICODER_PROMPT`` with the paper's
            instruction and response prefix; ``chat-template`` renders EvalPlus's chat prompt
            for the task's prompt (``format_chat_prompt``) with ``tokenizer``.
        tokenizer: The model's tokenizer (needed for ``chat-template``).
    """
    if prompt == "chat-template":
        return [format_chat_prompt(benchmark.problems[t]["prompt"], tokenizer) for t in task_ids]
    return [format_prompt(*benchmark.prompt(task_id)) for task_id in task_ids]


def completion_program(
    benchmark: Benchmark, task_id: str, completion: str, sanitizer: str, prompt: str
) -> str:
    """The program scored for one raw completion.

    With ``magicoder`` the completion continues the response prefix (for HumanEval+, the
    task's prompt; see :func:`assemble_solution`). With ``chat-template`` the model wrote the
    whole program after the opened fence: the program is the completion cut at its closing
    fence, as evalplus's codegen takes a chat model's output for the solution.
    """
    problem = benchmark.problems[task_id]
    if prompt == "chat-template":
        return sanitize_program(benchmark.name, problem, cut_completion(completion), sanitizer)
    return assemble_solution(benchmark.name, problem, completion, sanitizer)


def resolve_device(name: str, accelerator: str = "auto", devices: Any = "auto") -> torch.device:
    """Where the ``hf`` backend generates for ``eval.device=name``.

    ``auto`` follows the trainer's placement: the CPU when ``accelerator`` is "cpu" (or no
    CUDA device is visible), else the first CUDA device it trains on (the first index when
    ``devices`` lists them). Any other name is taken as a torch device.

    Args:
        name: ``eval.device``.
        accelerator: ``trainer.accelerator`` ("auto" when there is no trainer).
        devices: ``trainer.devices``.
    """
    if name != "auto":
        return torch.device(name)
    if accelerator == "cpu" or not torch.cuda.is_available():
        return torch.device("cpu")
    if isinstance(devices, Sequence) and not isinstance(devices, str) and len(devices):
        return torch.device("cuda", int(devices[0]))
    return torch.device("cuda", 0)


def evaluate_model(
    model: Any,
    tokenizer: Any,
    settings: EvalSettings,
    out_dir: Path,
    benchmarks: dict[str, Benchmark] | None = None,
    model_path: str | Path | None = None,
    scorer: Scorer | None = None,
) -> list[BenchmarkResult]:
    """Generate, sanitize, write and score each configured benchmark.

    Call it on one process only (rank zero): scoring starts its own worker processes, and
    the script that ends up here must guard its entry point with ``if __name__ == "__main__"``
    since those workers are spawned.

    Args:
        model: A causal LM (Hugging Face ``generate`` API), on the device to generate on.
        tokenizer: Its tokenizer.
        settings: The eval settings.
        out_dir: Writes ``<out_dir>/<benchmark>/{completions.jsonl,samples.jsonl,results.json}``.
        benchmarks: Already loaded benchmarks (from ``load_benchmarks``); None loads them.
        model_path: Where the model's current weights are saved, for ``backend="vllm"``
            (which loads them itself); None uses ``model.name_or_path``.
        scorer: Scoring workers to use (one pool can serve several calls); None starts a
            pool here and stops it at the end.

    Returns:
        One result per benchmark, in ``settings.benchmarks`` order.
    """
    if benchmarks is None:
        benchmarks = load_benchmarks(settings)
    missing = [name for name in settings.benchmarks if name not in benchmarks]
    if missing:
        raise ValueError(
            f"Benchmarks {missing} are configured in eval.benchmarks but were not loaded; "
            "pass load_benchmarks(settings) or None."
        )
    out_dir = Path(out_dir)
    # Before an engine starts or anything generates: a missing chat template fails here.
    chat_template = chat_template_of(tokenizer, settings.prompt)
    generate = completion_generator(
        settings.backend,
        model,
        tokenizer,
        batch_size=settings.batch_size,
        max_new_tokens=settings.new_tokens,
        stop=CODE_FENCE,
        model_path=model_path,
        engine_args=settings.vllm_args,
    )
    model_info = _model_info(model, model_path, settings.backend)
    # One pool of scoring workers serves every benchmark. Its expected outputs are computed
    # when a benchmark is scored, not beside generation: two scoring processes beside the
    # model's two torch threads on two cores slow it down threefold.
    with contextlib.ExitStack() as stack:
        stack.callback(getattr(generate, "close", lambda: None))
        if scorer is None:
            scorer = stack.enter_context(
                Scorer(settings.n_workers, settings.groundtruth_dir, settings.sandbox)
            )
        return [
            _generate_and_score(
                benchmarks[name],
                generate,
                settings,
                out_dir / name,
                model_info,
                scorer,
                tokenizer,
                chat_template,
            )
            for name in settings.benchmarks
        ]


def _model_info(model: Any, model_path: str | Path | None, backend: str) -> dict[str, Any]:
    """What generated: the weights, their dtype, attention and device (results.json)."""
    config = getattr(model, "config", None)
    return {
        "model": str(model_path) if model_path else getattr(model, "name_or_path", None),
        "dtype": str(getattr(model, "dtype", None)).removeprefix("torch."),
        "attn_implementation": getattr(config, "_attn_implementation", None),
        # vLLM places its own copy of the weights on the GPUs it is given.
        "device": str(getattr(model, "device", None)) if backend == "hf" else "vllm engine",
    }


def _generate_and_score(
    benchmark: Benchmark,
    generate: Any,
    settings: EvalSettings,
    bench_dir: Path,
    model_info: dict[str, Any],
    scorer: Scorer,
    tokenizer: Any,
    chat_template: str | None,
) -> BenchmarkResult:
    """One benchmark: prompts → completions → programs → ``samples.jsonl`` → scores."""
    sanitizer = settings.sanitizers[benchmark.name]
    task_ids = list(benchmark.problems)
    prompts = task_prompts(benchmark, task_ids, settings.prompt, tokenizer)
    logger.info("%s: generating %d completions", benchmark.name, len(prompts))
    completions = generate(prompts, desc=f"generate {benchmark.name}")
    # The raw text, before cutting and sanitizing, for debugging generations.
    write_jsonl(
        bench_dir / "completions.jsonl",
        [{"task_id": t, "completion": c} for t, c in zip(task_ids, completions, strict=True)],
    )
    samples = [
        {
            "task_id": task_id,
            "solution": completion_program(
                benchmark, task_id, completion, sanitizer, settings.prompt
            ),
        }
        for task_id, completion in zip(task_ids, completions, strict=True)
    ]
    samples_path = bench_dir / "samples.jsonl"
    write_jsonl(samples_path, samples)
    generation = {
        **model_info,
        "decoding": "greedy",
        "prompt": settings.prompt,
        "backend": settings.backend,
        "batch_size": settings.batch_size,
        "max_new_tokens": settings.new_tokens,
        "stop": CODE_FENCE,
        "sanitizer": sanitizer,
    }
    return _finish(
        scorer,
        benchmark,
        samples_path,
        samples,
        settings,
        bench_dir / "results.json",
        {"generation": generation},
        chat_template,
    )


def evaluate_samples(
    benchmark: Benchmark,
    samples_path: str | Path,
    settings: EvalSettings | None = None,
    results_path: str | Path | None = None,
) -> BenchmarkResult:
    """Score an existing EvalPlus samples file (ours, or anyone's) the same way.

    Args:
        benchmark: The benchmark the samples answer (with the same ``limit``).
        samples_path: A ``.jsonl`` of ``{"task_id", "solution"}`` (or ``"completion"``) rows.
        settings: Scoring settings (workers, time limits); None uses the defaults.
        results_path: Where to write ``results.json``; None writes nothing.

    Returns:
        The scored result.

    Raises:
        FileNotFoundError: If ``samples_path`` does not exist.
    """
    samples_path = Path(samples_path)
    if not samples_path.is_file():
        raise FileNotFoundError(f"Samples file {str(samples_path)!r} does not exist.")
    settings = settings or EvalSettings(benchmarks=[benchmark.name])
    samples = _read_samples(samples_path, benchmark, settings.sanitizers[benchmark.name])
    with Scorer(settings.n_workers, settings.groundtruth_dir, settings.sandbox) as scorer:
        return _finish(
            scorer,
            benchmark,
            samples_path,
            samples,
            settings,
            Path(results_path) if results_path is not None else None,
            {},
        )
