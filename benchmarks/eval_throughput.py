"""Evaluation generation throughput: this framework's generator against ``evalplus.codegen``.

The baseline is EvalPlus's own code generation loop (``evalplus.codegen.codegen``) with its
``hf`` backend (``HuggingFaceDecoder``: one task at a time, stop strings checked by
``stop_sequencer``), which is how EvalPlus generates for a Hugging Face model. Against it runs
this framework's ``generate_completions`` (prompts sorted by length, batched with left padding,
KV cache, per-sequence stop at the closing fence) followed by the same sanitizing step, once
one prompt at a time (``ours-batch-1``, the effect of the implementation alone) and once
batched (``ours``, the default ``eval.batch_size``).

All generate greedily with the same ``--max-new-tokens`` from the same tiny model directory
(``TinyLlama(name="tiny").build()``, fp32, SDPA attention; EvalPlus is given the same dtype and
attention kernel instead of its bf16/eager defaults) on the first ``--limit`` HumanEval+ tasks.
Each side uses its own prompt (EvalPlus's plain completion prompt for a model without a chat
template, the Magicoder prompt here), so the table also shows the tokens generated per task:
the untrained model rarely stops early, so both generate about ``--max-new-tokens`` per task.

Each configuration runs in its own process, interleaved for ``--rounds`` rounds; the table
shows medians. Model loading is not timed; generation plus sanitizing is.

    python benchmarks/eval_throughput.py                    # about 4 minutes on 2 CPU cores
    python benchmarks/eval_throughput.py --limit 32 --max-new-tokens 512 --rounds 1
"""

from __future__ import annotations

import argparse
import json
import os
import tempfile
import time
from pathlib import Path
from typing import Any

from _common import (
    REPO,
    PeakMemory,
    emit,
    interleave,
    machine,
    markdown_table,
    median,
    run_worker,
)

CONFIGS = ("evalplus-hf", "ours-batch-1", "ours")
BASELINE = "evalplus-hf"
DEFAULT_HUMANEVAL = REPO.parent / "shared" / "data" / "HumanEvalPlus-v0.1.10.jsonl.gz"


def _tiny_dir() -> Path:
    from magicoder.models import TinyLlama

    return TinyLlama(name="tiny", dtype="float32").build()


def run_evalplus(args: argparse.Namespace) -> dict[str, Any]:
    """EvalPlus's codegen loop with its hf backend."""
    from evalplus.codegen import codegen
    from evalplus.provider import make_model
    from transformers import AutoTokenizer

    path = _tiny_dir()
    decoder = make_model(
        model=str(path),
        backend="hf",
        dataset="humaneval",
        batch_size=1,
        temperature=0.0,
        dtype="float32",
        attn_implementation="sdpa",
    )
    # run_codegen has no flag for it in evalplus 0.3.1; the decoder reads this attribute.
    decoder.max_new_tokens = args.max_new_tokens
    target = Path(args.tmp) / f"evalplus-{os.getpid()}.jsonl"
    target.parent.mkdir(parents=True, exist_ok=True)
    target.unlink(missing_ok=True)
    with PeakMemory() as memory:
        started = time.perf_counter()
        codegen(
            str(target),
            decoder,
            "humaneval",
            greedy=True,
            n_samples=1,
            id_range=(0, args.limit),
            resume=False,
        )
        elapsed = time.perf_counter() - started
    tokenizer = AutoTokenizer.from_pretrained(path)
    from evalplus.data import get_human_eval_plus

    problems = get_human_eval_plus()
    raw = [json.loads(line) for line in Path(str(target).replace(".jsonl", ".raw.jsonl")).open()]
    new_tokens = [
        len(
            tokenizer(r["solution"][len(problems[r["task_id"]]["prompt"].strip() + "\n") :])[
                "input_ids"
            ]
        )
        for r in raw
    ]
    return _result(len(raw), elapsed, new_tokens, memory)


def run_ours(args: argparse.Namespace, batch_size: int | str) -> dict[str, Any]:
    """generate_completions + the same sanitizing as evaluate_model."""
    from magicoder.evaluation.benchmarks import assemble_solution, load_benchmark
    from magicoder.evaluation.generation import generate_completions
    from magicoder.models import TinyLlama
    from magicoder.prompts import CODE_FENCE, format_prompt

    model, tokenizer = TinyLlama(name="tiny", dtype="float32").load()
    benchmark = load_benchmark("humaneval", path=args.humaneval, limit=args.limit)
    task_ids = list(benchmark.problems)
    prompts = [format_prompt(*benchmark.prompt(t)) for t in task_ids]
    with PeakMemory() as memory:
        started = time.perf_counter()
        completions = generate_completions(
            model,
            tokenizer,
            prompts,
            batch_size=batch_size,
            max_new_tokens=args.max_new_tokens,
            stop=CODE_FENCE,
        )
        samples = [
            assemble_solution("humaneval", benchmark.problems[t], c, True)
            for t, c in zip(task_ids, completions, strict=True)
        ]
        elapsed = time.perf_counter() - started
    assert len(samples) == len(task_ids)
    new_tokens = [len(tokenizer(c, add_special_tokens=False)["input_ids"]) for c in completions]
    return _result(len(samples), elapsed, new_tokens, memory)


