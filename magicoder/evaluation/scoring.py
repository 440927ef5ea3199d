"""Score full programs on HumanEval+ / MBPP+ with EvalPlus's own machinery.

``evalplus.evaluate.evaluate`` reads samples from a file and insists that every task of the
dataset is present, so a ``limit``-ed quick run cannot use it. We drive the same pieces it
does instead -- ``get_groundtruth``'s computation of expected outputs (per task here, see
:func:`expected_output`) and ``check_correctness`` (which runs each program under
``untrusted_check``'s time and memory limits) -- with the same arguments, so statuses and
pass@1 match evalplus's for the same samples (the integration tests check this against
evalplus's CLI).

Nothing runs in the calling process: both steps go to a pool of *spawned* workers, so the
generated code is never executed next to (or forked from) a process holding a model. Spawned
workers re-import the caller's ``__main__``, so scripts need an ``if __name__ == "__main__"``
guard. Because these workers are lean, evalplus's 4 GiB address-space cap per sandbox
(``EVALPLUS_MAX_MEMORY_BYTES``) leaves programs more room than under evalplus's CLI, which forks
its sandboxes from a process holding the whole ground truth: a memory-hungry program (e.g.
MBPP+'s canonical Mbpp/255 on its largest input) can pass here and fail there.

Sandboxing (``sandbox``: see :mod:`magicoder.sandbox`): with bubblewrap each worker holds one
sandbox container, and a task's *check job* -- evalplus's ``check_correctness`` on one program
over all its test inputs, with evalplus's statuses and time limits unchanged -- runs there; the
worker only computes expected outputs (the canonical solutions are trusted) and orchestrates.
A program that kills its parent, hangs past evalplus's limits or crashes the check only fails
its own task ("fail", or "timeout" past the deadline); the container is replaced and the other
tasks are scored, and nothing it started outlives its job. ``none`` runs ``check_correctness``
in the worker, as evalplus does.
"""

from __future__ import annotations

import atexit
import logging
import multiprocessing
import os
import pickle
import time
from concurrent.futures import Future, ProcessPoolExecutor, as_completed
from pathlib import Path
from typing import Any

from evalplus.config import DEFAULT_GT_TIME_LIMIT_FACTOR, DEFAULT_MIN_TIME_LIMIT
from evalplus.eval import FAIL, PASS, TIMEOUT
from evalplus.eval._special_oracle import MBPP_OUTPUT_NOT_NONE_TASKS
from evalplus.evaluate import check_correctness
from evalplus.gen.util import trusted_exec

from magicoder.evaluation.benchmarks import Benchmark
from magicoder.progress import Progress
from magicoder.sandbox import Sandbox, evalplus_deadline, resolve_mode

logger = logging.getLogger(__name__)


_SANDBOX: Sandbox | None = None  # this worker's container, when scoring runs sandboxed


def _init_worker(sandbox_mode: str = "none") -> None:
    """Let evalplus fork its per-program sandboxes from this (clean, spawned) worker, and
    give the worker its sandbox container when ``sandbox_mode`` is "bwrap".

    A spawned process makes "spawn" its default start method, and ``untrusted_check`` starts
    one process per program and test set with the default method: re-importing evalplus in each
    of those makes scoring ~10x slower. Forking a freshly spawned worker is cheap and shares
    nothing with the caller.
    """
    global _SANDBOX
    if "fork" in multiprocessing.get_all_start_methods():
        multiprocessing.set_start_method("fork", force=True)
    if sandbox_mode == "bwrap":
        _SANDBOX = Sandbox("bwrap")
        atexit.register(_SANDBOX.close)


def default_groundtruth_dir() -> Path:
    """``$MAGICODER_CACHE/groundtruth`` (``~/.cache/magicoder/groundtruth`` when unset)."""
    cache = os.environ.get("MAGICODER_CACHE") or os.path.join(
        os.path.expanduser("~"), ".cache", "magicoder"
    )
    return Path(cache) / "groundtruth"


def _oracle_path(
    benchmark_name: str, dataset_hash: str, task_id: str, groundtruth_dir: Path
) -> Path:
    return (
        groundtruth_dir / f"{benchmark_name}-{dataset_hash}" / (task_id.replace("/", "_") + ".pkl")
    )


