"""Sandbox cost: scoring HumanEval+ canonical solutions in bubblewrap vs evalplus's guard alone.

Two measurements on the same programs (the canonical solutions of the first ``--limit``
HumanEval+ tasks; expected outputs computed first, and cached, so only checks are timed):

1. Per-program overhead, in one process, one check at a time: evalplus's ``check_correctness``
   called directly (its in-process guard, what ``eval.sandbox=none`` does) against the same
   check sent as a job to one warm :class:`~magicoder.sandbox.Sandbox` container (what
   ``eval.sandbox=bwrap`` does). Prints milliseconds per program and the ratio.
2. Throughput through :class:`~magicoder.evaluation.scoring.Scorer` (the spawned worker pool
   evaluation uses), with 1 worker and with every core, for both modes: executions (programs
   checked on all their base and plus inputs) per second, after a warm-up round that boots
   the workers and their containers.

    python benchmarks/sandbox.py
    python benchmarks/sandbox.py --limit 164 --rounds 2
"""

from __future__ import annotations

import argparse
import multiprocessing
import os
import statistics
import time
from pathlib import Path

from evalplus.evaluate import check_correctness

from magicoder.config import project_root
from magicoder.evaluation.benchmarks import load_benchmark
from magicoder.evaluation.scoring import (
    Scorer,
    _sandboxed_check,
    default_groundtruth_dir,
    packed_oracle,
    unpack_oracle,
)
from magicoder.sandbox import Sandbox, bwrap_problem


def per_program(benchmark, samples, groundtruth_dir: Path, rounds: int) -> dict[str, float]:
    """Median seconds per program for each mode, one check at a time in this process."""
    packed = {
        task_id: packed_oracle(benchmark.name, benchmark.dataset_hash, problem, groundtruth_dir)
        for task_id, problem in benchmark.problems.items()
    }
    expected = {task_id: unpack_oracle(oracle) for task_id, oracle in packed.items()}
    multiprocessing.set_start_method("fork", force=True)  # as the scoring workers do
    times: dict[str, list[float]] = {"guard": [], "bwrap": []}
    with Sandbox("bwrap") as sandbox:
        sandbox.call({"kind": "program", "source": "", "timeout": 5, "deadline": 10})
        for _ in range(rounds):
            for mode in ("guard", "bwrap"):
                started = time.perf_counter()
                for task_id, problem in benchmark.problems.items():
                    if mode == "guard":
                        result = check_correctness(
                            benchmark.name, 0, problem, samples[task_id], expected[task_id],
                            False, True, task_id, 1.0, 4.0,
                        )  # fmt: skip
                    else:
                        result = _sandboxed_check(
                            sandbox, benchmark.name, problem, samples[task_id],
                            packed[task_id], 1.0, 4.0,
                        )  # fmt: skip
                    assert result["base"][0] in ("pass", "fail", "timeout")
                times[mode].append((time.perf_counter() - started) / len(samples))
    return {mode: statistics.median(values) for mode, values in times.items()}


def throughput(benchmark, samples, mode: str, n_workers: int, rounds: int) -> float:
    """Executions per second through the scoring pool (median of ``rounds``, after warm-up)."""
    rows = [{"task_id": task_id, "solution": solution} for task_id, solution in samples.items()]
    rates = []
    with Scorer(n_workers, sandbox=mode) as scorer:
        scorer.score(benchmark, rows)  # boots the workers (and their containers)
        for _ in range(rounds):
            started = time.perf_counter()
            scorer.score(benchmark, rows)
            rates.append(len(rows) / (time.perf_counter() - started))
    return statistics.median(rates)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    default_data = project_root().parent / "shared" / "data" / "HumanEvalPlus-v0.1.10.jsonl.gz"
    parser.add_argument("--humaneval", default=str(default_data), help="HumanEval+ file")
    parser.add_argument("--limit", type=int, default=40, help="first N tasks (164: all)")
    parser.add_argument("--rounds", type=int, default=1, help="timed rounds per configuration")
    args = parser.parse_args()
    problem = bwrap_problem()
    if problem is not None:
        raise SystemExit(f"needs a working bubblewrap: {problem}")

    benchmark = load_benchmark("humaneval", args.humaneval, limit=args.limit)
    samples = {t: p["prompt"] + p["canonical_solution"] for t, p in benchmark.problems.items()}
    cores = os.cpu_count() or 1
    print(f"{len(samples)} HumanEval+ canonical solutions, {cores} cores")

    seconds = per_program(benchmark, samples, default_groundtruth_dir(), args.rounds)
    print("\nper program, one at a time:")
    print(f"  evalplus guard alone   {seconds['guard'] * 1000:8.1f} ms")
    print(f"  bubblewrap sandbox     {seconds['bwrap'] * 1000:8.1f} ms")
    print(f"  ratio                  {seconds['bwrap'] / seconds['guard']:8.2f}x")

    print("\nexecutions/s through the scoring pool:")
    print(f"  {'mode':<8}{'1 worker':>10}{f'{cores} workers':>12}{'speed-up':>10}")
    for mode in ("none", "bwrap"):
        one = throughput(benchmark, samples, mode, 1, args.rounds)
        every = throughput(benchmark, samples, mode, cores, args.rounds)
        print(f"  {mode:<8}{one:>10.2f}{every:>12.2f}{every / one:>9.2f}x")


if __name__ == "__main__":
    main()