def _result(
    tasks: int, elapsed: float, new_tokens: list[int], memory: PeakMemory
) -> dict[str, Any]:
    return {
        "tasks": tasks,
        "seconds": elapsed,
        "tasks_per_s": tasks / elapsed,
        "new_tokens_per_task": sum(new_tokens) / max(len(new_tokens), 1),
        "new_tokens_per_s": sum(new_tokens) / elapsed,
        "peak_mib": memory.peak_mib,
        "increase_mib": memory.increase_mib,
    }


def worker(args: argparse.Namespace) -> None:
    # evalplus reads the override when its data modules are first imported.
    os.environ["HUMANEVAL_OVERRIDE_PATH"] = str(args.humaneval)
    import logging
    import warnings

    # Every worker imports what any configuration needs, so their memory baselines match.
    import evalplus.codegen  # noqa: F401
    import evalplus.provider.hf  # noqa: F401
    import torch

    import magicoder.evaluation.generation  # noqa: F401

    logging.disable(logging.WARNING)
    warnings.filterwarnings("ignore")
    if args.threads:
        torch.set_num_threads(args.threads)
    if args.worker == "evalplus-hf":
        result = run_evalplus(args)
    else:
        result = run_ours(args, 1 if args.worker == "ours-batch-1" else args.batch_size)
    emit({"config": args.worker, **result})


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument(
        "--humaneval", type=Path, default=DEFAULT_HUMANEVAL, help="HumanEvalPlus-v0.1.10.jsonl.gz"
    )
    parser.add_argument("--limit", type=int, default=32, help="first N HumanEval+ tasks")
    parser.add_argument("--max-new-tokens", type=int, default=128, help="greedy budget per task")
    parser.add_argument(
        "--batch-size",
        default="16",
        help="batch size of `ours` (the eval config's default) or 'auto'",
    )
    parser.add_argument("--rounds", type=int, default=2, help="interleaved repetitions")
    parser.add_argument(
        "--threads",
        type=int,
        default=1,
        help="torch threads per worker (1: steady timings on a shared machine; 0: torch's default)",
    )
    parser.add_argument("--configs", default=",".join(CONFIGS), help="comma-separated subset")
    parser.add_argument("--out", type=Path, default=None, help="also write the results as JSON")
    parser.add_argument(
        "--tmp", default=str(Path(tempfile.gettempdir()) / "magicoder-bench"), help="scratch dir"
    )
    parser.add_argument("--worker", choices=CONFIGS, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.batch_size != "auto":
        args.batch_size = int(args.batch_size)
    if not args.humaneval.is_file():
        parser.error(f"--humaneval {args.humaneval} does not exist; pass the HumanEval+ file")
    if args.worker:
        worker(args)
        return

    configs = [c for c in args.configs.split(",") if c]
    passthrough = [
        f"--humaneval={args.humaneval}",
        f"--limit={args.limit}",
        f"--max-new-tokens={args.max_new_tokens}",
        f"--batch-size={args.batch_size}",
        f"--threads={args.threads}",
        f"--tmp={args.tmp}",
    ]
    script = Path(__file__).resolve()
    print(
        f"Evaluation generation on {machine()}: tiny Llama fp32, first {args.limit} HumanEval+ "
        f"tasks, greedy, {args.max_new_tokens} new tokens, {args.rounds} interleaved rounds",
        flush=True,
    )
    _tiny_dir()  # build the model once, outside the workers
    results = interleave(
        configs,
        args.rounds,
        lambda c: run_worker(script, [*passthrough, f"--worker={c}"], timeout_s=1800),
        log=lambda line: print(line, flush=True),
    )
    base = median(results[BASELINE], "tasks_per_s") if BASELINE in results else None
    rows = []
    for config in configs:
        tps = median(results[config], "tasks_per_s")
        rows.append(
            [
                config,
                f"{tps:.2f}",
                f"{tps / base:.1f}x" if base else "-",
                f"{median(results[config], 'new_tokens_per_task'):.0f}",
                f"{median(results[config], 'new_tokens_per_s'):,.0f}",
                f"{median(results[config], 'increase_mib'):,.0f}",
                f"{median(results[config], 'peak_mib'):,.0f}",
            ]
        )
    header = [
        "config",
        "tasks/s",
        f"vs {BASELINE}",
        "new tokens/task",
        "new tokens/s",
        "peak memory increase (MiB)",
        f"peak {PeakMemory().kind} (MiB)",
    ]
    print(markdown_table(header, rows))
    if args.out:
        record = {"args": {k: str(v) for k, v in vars(args).items()}, "results": results}
        args.out.write_text(json.dumps(record, indent=2))


if __name__ == "__main__":
    main()
