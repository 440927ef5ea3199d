"""Execution-verified rows: run each solution against its own tests in the sandbox.

Rows made with a prompt version that asks for tests (``prompt=oss-instruct-tests-v1``) carry a
``tests`` field. :func:`execute_rows` joins the code blocks of the solution and of the tests
into one program, runs it in :mod:`magicoder.sandbox` with a time limit (and the sandbox's
memory, process and file limits), and keeps the rows whose program exits with status 0.
Rejected rows carry ``reason`` -- ``test_failed``, ``timeout``, ``syntax`` (Python that does
not parse), ``compile_error`` (a compiled language's build failed), ``no_tests``,
``sandbox_error`` or ``no_toolchain`` -- and the captured ``output``.

Python runs in the sandbox's narrow view (the interpreter and its libraries). Other languages
(:data:`LANGUAGES`: C++, C, JavaScript, shell, Rust, Java) run when their compiler or
interpreter (``toolchains``: ``g++``, ``gcc``, ``node``, ``bash``, ``rustc``, ``java``) is found
in ``/usr/local/bin``, ``/usr/bin`` or ``/bin``, in a sandbox that also binds ``/usr`` read-only;
otherwise, or for a language without an entry, the row is rejected as ``no_toolchain`` and
counted per language. Their program is built the same way: the solution's code, then the tests'
code, in one file (for C++ the tests are a ``main`` with ``assert``; for JavaScript top-level
code that throws, e.g. through ``require("assert")``); it is compiled (or syntax-checked:
``node --check``, ``bash -n``) and run, and exit status 0 is a pass.

Java runs as one source file through the JDK's single-file launcher (``java Main.java``, JDK
11+), which compiles it in memory, allows several public top-level classes in one file and runs
the first class, which must declare ``public static void main``. So a Java program is the tests'
code first, then the solution's (the order of classes in a Java file means nothing to the
compiler; the recorded program is that file, as run). The tests signal failure by a non-zero exit
status: an uncaught exception, or a failed ``assert`` (the JVM runs with ``-ea``). The launcher's
own compile failure (its last line ``error: compilation failed``) is ``compile_error``; as the
compile happens in the run step, ``timeout`` covers both (about a second goes to compiling). The
JVM runs with a small heap, the serial collector and one CPU's worth of threads, so it starts
within the sandbox's address-space and process limits.

Results are cached by content hash (the program, the time limit and, for other languages, the
commands that build and run it) in a jsonl file, one
flushed line per program, so a rerun executes nothing it has seen and a killed run resumes
where it stopped. ``shard=(i, n)`` executes only the programs whose hash falls in shard ``i``
of ``n`` (for SLURM arrays); :func:`merge_caches` combines the shards' caches into one,
deterministically (sorted by hash), and a run over the merged cache executes nothing.
"""

from __future__ import annotations

import glob
import hashlib
import json
import logging
import os
import re
import shutil
import threading
from collections import Counter
from collections.abc import Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from magicoder.io import JsonlAppender, iter_jsonl, repair_jsonl
from magicoder.sandbox import SANDBOX_PATH, Limits, Sandbox, resolve_mode

logger = logging.getLogger(__name__)

REASONS = (
    "test_failed",
    "timeout",
    "syntax",
    "compile_error",
    "no_tests",
    "sandbox_error",
    "no_toolchain",
)
PASSED = "passed"
CACHE_VERSION = 1  # part of every hash: a change in how programs are built or judged bumps it
_FENCE = re.compile(r"```[^\n`]*\n(.*?)```", re.DOTALL)
TOOL = "{tool}"  # in a language's commands: the configured compiler or interpreter