def _write_atomically(path: Path, record: dict[str, Any]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    partial = path.with_name(f"{path.name}.{os.getpid()}.tmp")
    with partial.open("wb") as f:
        pickle.dump(record, f, protocol=pickle.HIGHEST_PROTOCOL)
    os.replace(partial, path)


def _pack(oracle: dict[str, Any]) -> dict[str, Any]:
    return {
        "base_time": oracle["base_time"],
        "plus_time": oracle["plus_time"],
        "outputs": pickle.dumps(
            {"base": oracle["base"], "plus": oracle["plus"]}, protocol=pickle.HIGHEST_PROTOCOL
        ),
    }


def unpack_oracle(packed: dict[str, Any]) -> dict[str, Any]:
    """The expected outputs and reference times that :func:`packed_oracle` stores packed."""
    return {
        **pickle.loads(packed["outputs"]),
        "base_time": packed["base_time"],
        "plus_time": packed["plus_time"],
    }


def packed_oracle(
    benchmark_name: str, dataset_hash: str, problem: dict[str, Any], groundtruth_dir: Path
) -> dict[str, Any]:
    """One task's reference times and, as one pickled blob, its expected outputs.

    The outputs stay packed until the check that compares against them: a worker reads the
    blob as bytes and hands it to its sandbox as bytes, so a task whose outputs are huge is
    unpickled once, not three times (worker, pickling the job, sandbox). MBPP+'s Mbpp/255
    has about 780 MB of them: one pass over its millions of small objects takes tens of
    seconds on a busy core. Computed (and cached) by :func:`expected_output`'s rules.
    """
    path = _oracle_path(benchmark_name, dataset_hash, problem["task_id"], groundtruth_dir)
    if path.is_file():
        with path.open("rb") as f:
            cached = pickle.load(f)
        if isinstance(cached.get("outputs"), bytes):
            return cached
        packed = _pack(cached)  # written unpacked by an earlier version: repack it once
        _write_atomically(path, packed)
        return packed
    code = problem["prompt"] + problem["canonical_solution"]
    output_not_none = benchmark_name == "mbpp" and (
        problem["entry_point"] in MBPP_OUTPUT_NOT_NONE_TASKS
    )
    oracle: dict[str, Any] = {}
    for split in ("base", "plus"):
        oracle[split], oracle[f"{split}_time"] = trusted_exec(
            code,
            problem[f"{split}_input"],
            problem["entry_point"],
            record_time=True,
            output_not_none=output_not_none,
        )
    packed = _pack(oracle)
    _write_atomically(path, packed)
    return packed


def expected_output(
    benchmark_name: str, dataset_hash: str, problem: dict[str, Any], groundtruth_dir: Path
) -> dict[str, Any]:
    """One task's expected outputs and reference times, computed once per machine.

    The same computation as evalplus's ``get_groundtruth`` (the canonical solution run on
    every base and plus input by ``trusted_exec``, timing each input), but per task: the task's
    check job computes it, so the work spreads over every scoring worker, a subset (``limit``)
    computes only its tasks, an interrupted run keeps what it computed, and no worker ever
    holds or pickles a whole dataset's outputs (MBPP+ v0.2.0's are about 800 MB). Stored as
    ``<groundtruth_dir>/<benchmark>-<dataset md5>/<task>.pkl``, written atomically, with the
    outputs packed (:func:`packed_oracle`).

    Returns:
        ``{"base", "plus", "base_time", "plus_time"}``, as evalplus's ground truth has them.
    """
    return unpack_oracle(packed_oracle(benchmark_name, dataset_hash, problem, groundtruth_dir))


def _check_task(
    benchmark_name: str,
    dataset_hash: str,
    problem: dict[str, Any],
    solution: str,
    groundtruth_dir: Path,
    min_time_limit: float,
    gt_time_limit_factor: float,
) -> dict[str, Any]:
    """evalplus's ``check_correctness`` on one program, with ``evalplus.evaluate``'s arguments
    (in this worker's sandbox container when it has one)."""
    packed = packed_oracle(benchmark_name, dataset_hash, problem, groundtruth_dir)
    if _SANDBOX is not None:
        return _sandboxed_check(
            _SANDBOX,
            benchmark_name,
            problem,
            solution,
            packed,
            min_time_limit,
            gt_time_limit_factor,
        )
    return check_correctness(
        benchmark_name,
        0,  # completion_id: one sample per task
        problem,
        solution,
        unpack_oracle(packed),
        False,  # base_only
        True,  # fast_check: evalplus.evaluate's default (no per-test details)
        problem["task_id"],
        min_time_limit,
        gt_time_limit_factor,
    )


def _sandboxed_check(
    sandbox: Sandbox,
    benchmark_name: str,
    problem: dict[str, Any],
    solution: str,
    packed: dict[str, Any],
    min_time_limit: float,
    gt_time_limit_factor: float,
) -> dict[str, Any]:
    """The same check as :func:`_check_task`'s, as one job in ``sandbox`` (which unpacks the
    expected outputs, :func:`packed_oracle`); a job that dies or runs past evalplus's own time
    limits fails its task (timeout when it hung)."""
    keys = ("task_id", "entry_point", "atol", "base_input", "plus_input")
    job = {
        "kind": "evalplus",
        "dataset": benchmark_name,
        "problem": {key: problem[key] for key in keys},
        "solution": solution,
        "expected": packed,
        "min_time_limit": min_time_limit,
        "gt_time_limit_factor": gt_time_limit_factor,
        "deadline": evalplus_deadline(
            [packed["base_time"], packed["plus_time"]], min_time_limit, gt_time_limit_factor
        ),
    }
    answer = sandbox.call(job)
    result: dict[str, Any] = {"task_id": problem["task_id"], "solution": solution}
    if answer.get("ok"):
        for split in ("base", "plus"):
            status, details = answer[split]
            if status not in (PASS, FAIL, TIMEOUT):
                status = FAIL
            result[split] = (status, details)
        return result
    status = TIMEOUT if answer.get("timed_out") else FAIL
    logger.warning(
        "%s: its check ended abnormally (%s); scored %s",
        problem["task_id"],
        answer.get("error"),
        status,
    )
    result["base"] = result["plus"] = (status, [])
    return result


def _check_samples(benchmark: Benchmark, samples: list[dict[str, Any]]) -> dict[str, str]:
    """Map task_id -> solution, refusing unknown, duplicate and missing tasks."""
    solutions: dict[str, str] = {}
    for sample in samples:
        task_id = sample.get("task_id")
        if task_id not in benchmark.problems:
            raise ValueError(
                f"Sample for task {task_id!r} is not in {benchmark.name} {benchmark.version} "
                f"({len(benchmark.problems)} tasks from {benchmark.path}); score samples "
                "against the benchmark (and limit) they were generated for."
            )
        if task_id in solutions:
            raise ValueError(
                f"Task {task_id!r} has more than one sample; greedy pass@1 takes exactly one "
                "per task."
            )
        solution = sample.get("solution")
        if not isinstance(solution, str):
            raise ValueError(f"Sample for {task_id!r} needs a string 'solution' (full program).")
        solutions[task_id] = solution
    missing = [task_id for task_id in benchmark.problems if task_id not in solutions]
    if missing:
        raise ValueError(
            f"{len(missing)} task(s) of {benchmark.name} have no sample, e.g. {missing[:5]}; "
            "every task needs one (use eval.limit to score the first N tasks only)."
        )
    return solutions


class Scorer:
    """A pool of spawned scoring workers that serves every benchmark of an evaluation.

    Booting the workers once per evaluation, not once per benchmark, saves their start-up
    (about 10 s on 2 cores). Each task's job computes or loads its expected outputs itself
    (see :func:`expected_output`).

    Args:
        n_workers: Worker processes; None uses every CPU (``evalplus.evaluate`` uses half: the
            model is idle while programs run, so the other half would only wait).
        groundtruth_dir: Where expected outputs are cached; None: :func:`default_groundtruth_dir`.
        sandbox: "auto", "bwrap" or "none" (:mod:`magicoder.sandbox`).

    Raises:
        ValueError: If ``n_workers`` < 1 or ``sandbox`` is unknown.
        SandboxUnavailable: ``sandbox="bwrap"`` where bubblewrap cannot run.
    """

    def __init__(
        self,
        n_workers: int | None = None,
        groundtruth_dir: str | Path | None = None,
        sandbox: str = "auto",
    ):
        self.n_workers = _worker_count(n_workers)
        self.groundtruth_dir = Path(groundtruth_dir or default_groundtruth_dir()).expanduser()
        self.sandbox = resolve_mode(sandbox)
        self._executor = _spawn_pool(self.n_workers, self.sandbox)

    def score(
        self,
        benchmark: Benchmark,
        samples: list[dict[str, Any]],
        *,
        min_time_limit: float = DEFAULT_MIN_TIME_LIMIT,
        gt_time_limit_factor: float = DEFAULT_GT_TIME_LIMIT_FACTOR,
    ) -> list[dict[str, Any]]:
        """Run EvalPlus's base and plus tests on one program per task (see :func:`score`)."""
        solutions = _check_samples(benchmark, samples)
        started = time.perf_counter()
        futures = [
            self._executor.submit(
                _check_task,
                benchmark.name,
                benchmark.dataset_hash,
                problem,
                solutions[task_id],
                self.groundtruth_dir,
                min_time_limit,
                gt_time_limit_factor,
            )
            for task_id, problem in benchmark.problems.items()
        ]
        results = _collect_results(futures, benchmark.name)
        logger.info(
            "%s: scored %d tasks in %.1f s with %d worker(s)",
            benchmark.name,
            len(results),
            time.perf_counter() - started,
            self.n_workers,
        )
        return [_status_row(task_id, results[task_id]) for task_id in benchmark.problems]

    def close(self) -> None:
        """Stop the workers.

        Don't wait for a worker that may still be booting (re-importing the caller's
        ``__main__``) only to tell it to exit; it exits on its own.
        """
        self._executor.shutdown(wait=False, cancel_futures=True)

    def __enter__(self) -> Scorer:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()


def score(
    benchmark: Benchmark,
    samples: list[dict[str, Any]],
    *,
    n_workers: int | None = None,
    groundtruth_dir: str | Path | None = None,
    min_time_limit: float = DEFAULT_MIN_TIME_LIMIT,
    gt_time_limit_factor: float = DEFAULT_GT_TIME_LIMIT_FACTOR,
    sandbox: str = "auto",
) -> list[dict[str, Any]]:
    """Run EvalPlus's base and plus tests on one program per task, in a pool of its own.

    Args:
        benchmark: The benchmark (possibly ``limit``-ed) the samples answer.
        samples: ``{"task_id", "solution"}`` dicts, one per task, ``solution`` a full program.
        n_workers: Worker processes (see :class:`Scorer`).
        groundtruth_dir: The expected-output cache (see :class:`Scorer`).
        min_time_limit: Minimum seconds per test input (evalplus's ``--min-time-limit``).
        gt_time_limit_factor: Time limit as a multiple of the canonical solution's time
            (evalplus's ``--gt-time-limit-factor``).
        sandbox: Where programs run (see :class:`Scorer`).

    Returns:
        One row per task in benchmark order:
        ``{"task_id", "base_status", "plus_status", "solution"}``, statuses being evalplus's
        "pass", "fail" or "timeout".

    Raises:
        ValueError: Samples for unknown tasks, duplicate or missing tasks, or ``n_workers`` < 1.
    """
    with Scorer(n_workers, groundtruth_dir, sandbox) as scorer:
        return scorer.score(
            benchmark,
            samples,
            min_time_limit=min_time_limit,
            gt_time_limit_factor=gt_time_limit_factor,
        )


def _status_row(task_id: str, result: dict[str, Any]) -> dict[str, Any]:
    return {
        "task_id": task_id,
        "base_status": result["base"][0],
        "plus_status": result["plus"][0],
        "solution": result["solution"],
    }


def _worker_count(n_workers: int | None) -> int:
    if n_workers is None:
        return os.cpu_count() or 1
    if n_workers < 1:
        raise ValueError(f"eval.n_workers={n_workers!r} must be >= 1 (or null for every CPU).")
    return n_workers


def _spawn_pool(n_workers: int, sandbox_mode: str) -> ProcessPoolExecutor:
    # "spawn": clean interpreters that share nothing with a caller holding a model or CUDA.
    # (A spawned worker re-imports the caller's __main__ module, so start them once.)
    context = multiprocessing.get_context("spawn")
    return ProcessPoolExecutor(
        max_workers=n_workers,
        mp_context=context,
        initializer=_init_worker,
        initargs=(sandbox_mode,),
    )


def _collect_results(futures: list[Future], benchmark_name: str) -> dict[str, dict[str, Any]]:
    """task_id -> evalplus result, as the checks finish, with progress and running pass counts."""
    results: dict[str, dict[str, Any]] = {}
    base_passed = plus_passed = 0
    with Progress(
        total=len(futures), desc=f"score {benchmark_name}", unit="tasks", logger=logger
    ) as progress:
        for future in as_completed(futures):
            result = future.result()
            results[result["task_id"]] = result
            base_passed += result["base"][0] == PASS
            plus_passed += result["base"][0] == PASS and result["plus"][0] == PASS
            progress.update(1, base_passed=base_passed, plus_passed=plus_passed)
    return results


def pass_at_1(rows: list[dict[str, Any]]) -> tuple[float, float]:
    """Greedy pass@1 from ``score`` rows, as fractions in [0, 1].

    Args:
        rows: One row per task with "base_status" and "plus_status".

    Returns:
        (base, plus): the share of tasks passing the base tests, and the share passing both
        base and plus tests (evalplus's "base + extra tests" number).

    Raises:
        ValueError: If ``rows`` is empty.
    """
    if not rows:
        raise ValueError("pass@1 needs at least one scored task; got no rows.")
    base = sum(row["base_status"] == PASS for row in rows)
    plus = sum(row["base_status"] == PASS and row["plus_status"] == PASS for row in rows)
    return base / len(rows), plus / len(rows)
