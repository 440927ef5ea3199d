"""``run_generate``: seed snippets → teacher → OSS-Instruct rows, resumable and cached.

Files, all under ``output_dir`` and named after fingerprints (so different settings never
share a file, and equal settings always do):

* ``seeds-<source>-<seeds fp>.jsonl``: every snippet ``{"index", "raw_index", "lang", "seed"}``
  (built once; a resumed run reads it instead of the source);
* ``oss-instruct-<source>-<teacher>-<fp>.jsonl``: accepted rows (the raw OSS-Instruct row
  contract), appended and flushed one by one as responses complete;
* ``oss-instruct-<source>-<teacher>-<fp>.rejects.jsonl``: every other response, with its
  ``reason``;
* ``oss-instruct-<source>-<teacher>-<fp>.json``: what the fingerprint covers.

Every index of ``[start_index, start_index + num_rows)`` ends up in exactly one of the two row
files. ``resume=true`` cuts a torn last line and requests only the indices in neither file.
"""

from __future__ import annotations

import asyncio
import json
import logging
import time
from collections import Counter, deque
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from hydra.utils import instantiate
from omegaconf import DictConfig

from magicoder.generation.parsing import parse_response
from magicoder.generation.seeds import SeedSource, config_fingerprint
from magicoder.generation.teacher import (
    Completion,
    RequestRejected,
    ResponseCache,
    TeacherClient,
    TeacherSettings,
    TeacherUnavailable,
)
from magicoder.io import JsonlAppender, iter_jsonl, read_indices, repair_jsonl, write_jsonl
from magicoder.lifecycle import Run, run_app
from magicoder.progress import Progress
from magicoder.prompts import GENERATION_PROMPTS, PROMPTS_WITH_TESTS

log = logging.getLogger(__name__)


# The (system, user) pairs whose responses carry tests: _answer sees the pair, not the version.
_PROMPTS_WITH_TESTS = [GENERATION_PROMPTS[version] for version in sorted(PROMPTS_WITH_TESTS)]


def generation_prompts(version: str) -> tuple[str, str]:
    """The (system, user) prompt pair of a prompt version.

    Raises:
        ValueError: For an unknown version, listing the known ones.
    """
    if version not in GENERATION_PROMPTS:
        raise ValueError(
            f"prompt={version!r} is unknown; use one of {sorted(GENERATION_PROMPTS)} "
            "(magicoder/prompts.py GENERATION_PROMPTS)"
        )
    return GENERATION_PROMPTS[version]


def build_messages(system: str, user: str, snippet: str) -> list[dict[str, str]]:
    """The chat messages asking the teacher for a problem inspired by ``snippet``."""
    return [
        {"role": "system", "content": system},
        {"role": "user", "content": user.format(code=snippet)},
    ]


@dataclass(frozen=True)
class GenerationFiles:
    """Where one generation config writes.

    Attributes:
        seeds: The snippet file.
        rows: Accepted rows.
        rejects: Rejected responses.
        manifest: What the fingerprint covers.
        fingerprint: Hash of seeds, teacher sampling settings and prompts.
    """

    seeds: Path
    rows: Path
    rejects: Path
    manifest: Path
    fingerprint: str


def plan_files(
    output_dir: Path, source: SeedSource, teacher: TeacherSettings, prompt_version: str
) -> tuple[GenerationFiles, dict[str, Any]]:
    """Name the files of a generation config and describe what its fingerprint covers."""
    system, user = generation_prompts(prompt_version)
    covered = {
        "seeds": {"name": source.name, "fingerprint": source.fingerprint()},
        "teacher": teacher.identity(),
        "prompt": {"version": prompt_version, "system": system, "user": user},
    }
    fp = config_fingerprint(covered)
    stem = f"oss-instruct-{source.name}-{teacher.name}-{fp}"
    files = GenerationFiles(
        seeds=output_dir / f"seeds-{source.name}-{source.fingerprint()}.jsonl",
        rows=output_dir / f"{stem}.jsonl",
        rejects=output_dir / f"{stem}.rejects.jsonl",
        manifest=output_dir / f"{stem}.json",
        fingerprint=fp,
    )
    return files, covered