@dataclass(frozen=True)
class Language:
    """How a program of one language (solution, then tests, in one file) is built and run.

    Attributes:
        filename: The program's file name.
        compile: Run first in the program's directory; its failure is ``compile_error``.
            Empty: no separate build (the run step compiles, as Java's launcher does).
        run: Runs the program; exit status 0 is a pass.
        tests_first: The tests' code goes before the solution's (Java: the launcher runs the
            first class, the tests' one with ``main``).
        failed_build: For a run step that compiles the program itself, the last line of its
            standard error when that compile fails (then the result is ``compile_error``).
    """

    filename: str
    compile: tuple[str, ...]
    run: tuple[str, ...]
    tests_first: bool = False
    failed_build: str | None = None


# The JVM reserves address space and starts threads by the machine's size; these keep it within
# the sandbox's RLIMIT_AS and process limit (without them it cannot start its threads there).
JVM_FLAGS = (
    "-Xmx256m",
    "-Xss1m",
    "-XX:MaxMetaspaceSize=128m",
    "-XX:CompressedClassSpaceSize=64m",
    "-XX:ReservedCodeCacheSize=64m",
    "-XX:+UseSerialGC",
    "-XX:TieredStopAtLevel=1",
    "-XX:ActiveProcessorCount=1",
    "-XX:-UsePerfData",
    "-ea",  # the tests' assert statements are checked
)


LANGUAGES: dict[str, Language] = {
    "cpp": Language("main.cpp", (TOOL, "-std=c++17", "-O1", "-o", "main", "main.cpp"), ("./main",)),
    "c": Language("main.c", (TOOL, "-std=c11", "-O1", "-o", "main", "main.c", "-lm"), ("./main",)),
    "javascript": Language("main.js", (TOOL, "--check", "main.js"), (TOOL, "main.js")),
    "shell": Language("main.sh", (TOOL, "-n", "main.sh"), (TOOL, "main.sh")),
    "rust": Language("main.rs", (TOOL, "-O", "-o", "main", "main.rs"), ("./main",)),
    "java": Language(
        "Main.java",
        (),
        (TOOL, *JVM_FLAGS, "Main.java"),
        tests_first=True,
        failed_build="error: compilation failed",
    ),
}
"""Languages other than Python that ``execute`` can run, given their toolchain."""

TOOLCHAINS: dict[str, str | None] = {
    "cpp": "g++",
    "c": "gcc",
    "javascript": "node",
    "shell": "bash",
    "rust": "rustc",
    "java": "java",
}
"""The default ``toolchains``: language -> the command it needs (None: do not run it)."""

ALIASES = {
    "py": "python",
    "python3": "python",
    "c++": "cpp",
    "cxx": "cpp",
    "js": "javascript",
    "node": "javascript",
    "sh": "shell",
    "bash": "shell",
    "rs": "rust",
}


def language_of(row: dict[str, Any]) -> str:
    """A row's language, lower-cased, aliases resolved (no ``lang``: Python)."""
    lang = str(row.get("lang") or "python").strip().lower()
    return ALIASES.get(lang, lang)


def find_toolchains(
    toolchains: Mapping[str, str | None], isolated: bool
) -> dict[str, Language | str]:
    """Which languages can run here.

    A tool is looked up in the sandbox's ``PATH`` (``/usr/local/bin:/usr/bin:/bin``); in a
    bubblewrap sandbox it must also live under ``/usr``, the only part of the machine the
    toolchain sandbox binds (a compiler under a home directory is not seen there).

    Args:
        toolchains: Language -> the compiler or interpreter it needs (None: not run).
        isolated: The programs run in bubblewrap.

    Returns:
        Language -> its commands with the tool's path put in, or why it cannot run.

    Raises:
        ValueError: A language :data:`LANGUAGES` does not know how to build.
    """
    unknown = sorted(set(toolchains) - set(LANGUAGES))
    if unknown:
        raise ValueError(
            f"execute.toolchains names {unknown}, which execute cannot build or run; use "
            f"languages of {sorted(LANGUAGES)} (Python always runs)."
        )
    found: dict[str, Language | str] = {}
    for lang, language in LANGUAGES.items():
        tool = toolchains.get(lang)
        if not tool:
            found[lang] = f"no toolchain is configured for {lang} (execute.toolchains.{lang})"
            continue
        path = shutil.which(tool, path=SANDBOX_PATH)
        if path is None:
            found[lang] = f"{tool} ({lang}) is not on this machine (looked in {SANDBOX_PATH})"
        elif isolated and not os.path.realpath(path).startswith("/usr/"):
            found[lang] = f"{tool} ({lang}) lives outside /usr, which the sandbox cannot see"
        else:
            found[lang] = Language(
                language.filename,
                tuple(path if arg == TOOL else arg for arg in language.compile),
                tuple(path if arg == TOOL else arg for arg in language.run),
                language.tests_first,
                language.failed_build,
            )
    return found


