"""Helpers shared by the benchmark scripts: child processes, peak memory, result tables.

Every configuration of a benchmark runs in a fresh child process (so its peak memory is its
own), and the configurations are interleaved round after round in one invocation (so slow
phases of a shared machine hit all of them alike).
"""

from __future__ import annotations

import json
import os
import statistics
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import psutil
import torch

REPO = Path(__file__).resolve().parents[1]
RESULT_PREFIX = "BENCHMARK-RESULT "


class PeakMemory:
    """Peak memory while the ``with`` block runs: the CUDA allocator's peak on a GPU, else
    the process's resident set size sampled every few milliseconds (minus the size on entry,
    so imports and loaded data are not counted)."""

    def __init__(self, interval_s: float = 0.005):
        self.interval_s = interval_s
        self.cuda = torch.cuda.is_available()
        self.peak_mib = 0.0
        self.start_mib = 0.0
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def __enter__(self) -> PeakMemory:
        if self.cuda:
            torch.cuda.synchronize()
            torch.cuda.reset_peak_memory_stats()
            self.start_mib = torch.cuda.memory_allocated() / 2**20
            return self
        process = psutil.Process()
        self.start_mib = self.peak_mib = process.memory_info().rss / 2**20

        def sample() -> None:
            while not self._stop.is_set():
                self.peak_mib = max(self.peak_mib, process.memory_info().rss / 2**20)
                time.sleep(self.interval_s)

        self._thread = threading.Thread(target=sample, daemon=True)
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        if self.cuda:
            torch.cuda.synchronize()
            self.peak_mib = torch.cuda.max_memory_allocated() / 2**20
            return
        self._stop.set()
        assert self._thread is not None
        self._thread.join()

    @property
    def increase_mib(self) -> float:
        """Peak above the level on entry."""
        return self.peak_mib - self.start_mib

    @property
    def kind(self) -> str:
        return "CUDA allocated" if self.cuda else "RSS"


def emit(result: dict[str, Any]) -> None:
    """Print a worker's result on one line for the parent to pick up."""
    print(RESULT_PREFIX + json.dumps(result), flush=True)


def run_worker(script: Path, args: Sequence[str], timeout_s: float) -> dict[str, Any]:
    """Run ``script --worker ...`` in a child process and return the result it emits."""
    env = {**os.environ, "TOKENIZERS_PARALLELISM": "false", "WANDB_MODE": "disabled"}
    proc = subprocess.run(
        [sys.executable, str(script), *args],
        capture_output=True,
        text=True,
        timeout=timeout_s,
        env=env,
        cwd=str(REPO),
    )
    for line in proc.stdout.splitlines():
        if line.startswith(RESULT_PREFIX):
            return json.loads(line[len(RESULT_PREFIX) :])
    raise RuntimeError(
        f"worker {' '.join(args)} failed (exit {proc.returncode}):\n{proc.stderr[-4000:]}"
    )


def interleave(
    configs: Sequence[str],
    rounds: int,
    run: Callable[[str], dict[str, Any]],
    log: Callable[[str], None] = print,
) -> dict[str, list[dict[str, Any]]]:
    """Run every config once per round, in the same order each round."""
    results: dict[str, list[dict[str, Any]]] = {c: [] for c in configs}
    for r in range(rounds):
        for config in configs:
            started = time.perf_counter()
            results[config].append(run(config))
            log(f"round {r + 1}/{rounds} {config}: {time.perf_counter() - started:.0f} s")
    return results


def median(results: list[dict[str, Any]], key: str) -> float:
    """Median of ``key`` over a config's rounds."""
    return statistics.median(r[key] for r in results)


def markdown_table(header: Sequence[str], rows: Sequence[Sequence[str]]) -> str:
    """A GitHub-flavoured markdown table."""
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(row) + " |" for row in rows]
    return "\n".join(lines)


def machine() -> str:
    """One line describing where the numbers come from."""
    device = torch.cuda.get_device_name() if torch.cuda.is_available() else "CPU"
    return (
        f"{device}, {os.cpu_count()} cores (torch threads {torch.get_num_threads()}), "
        f"torch {torch.__version__}"
    )