def load_or_build_seeds(source: SeedSource, path: Path) -> list[dict[str, Any]]:
    """Read the snippet file, or build it from the source (written atomically)."""
    if path.is_file():
        seeds = list(iter_jsonl(path))
        log.info("Seeds: %d snippets from %s", len(seeds), path)
        return seeds
    seeds = source.snippets()
    path.parent.mkdir(parents=True, exist_ok=True)
    write_jsonl(path, seeds)
    log.info("Seeds: wrote %d snippets to %s", len(seeds), path)
    return seeds


@dataclass
class GenerationStats:
    """Counts of one invocation."""

    accepted: int = 0
    rejected: int = 0
    cache_hits: int = 0
    prompt_tokens: int = 0
    completion_tokens: int = 0
    cost_usd: float = 0.0
    requests: int = 0
    retries: int = 0
    reasons: Counter[str] = field(default_factory=Counter)
    started: float = field(default_factory=time.monotonic)

    @property
    def rows(self) -> int:
        """Rows finished by this invocation."""
        return self.accepted + self.rejected

    def rows_per_sec(self) -> float:
        """Finished rows per second of wall time so far."""
        return self.rows / max(time.monotonic() - self.started, 1e-9)

    def metrics(self) -> dict[str, float]:
        """Slash-namespaced metrics."""
        return {
            "generate/accepted": float(self.accepted),
            "generate/rejected": float(self.rejected),
            "generate/rows": float(self.rows),
            "generate/cache_hits": float(self.cache_hits),
            "generate/prompt_tokens": float(self.prompt_tokens),
            "generate/completion_tokens": float(self.completion_tokens),
            "generate/cost_usd": self.cost_usd,
            "generate/rows_per_sec": self.rows_per_sec(),
            "generate/requests": float(self.requests),
            "generate/retries": float(self.retries),
        }


def _record(
    seed_row: dict[str, Any], model: str, fingerprint: str | None, finish: str | None
) -> dict[str, Any]:
    return {
        "index": seed_row["index"],
        "raw_index": seed_row["raw_index"],
        "lang": seed_row["lang"],
        "seed": seed_row["seed"],
        "teacher_model": model,
        "teacher_fingerprint": fingerprint,
        "finish_reason": finish,
    }


async def generate_rows(
    pending: list[dict[str, Any]],
    client: TeacherClient,
    prompts: tuple[str, str],
    rows: JsonlAppender,
    rejects: JsonlAppender,
    stats: GenerationStats,
    on_row: Callable[[], None] | None = None,
) -> None:
    """Ask the teacher about each pending snippet, ``client.settings.concurrency`` at a time.

    Each finished row is written at once to ``rows`` or ``rejects``. The first fatal error
    (endpoint down after all retries, or misconfigured) cancels the requests in flight and is
    raised; rows already written stay.

    Args:
        pending: Seed rows to do.
        client: The teacher client.
        prompts: (system, user) prompts.
        rows: Accepted-row file.
        rejects: Rejected-row file.
        stats: Updated as rows finish.
        on_row: Called with no arguments after each row.
    """
    queue = deque(pending)

    async def worker() -> None:
        while queue:
            await _answer(queue.popleft(), client, prompts, rows, rejects, stats)
            if on_row is not None:
                on_row()

    try:
        await _run_until_first_error(worker, min(client.settings.concurrency, len(queue)))
    finally:
        stats.requests, stats.retries = client.requests, client.retries


async def _answer(
    seed_row: dict[str, Any],
    client: TeacherClient,
    prompts: tuple[str, str],
    rows: JsonlAppender,
    rejects: JsonlAppender,
    stats: GenerationStats,
) -> None:
    """Ask the teacher about one snippet and write the outcome to ``rows`` or ``rejects``."""
    settings = client.settings
    system, user = prompts
    messages = build_messages(system, user, seed_row["seed"])
    try:
        completion = await client.complete(messages, settings.seed + seed_row["index"])
    except RequestRejected as err:
        record = _record(seed_row, settings.model, None, None)
        _reject(rejects, stats, record, None, f"request rejected ({err})")
        return
    _count_usage(stats, settings, completion)
    record = _record(
        seed_row, completion.model, completion.system_fingerprint, completion.finish_reason
    )
    parsed = parse_response(
        completion.content, completion.finish_reason, with_tests=prompts in _PROMPTS_WITH_TESTS
    )
    if parsed.accepted:
        row = {**record, "problem": parsed.problem, "solution": parsed.solution}
        if parsed.tests is not None:
            row["tests"] = parsed.tests
        rows.write(row)
        stats.accepted += 1
    else:
        assert parsed.reason is not None
        _reject(rejects, stats, record, completion.content, parsed.reason)


