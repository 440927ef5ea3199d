"""Execution-verified rows: run each solution against its own tests in the sandbox.

Rows made with a prompt version that asks for tests (``prompt=oss-instruct-tests-v1``) carry a
``tests`` field. :func:`execute_rows` joins the code blocks of the solution and of the tests
into one program, runs it in :mod:`magicoder.sandbox` with a time limit (and the sandbox's
memory, process and file limits), and keeps the rows whose program exits with status 0.
Rejected rows carry ``reason`` -- ``test_failed``, ``timeout``, ``syntax``, ``no_tests``,
``sandbox_error`` or ``no_toolchain`` (only Python runs so far) -- and the captured ``output``.

Results are cached by content hash (the program and the time limit) in a jsonl file, one
flushed line per program, so a rerun executes nothing it has seen and a killed run resumes
where it stopped. ``shard=(i, n)`` executes only the programs whose hash falls in shard ``i``
of ``n`` (for SLURM arrays); :func:`merge_caches` combines the shards' caches into one,
deterministically (sorted by hash), and a run over the merged cache executes nothing.
"""

from __future__ import annotations

import hashlib
import json
import logging
import re
import threading
from collections import Counter
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

from magicoder.io import JsonlAppender, iter_jsonl, repair_jsonl
from magicoder.sandbox import Limits, Sandbox, resolve_mode

logger = logging.getLogger(__name__)

REASONS = ("test_failed", "timeout", "syntax", "no_tests", "sandbox_error", "no_toolchain")
PASSED = "passed"
CACHE_VERSION = 1  # part of every hash: a change in how programs are built or judged bumps it
_FENCE = re.compile(r"```[^\n`]*\n(.*?)```", re.DOTALL)
PYTHON = {"python", "py", "python3"}


def code_of(text: str) -> str:
    """The code in a markdown section: its fenced blocks joined, or the text when unfenced."""
    blocks = _FENCE.findall(text)
    return "\n\n".join(block.strip("\n") for block in blocks) if blocks else text.strip()


def build_program(solution: str, tests: str) -> str:
    """The solution's code, then the tests' code, as one file."""
    return code_of(solution) + "\n\n\n" + code_of(tests) + "\n"


def content_hash(program: str, timeout: float) -> str:
    """What a cached result is keyed by: the program and its time limit."""
    key = json.dumps({"v": CACHE_VERSION, "program": program, "timeout": timeout})
    return hashlib.sha256(key.encode("utf-8")).hexdigest()


def parse_shard(shard: str | None) -> tuple[int, int] | None:
    """``"i/n"`` -> (i, n), 0 <= i < n; None stays None.

    Raises:
        ValueError: A malformed shard, naming it and the expected form.
    """
    if shard is None:
        return None
    match = re.fullmatch(r"\s*(\d+)\s*/\s*(\d+)\s*", str(shard))
    if not match or not 0 <= int(match[1]) < int(match[2]):
        raise ValueError(f"shard={shard!r} must be 'i/n' with 0 <= i < n, e.g. shard=0/4.")
    return int(match[1]), int(match[2])


def in_shard(digest: str, shard: tuple[int, int] | None) -> bool:
    """Whether the program with this hash belongs to ``shard``."""
    return shard is None or int(digest[:16], 16) % shard[1] == shard[0]


def read_cache(path: Path) -> dict[str, dict[str, Any]]:
    """hash -> result from a cache file (a torn last line, from a killed run, is cut off)."""
    if not path.is_file():
        return {}
    repair_jsonl(path)
    return {record["hash"]: record for record in iter_jsonl(path)}


def merge_caches(paths: Sequence[Path], out: Path) -> int:
    """Combine shard caches into ``out`` (each hash once, sorted by hash); returns the count.

    Raises:
        ValueError: Two caches disagree on the result of the same program.
    """
    merged: dict[str, dict[str, Any]] = {}
    for path in paths:
        for digest, record in read_cache(Path(path)).items():
            if digest in merged and merged[digest]["status"] != record["status"]:
                raise ValueError(
                    f"caches disagree on program {digest[:12]}: {merged[digest]['status']} vs "
                    f"{record['status']} in {path}; rerun that shard."
                )
            merged.setdefault(digest, record)
    out.parent.mkdir(parents=True, exist_ok=True)
    partial = out.with_name(out.name + ".tmp")
    with partial.open("w", encoding="utf-8") as f:
        for digest in sorted(merged):
            f.write(json.dumps(merged[digest], ensure_ascii=False) + "\n")
    partial.replace(out)
    return len(merged)