def code_of(text: str) -> str:
    """The code in a markdown section: its fenced blocks joined, or the text when unfenced."""
    blocks = _FENCE.findall(text)
    return "\n\n".join(block.strip("\n") for block in blocks) if blocks else text.strip()


def build_program(solution: str, tests: str, tests_first: bool = False) -> str:
    """The solution's code, then the tests' code (``tests_first``: the other way), as one file."""
    parts = (
        [code_of(tests), code_of(solution)] if tests_first else [code_of(solution), code_of(tests)]
    )
    return "\n\n\n".join(parts) + "\n"


def content_hash(
    program: str, timeout: float, language: Language | None = None, compile_timeout: float = 0.0
) -> str:
    """What a cached result is keyed by: the program, its time limit and, for a language other
    than Python, how it is built and run."""
    record: dict[str, Any] = {"v": CACHE_VERSION, "program": program, "timeout": timeout}
    if language is not None:
        record["build"] = {
            "file": language.filename,
            "compile": list(language.compile),
            "run": list(language.run),
            "compile_timeout": compile_timeout,
        }
        if language.tests_first or language.failed_build is not None:
            record["build"].update(tests_first=language.tests_first, failed=language.failed_build)
    return hashlib.sha256(json.dumps(record).encode("utf-8")).hexdigest()


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


def cache_files(patterns: Sequence[str | Path]) -> list[Path]:
    """The cache files named by paths or glob patterns (a sweep's ``*/execute-cache.jsonl``),
    sorted within each pattern, each once.

    Raises:
        FileNotFoundError: A path or pattern that names no file (a mistyped shard would
            otherwise merge nothing, and the merged run execute that shard again).
    """
    files: list[Path] = []
    for pattern in patterns:
        text = str(Path(pattern).expanduser())
        matches = sorted(glob.glob(text)) if glob.has_magic(text) else [text]
        matches = [m for m in matches if Path(m).is_file()]
        if not matches:
            raise FileNotFoundError(
                f"execute.merge_from entry {str(pattern)!r} names no cache file; give the "
                "shards' execute-cache.jsonl files (paths or glob patterns)."
            )
        files += [Path(m) for m in matches if Path(m) not in files]
    return files


def merge_caches(paths: Sequence[str | Path], out: Path) -> int:
    """Combine shard caches into ``out`` (each hash once, sorted by hash); returns the count.

    Args:
        paths: Cache files or glob patterns (see :func:`cache_files`); ``out`` itself may be
            among them, and may not exist yet.
        out: The merged cache, written atomically.

    Raises:
        FileNotFoundError: A path or pattern names no file.
        ValueError: Two caches disagree on the result of the same program.
    """
    out = Path(out)
    merged: dict[str, dict[str, Any]] = {}
    sources = cache_files([p for p in paths if Path(p) != out])
    if out.is_file() and any(Path(p) == out for p in paths):
        sources.append(out)
    for path in sources:
        for digest, record in read_cache(path).items():
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