def _count_usage(stats: GenerationStats, settings: TeacherSettings, completion: Completion) -> None:
    # A cached response cost nothing this time, so only its hit is counted.
    if completion.cached:
        stats.cache_hits += 1
        return
    stats.prompt_tokens += completion.prompt_tokens
    stats.completion_tokens += completion.completion_tokens
    stats.cost_usd += settings.cost(completion.prompt_tokens, completion.completion_tokens)


def _reject(
    rejects: JsonlAppender,
    stats: GenerationStats,
    record: dict[str, Any],
    response: str | None,
    reason: str,
) -> None:
    rejects.write({**record, "response": response, "reason": reason})
    stats.rejected += 1
    stats.reasons[reason] += 1


async def _run_until_first_error(worker: Callable[[], Awaitable[None]], n_workers: int) -> None:
    """Run ``n_workers`` copies of ``worker``; the first error cancels the others and is raised."""
    tasks = [asyncio.ensure_future(worker()) for _ in range(n_workers)]
    if not tasks:
        return
    done, in_flight = await asyncio.wait(tasks, return_when=asyncio.FIRST_EXCEPTION)
    for task in in_flight:
        task.cancel()
    await asyncio.gather(*in_flight, return_exceptions=True)
    for task in done:
        error = task.exception()
        if error is not None:
            raise error


async def _generate_with_client(
    settings: TeacherSettings,
    cache: ResponseCache | None,
    pending: list[dict[str, Any]],
    prompts: tuple[str, str],
    rows: JsonlAppender,
    rejects: JsonlAppender,
    stats: GenerationStats,
    on_row: Callable[[], None],
) -> None:
    async with TeacherClient(settings, cache) as client:
        await generate_rows(pending, client, prompts, rows, rejects, stats, on_row)


def _check_resume(files: GenerationFiles, resume: bool) -> set[int]:
    """Indices already finished; refuse to touch existing files unless resuming."""
    existing = [p for p in (files.rows, files.rejects) if p.is_file() and p.stat().st_size]
    if existing and not resume:
        raise FileExistsError(
            f"{existing[0]} already holds rows of this exact configuration; pass resume=true "
            "to continue it (or delete the files to start over: the response cache makes "
            "the rerun free)"
        )
    done: list[int] = []
    for path in (files.rows, files.rejects):
        repair_jsonl(path)
        done.extend(read_indices(path))
    counts = Counter(done)
    duplicates = sorted(i for i, n in counts.items() if n > 1)
    if duplicates:
        raise ValueError(
            f"indices {duplicates[:10]} appear more than once in {files.rows} / "
            f"{files.rejects}; these files were not written by one configuration, remove them"
        )
    return set(counts)


@dataclass
class GenerationPlan:
    """What one invocation will do, checked before any request is sent."""

    teacher: TeacherSettings
    prompts: tuple[str, str]
    files: GenerationFiles
    pending: list[dict[str, Any]]


def plan_generation(cfg: DictConfig) -> GenerationPlan:
    """Check the seeds, teacher and prompt, name the files and list the rows still to do.

    Raises:
        ValueError, FileExistsError: Naming the setting to fix.
    """
    if cfg.start_index < 0 or (cfg.num_rows is not None and cfg.num_rows < 0):
        raise ValueError(
            f"start_index={cfg.start_index}, num_rows={cfg.num_rows}: both must be >= 0"
        )
    log.info("Seeds: %s", cfg.seeds._target_)
    source: SeedSource = instantiate(cfg.seeds)
    source.check()
    log.info("Teacher: %s at %s", cfg.teacher.model, cfg.teacher.base_url)
    teacher: TeacherSettings = instantiate(cfg.teacher)
    teacher.check()
    prompts = generation_prompts(cfg.prompt)
    files, covered = plan_files(Path(cfg.output_dir).expanduser(), source, teacher, cfg.prompt)
    done = _check_resume(files, bool(cfg.resume))
    seeds = load_or_build_seeds(source, files.seeds)
    end = len(seeds) if cfg.num_rows is None else min(cfg.start_index + cfg.num_rows, len(seeds))
    if cfg.num_rows is not None and cfg.start_index + cfg.num_rows > len(seeds):
        log.warning(
            "Only %d snippets exist; generating indices %d..%d", len(seeds), cfg.start_index, end
        )
    pending = [seeds[i] for i in range(cfg.start_index, end) if i not in done]
    if not files.manifest.is_file():
        files.manifest.write_text(json.dumps(covered, indent=2) + "\n")
    log.info(
        "Output %s: %d rows to generate, %d of the range already done",
        files.rows,
        len(pending),
        max(0, end - cfg.start_index) - len(pending),
    )
    return GenerationPlan(teacher, prompts, files, pending)