def judge(sandbox: Sandbox, program: str, timeout: float) -> dict[str, Any]:
    """Run one program; ``{"status": "passed" | reason, "output": ...}``."""
    try:
        compile(program, "<solution+tests>", "exec")  # compiling runs nothing
    except (SyntaxError, ValueError) as err:
        return {"status": "syntax", "output": f"{type(err).__name__}: {err}"}
    result = sandbox.run(program, timeout=timeout)
    output = (result.stdout + result.stderr)[-4000:]
    if result.error is not None and not result.timed_out:
        return {"status": "sandbox_error", "output": result.error}
    if result.timed_out:
        return {"status": "timeout", "output": output}
    return {"status": PASSED if result.returncode == 0 else "test_failed", "output": output}


def execute_rows(
    rows: Sequence[dict[str, Any]],
    *,
    cache_path: Path,
    sandbox: str = "auto",
    timeout: float = 10.0,
    shard: str | None = None,
    n_workers: int = 1,
    solution_field: str = "solution",
    limits: Limits | None = None,
) -> tuple[list[dict[str, Any]], list[dict[str, Any]], dict[str, Any]]:
    """Keep the rows whose solution passes its tests.

    Args:
        rows: Rows with ``solution_field``, ``tests`` and ``lang``.
        cache_path: The results cache (created, appended to, reused).
        sandbox: ``auto``, ``bwrap`` or ``none`` (:mod:`magicoder.sandbox`).
        timeout: Seconds per program.
        shard: ``"i/n"``: execute only that shard's programs (the others are left out of both
            lists); None: all.
        n_workers: Programs run at once (one sandbox each).
        solution_field: The field holding the solution.
        limits: Sandbox limits; None: the defaults.

    Returns:
        ``(kept, rejected, funnel)``: rejected rows carry ``reason`` and ``output``; the funnel
        counts rows in, with tests, executed now, cache hits and passing, per language too.
    """
    if timeout <= 0:
        raise ValueError(f"execute timeout={timeout!r} must be positive (seconds per program).")
    if n_workers < 1:
        raise ValueError(f"execute n_workers={n_workers!r} must be >= 1.")
    where = parse_shard(shard)
    mode = resolve_mode(sandbox)
    cache = read_cache(cache_path)
    funnel: dict[str, Any] = {"in": 0, "with_tests": 0, "passed": 0, "executed": 0, "cached": 0}
    by_lang: dict[str, Counter[str]] = {}
    todo: dict[str, str] = {}
    plan: list[tuple[dict[str, Any], str | None, str | None]] = []  # row, hash, reason
    for row in rows:
        program = None
        reason = None
        if str(row.get("lang") or "python").lower() not in PYTHON:
            reason = "no_toolchain"
        elif not str(row.get("tests") or "").strip() or not code_of(str(row["tests"])):
            reason = "no_tests"
        else:
            program = build_program(str(row[solution_field]), str(row["tests"]))
        digest = content_hash(program, timeout) if program is not None else None
        key = digest or hashlib.sha256(json.dumps(row, sort_keys=True).encode()).hexdigest()
        if not in_shard(key, where):
            continue
        plan.append((row, digest, reason))
        if digest is not None and digest not in cache and program is not None:
            todo.setdefault(digest, program)

    lock = threading.Lock()
    local = threading.local()
    sandboxes: list[Sandbox] = []

    def run_one(item: tuple[str, str], appender: JsonlAppender) -> None:
        digest, program = item
        if not hasattr(local, "sandbox"):
            local.sandbox = Sandbox(mode, limits)
            with lock:
                sandboxes.append(local.sandbox)
        record = {"hash": digest, **judge(local.sandbox, program, timeout)}
        with lock:
            appender.write(record)
            cache[digest] = record
            funnel["executed"] += 1

    try:
        with JsonlAppender(cache_path) as appender:
            if n_workers == 1:
                for item in todo.items():
                    run_one(item, appender)
            else:
                with ThreadPoolExecutor(n_workers) as pool:
                    list(pool.map(lambda item: run_one(item, appender), todo.items()))
    finally:
        for box in sandboxes:
            box.close()

    kept: list[dict[str, Any]] = []
    rejected: list[dict[str, Any]] = []
    for row, digest, reason in plan:
        lang = str(row.get("lang") or "python")
        counts = by_lang.setdefault(lang, Counter())
        counts["in"] += 1
        funnel["in"] += 1
        output = ""
        if digest is not None:
            counts["with_tests"] += 1
            funnel["with_tests"] += 1
            result = cache[digest]
            reason = None if result["status"] == PASSED else result["status"]
            output = result.get("output", "")
        if reason is None:
            counts["passed"] += 1
            funnel["passed"] += 1
            kept.append(row)
        else:
            rejected.append({**row, "reason": reason, "output": output})
    funnel["cached"] = sum(1 for _, digest, _ in plan if digest is not None) - funnel["executed"]
    funnel["by_lang"] = {lang: dict(counts) for lang, counts in sorted(by_lang.items())}
    logger.info(
        "execute: %d rows, %d with tests, %d passed (%d programs run, %d from the cache)",
        funnel["in"],
        funnel["with_tests"],
        funnel["passed"],
        funnel["executed"],
        funnel["cached"],
    )
    return kept, rejected, funnel