def judge(
    sandbox: Sandbox,
    program: str,
    timeout: float,
    language: Language | None = None,
    compile_timeout: float = 30.0,
) -> dict[str, Any]:
    """Run one program; ``{"status": "passed" | reason, "output": ...}``.

    Args:
        sandbox: Where it runs (for ``language``, one made with ``toolchains=True``).
        program: The solution's code and the tests' code (:func:`build_program`).
        timeout: Seconds the program may run.
        language: How to build and run it (:func:`find_toolchains`); None: Python.
        compile_timeout: Seconds its compile step may take.
    """
    if language is None:
        try:
            compile(program, "<solution+tests>", "exec")  # compiling runs nothing
        except (SyntaxError, ValueError) as err:
            return {"status": "syntax", "output": f"{type(err).__name__}: {err}"}
        result = sandbox.run(program, timeout=timeout)
    else:
        result = sandbox.run(
            program,
            timeout=timeout,
            filename=language.filename,
            compile=language.compile or None,
            argv=language.run,
            compile_timeout=compile_timeout,
        )
    output = (result.stdout + result.stderr)[-4000:]
    if result.error is not None and not result.timed_out:
        return {"status": "sandbox_error", "output": result.error}
    if result.timed_out:
        return {"status": "timeout", "output": output}
    marker = language.failed_build if language is not None else None
    launcher_failed = (
        marker is not None and result.returncode != 0 and result.stderr.rstrip().endswith(marker)
    )
    if result.compile_failed or launcher_failed:
        return {"status": "compile_error", "output": output}
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
    toolchains: Mapping[str, str | None] | None = None,
    compile_timeout: float = 30.0,
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
        toolchains: Language -> the compiler or interpreter it needs (None or missing: the
            language is not run); None: :data:`TOOLCHAINS`.
        compile_timeout: Seconds a compiled language's build may take.

    Returns:
        ``(kept, rejected, funnel)``: rejected rows carry ``reason`` and ``output``; the funnel
        counts rows in, with tests, executed now, cache hits and passing, per language too
        (and ``no_toolchain``: rows of languages not run here; in a shard, the rows left to
        the other shards).
    """
    if timeout <= 0:
        raise ValueError(f"execute timeout={timeout!r} must be positive (seconds per program).")
    if n_workers < 1:
        raise ValueError(f"execute n_workers={n_workers!r} must be >= 1.")
    if compile_timeout <= 0:
        raise ValueError(
            f"execute compile_timeout={compile_timeout!r} must be positive (seconds per build)."
        )
    where = parse_shard(shard)
    mode = resolve_mode(sandbox)
    runnable = find_toolchains(TOOLCHAINS if toolchains is None else toolchains, mode == "bwrap")
    cache = read_cache(cache_path)
    plan: list[Planned] = []
    todo: dict[str, tuple[str, Language | None]] = {}
    other_shards = 0
    for row in rows:
        planned, program, build = _plan_row(row, runnable, solution_field, timeout, compile_timeout)
        key = planned.digest or hashlib.sha256(json.dumps(row, sort_keys=True).encode()).hexdigest()
        if not in_shard(key, where):
            other_shards += 1
            continue
        plan.append(planned)
        if planned.digest is not None and planned.digest not in cache and program is not None:
            todo.setdefault(planned.digest, (program, build))
    box_settings = (mode, limits)
    executed = _run_programs(
        todo, cache, cache_path, box_settings, n_workers, timeout, compile_timeout
    )
    kept, rejected, funnel = _tally(plan, cache)
    funnel["executed"] = executed
    funnel["cached"] = funnel["with_tests"] - executed
    if where is not None:
        funnel["shard"] = f"{where[0]}/{where[1]}"
        funnel["other_shards"] = other_shards
    logger.info(
        "execute%s: %d rows, %d with tests, %d passed (%d programs run, %d from the cache; "
        "%d rows of languages without a toolchain here)",
        f" (shard {funnel['shard']}; {other_shards} rows left to other shards)" if where else "",
        funnel["in"],
        funnel["with_tests"],
        funnel["passed"],
        funnel["executed"],
        funnel["cached"],
        funnel["no_toolchain"],
    )
    return kept, rejected, funnel


@dataclass(frozen=True)
class Planned:
    """One row's way through ``execute``: its program's hash, or why it has no program."""

    row: dict[str, Any]
    digest: str | None  # None: not executed (``reason`` says why)
    reason: str | None = None
    output: str = ""


def _plan_row(
    row: dict[str, Any],
    runnable: Mapping[str, Language | str],
    solution_field: str,
    timeout: float,
    compile_timeout: float,
) -> tuple[Planned, str | None, Language | None]:
    """The row's plan, its program (None when it has none) and its language's build."""
    lang = language_of(row)
    language = runnable.get(lang, f"execute does not run {lang} programs")
    build = language if isinstance(language, Language) else None
    if lang != "python" and build is None:
        return Planned(row, None, "no_toolchain", str(language)), None, None
    if not str(row.get("tests") or "").strip() or not code_of(str(row["tests"])):
        return Planned(row, None, "no_tests"), None, build
    tests_first = build is not None and build.tests_first
    program = build_program(str(row[solution_field]), str(row["tests"]), tests_first)
    digest = content_hash(program, timeout, build, compile_timeout)
    return Planned(row, digest), program, build


def _run_programs(
    todo: Mapping[str, tuple[str, Language | None]],
    cache: dict[str, dict[str, Any]],
    cache_path: Path,
    box_settings: tuple[str, Limits | None],
    n_workers: int,
    timeout: float,
    compile_timeout: float,
) -> int:
    """Run each program of ``todo`` (hash -> program, build) in a sandbox per worker thread,
    appending each result to the cache file as it comes; returns how many ran."""
    lock = threading.Lock()
    local = threading.local()
    sandboxes: list[Sandbox] = []
    executed = 0

    def run_one(item: tuple[str, tuple[str, Language | None]], appender: JsonlAppender) -> None:
        nonlocal executed
        digest, (program, language) = item
        # Python keeps the narrow view; other languages get one with /usr (their toolchains).
        toolchain = language is not None
        if not hasattr(local, "sandboxes"):
            local.sandboxes = {}
        if toolchain not in local.sandboxes:
            local.sandboxes[toolchain] = Sandbox(*box_settings, toolchains=toolchain)
            with lock:
                sandboxes.append(local.sandboxes[toolchain])
        box = local.sandboxes[toolchain]
        record = {"hash": digest, **judge(box, program, timeout, language, compile_timeout)}
        with lock:
            appender.write(record)
            cache[digest] = record
            executed += 1

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
    return executed


def _tally(
    plan: Sequence[Planned], cache: Mapping[str, dict[str, Any]]
) -> tuple[list[dict[str, Any]], list[dict[str, Any]], dict[str, Any]]:
    """Kept rows, rejected rows (with ``reason`` and ``output``) and the funnel's counts."""
    funnel: dict[str, Any] = {"in": 0, "with_tests": 0, "passed": 0, "no_toolchain": 0}
    by_lang: dict[str, Counter[str]] = {}
    kept: list[dict[str, Any]] = []
    rejected: list[dict[str, Any]] = []
    for planned in plan:
        counts = by_lang.setdefault(language_of(planned.row), Counter())
        reason, output = planned.reason, planned.output
        steps = ["in"] + (["no_toolchain"] if reason == "no_toolchain" else [])
        if planned.digest is not None:
            steps.append("with_tests")
            result = cache[planned.digest]
            reason = None if result["status"] == PASSED else result["status"]
            output = result.get("output", "")
        if reason is None:
            steps.append("passed")
            kept.append(planned.row)
        else:
            rejected.append({**planned.row, "reason": reason, "output": output})
        for step in steps:
            counts[step] += 1
            funnel[step] += 1
    funnel["by_lang"] = {lang: dict(counts) for lang, counts in sorted(by_lang.items())}
    return kept, rejected, funnel