def _send_requests(run: Run, plan: GenerationPlan, stats: GenerationStats) -> None:
    """Ask the teacher about every pending row, writing each as it finishes."""
    cfg = run.cfg
    cache = ResponseCache(Path(cfg.cache_path).expanduser()) if cfg.cache else None
    log_every = max(1, int(cfg.log_every_n_rows))
    with (
        JsonlAppender(plan.files.rows, fsync=cfg.fsync) as rows_out,
        JsonlAppender(plan.files.rejects, fsync=cfg.fsync) as rejects_out,
        Progress(
            total=len(plan.pending),
            desc="generate",
            unit="rows",
            disable=not cfg.progress_bar,
            logger=log,
        ) as progress,
    ):

        def on_row() -> None:
            progress.update(1, accepted=stats.accepted, rejected=stats.rejected)
            if stats.rows % log_every == 0:
                run.log_metrics(stats.metrics(), step=stats.rows)

        try:
            asyncio.run(
                _generate_with_client(
                    plan.teacher,
                    cache,
                    plan.pending,
                    plan.prompts,
                    rows_out,
                    rejects_out,
                    stats,
                    on_row,
                )
            )
        finally:
            if cache is not None:
                cache.close()


def _summarize(run: Run, plan: GenerationPlan, stats: GenerationStats) -> None:
    files = plan.files
    metrics = {
        **stats.metrics(),
        "generate/total_accepted": float(len(read_indices(files.rows))),
        "generate/total_rejected": float(len(read_indices(files.rejects))),
        "generate/remaining": float(len(plan.pending) - stats.rows),
    }
    for reason, n in stats.reasons.most_common():
        log.info("Rejected %d: %s", n, reason)
    log.info(
        "Generated %d rows (%d accepted, %d rejected, %d from cache) at %.2f rows/s; "
        "%d prompt + %d completion tokens, estimated cost $%.4f; %d retries",
        stats.rows,
        stats.accepted,
        stats.rejected,
        stats.cache_hits,
        metrics["generate/rows_per_sec"],
        stats.prompt_tokens,
        stats.completion_tokens,
        stats.cost_usd,
        stats.retries,
    )
    run.log_metrics(metrics, step=stats.rows, summary=True)
    run.summarize({"generate/reasons": dict(stats.reasons)})


def _generate(run: Run) -> None:
    for name in ("httpx", "httpx2"):  # one INFO line per request would drown the progress
        logging.getLogger(name).setLevel(max(logging.getLogger(name).level, logging.WARNING))
    plan = plan_generation(run.cfg)
    run.hparams["fingerprint"] = plan.files.fingerprint
    stats = GenerationStats()
    try:
        try:
            _send_requests(run, plan, stats)
        finally:  # rows finished before a failure are counted and logged too
            _summarize(run, plan, stats)
    except TeacherUnavailable as error:
        raise TeacherUnavailable(
            f"{error}. {int(run.metrics['generate/total_accepted'])} accepted and "
            f"{int(run.metrics['generate/total_rejected'])} rejected rows are safe in "
            f"{plan.files.rows} and {plan.files.rejects}; once the endpoint is back, rerun "
            f"with resume=true to do the remaining {len(plan.pending) - stats.rows} rows"
        ) from error
    log.info("Rows: %s (rejects: %s)", plan.files.rows, plan.files.rejects)


def run_generate(cfg: DictConfig) -> dict[str, Any]:
    """Generate OSS-Instruct rows for ``cfg.num_rows`` seeds from ``cfg.start_index`` on.

    Args:
        cfg: The composed ``conf/generate.yaml``.

    Returns:
        Counts, token use and cost of this invocation (``generate/*``) and the totals in the
        output files (``generate/total_*``); also written to ``<run dir>/metrics.json``.

    Raises:
        TeacherUnavailable: When the endpoint keeps failing; rows finished before stay written
            and ``resume=true`` continues after it is back.
    """
    return run_app(cfg, _generate)
