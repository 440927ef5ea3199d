"""HumanEval+ and MBPP+ as EvalPlus ships them, and the paper's text-to-code prompts for them.

Problems are loaded by evalplus's own loaders (``get_human_eval_plus`` / ``get_mbpp_plus``, which
also deserialize MBPP+'s tuple/set inputs), so what we generate for and score against is exactly
what ``evalplus.evaluate`` would use. Prompt construction and completion post-processing are pure
functions so that they can be unit-tested on real rows.

The prompts follow Magicoder's ``experiments/text2code.py``: the HumanEval+ prompt is stripped
and then appears both in the instruction and in the response prefix (the model continues right
after the docstring); the MBPP+ prompt ``\"\"\"\\n<description>\\nassert ...\\n\"\"\"\\n`` is split
into a description (with a final ".") and its assertion.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from magicoder.prompts import (
    HUMANEVAL_INSTRUCTION,
    HUMANEVAL_RESPONSE_PREFIX,
    MBPP_INSTRUCTION,
    MBPP_RESPONSE_PREFIX,
)

logger = logging.getLogger(__name__)

BENCHMARK_NAMES: tuple[str, ...] = ("humaneval", "mbpp")
"""Benchmarks this module knows, by their evalplus dataset name."""

_FILE_STEMS: dict[str, str] = {"humaneval": "HumanEvalPlus", "mbpp": "MbppPlus"}
_TASK_PREFIXES: dict[str, str] = {"humaneval": "HumanEval/", "mbpp": "Mbpp/"}
# "HumanEvalPlus-v0.1.10.jsonl.gz" -> "v0.1.10"; "MbppPlus-NoExtreme-v0.2.0.jsonl" ->
# "NoExtreme-v0.2.0" (evalplus's own cache files are named the same way).
_VERSION_RE = re.compile(
    r"^(?:HumanEvalPlus|MbppPlus)-((?:[A-Za-z]+-)?v\d+(?:\.\d+)*)\.jsonl(?:\.gz)?$"
)

Problem = dict[str, Any]
"""One evalplus problem: task_id, prompt, entry_point, canonical_solution, base_input, ..."""


@dataclass
class Benchmark:
    """A loaded EvalPlus benchmark.

    Attributes:
        name: "humaneval" or "mbpp" (evalplus's dataset name; selects its special oracles).
        problems: task_id -> evalplus problem, in file order; only the first ``limit`` tasks
            when a limit was given.
        dataset_hash: evalplus's md5 of the whole dataset file (its ground-truth cache key).
        version: Release parsed from the file name (e.g. "v0.1.10"), else ``dataset_hash``.
        path: The file the problems were read from.
        n_total: Number of tasks in the whole file.
        limit: The requested task limit, or None for all tasks.
    """

    name: str
    problems: dict[str, Problem]
    dataset_hash: str
    version: str
    path: str
    n_total: int
    limit: int | None = None

    @property
    def is_complete(self) -> bool:
        """Whether every task of the file is in ``problems``."""
        return len(self.problems) == self.n_total

    def prompt(self, task_id: str) -> tuple[str, str]:
        """The paper's (instruction, response prefix) for one task.

        Args:
            task_id: A task of this benchmark, e.g. "HumanEval/0".

        Returns:
            The instruction and the response prefix the model continues from.
        """
        builder = humaneval_prompt if self.name == "humaneval" else mbpp_prompt
        return builder(self.problems[task_id])


def humaneval_prompt(problem: Problem) -> tuple[str, str]:
    """Build the HumanEval+ instruction and response prefix of Magicoder's text2code eval.

    The prompt is stripped (as upstream does) in both places, so the model continues right
    after the closing docstring quotes.

    Args:
        problem: An evalplus HumanEval+ problem (needs "prompt").

    Returns:
        (instruction, response_prefix).
    """
    prompt = problem["prompt"].strip()
    return (
        HUMANEVAL_INSTRUCTION.format(prompt=prompt),
        HUMANEVAL_RESPONSE_PREFIX.format(prompt=prompt),
    )


def mbpp_prompt(problem: Problem) -> tuple[str, str]:
    """Build the MBPP+ instruction and response prefix of Magicoder's text2code eval.

    Args:
        problem: An evalplus MBPP+ problem whose "prompt" is
            ``\"\"\"\\n<description>\\nassert ...\\n\"\"\"\\n``.

    Returns:
        (instruction, response_prefix).

    Raises:
        ValueError: If the prompt lacks the triple-quoted description or its assertion.
    """
    text = problem["prompt"]
    start, end = text.find('"""'), text.rfind('"""')
    body = text[start + 3 : end] if 0 <= start < end else ""
    assert_at = body.find("assert")
    if assert_at < 0:
        raise ValueError(
            f"MBPP+ problem {problem.get('task_id')!r} has no triple-quoted description with an "
            f"assertion in its prompt {text[:200]!r}; is this an EvalPlus MbppPlus file?"
        )
    description = body[:assert_at].strip()
    if not description.endswith("."):
        description += "."
    assertion = body[assert_at:].strip()
    return (
        MBPP_INSTRUCTION.format(description=description, assertion=assertion),
        MBPP_RESPONSE_PREFIX,
    )


@contextmanager
def _evalplus_override(name: str, path: str | None) -> Iterator[None]:
    """Point evalplus's data module at ``path`` for the duration (None: leave it alone)."""
    if path is None:
        yield
        return
    if name == "humaneval":
        import evalplus.data.humaneval as module

        attr = "HUMANEVAL_OVERRIDE_PATH"
    else:
        import evalplus.data.mbpp as module  # type: ignore[no-redef]

        attr = "MBPP_OVERRIDE_PATH"
    previous = getattr(module, attr)
    setattr(module, attr, path)
    try:
        yield
    finally:
        setattr(module, attr, previous)


def _load_with_evalplus(name: str, version: str) -> tuple[dict[str, Problem], str, str]:
    """Problems, md5 and path of the file evalplus resolves for ``name`` right now (its
    override path, else release ``version`` from its cache or a download)."""
    if name == "humaneval":
        from evalplus.data.humaneval import (
            _ready_human_eval_plus_path,
            get_human_eval_plus,
            get_human_eval_plus_hash,
        )

        problems = get_human_eval_plus(version=version)
        return (
            problems,
            get_human_eval_plus_hash(version=version),
            _ready_human_eval_plus_path(version=version),
        )
    from evalplus.data.mbpp import _ready_mbpp_plus_path, get_mbpp_plus, get_mbpp_plus_hash

    problems = get_mbpp_plus(version=version)
    return problems, get_mbpp_plus_hash(version=version), _ready_mbpp_plus_path(version=version)


def _version_from_path(path: str, dataset_hash: str) -> str:
    match = _VERSION_RE.match(Path(path).name)
    return match.group(1) if match else dataset_hash


def load_benchmark(
    name: str, path: str | None = None, limit: int | None = None, version: str | None = None
) -> Benchmark:
    """Load HumanEval+ or MBPP+ through evalplus's own loaders.

    Args:
        name: "humaneval" (HumanEval+, 164 tasks) or "mbpp" (MBPP+: 399 tasks in v0.1.0, 378
            from v0.2.0).
        path: A local evalplus ``.jsonl`` / ``.jsonl.gz`` file (the ``eval.<name>_path``
            setting). None lets evalplus find it: its ``HUMANEVAL_OVERRIDE_PATH`` /
            ``MBPP_OVERRIDE_PATH`` environment variables, its cache, or a download.
        limit: Keep only the first ``limit`` tasks (quick runs); None keeps all.
        version: The release expected (e.g. "v0.1.9"): what evalplus downloads when ``path``
            is None, and a warning when the file read is another; None: evalplus's default.

    Returns:
        The loaded benchmark.

    Raises:
        ValueError: Unknown name, bad limit, a file that is not this EvalPlus benchmark, or no
            path given while evalplus cannot download the file (offline).
        FileNotFoundError: ``path`` does not exist.
    """
    if name not in BENCHMARK_NAMES:
        raise ValueError(f"Unknown benchmark {name!r}; choose from {list(BENCHMARK_NAMES)}.")
    if limit is not None and (isinstance(limit, bool) or not isinstance(limit, int) or limit < 1):
        raise ValueError(f"eval.limit={limit!r} must be a positive integer, or null for all tasks.")
    file_name = f"{_FILE_STEMS[name]}-{version or '<version>'}.jsonl.gz"
    problems, dataset_hash, source = _read_problems(
        name, _resolve_path(name, path, file_name), version, file_name
    )
    found = _checked_version(name, source, dataset_hash, version)
    n_total = len(problems)
    if limit is not None:
        problems = dict(list(problems.items())[:limit])
    logger.info(
        "Loaded %s %s: %d of %d tasks from %s (md5 %s)",
        name,
        found,
        len(problems),
        n_total,
        source,
        dataset_hash,
    )
    return Benchmark(
        name=name,
        problems=problems,
        dataset_hash=dataset_hash,
        version=found,
        path=str(source),
        n_total=n_total,
        limit=limit,
    )


def _path_setting(name: str) -> str:
    return f"eval.{name}_path"


def _resolve_path(name: str, path: str | None, file_name: str) -> str | None:
    """``path`` made absolute, after checking that it is a file (None stays None)."""
    if path is None:
        return None
    resolved = Path(path).expanduser().resolve()
    if not resolved.is_file():
        setting = _path_setting(name)
        raise FileNotFoundError(
            f"{setting}={str(path)!r}: no such file. Point {setting} at a local "
            f"{file_name} (the EvalPlus release file), or set it to null to let evalplus "
            "download it."
        )
    return str(resolved)


def _read_problems(
    name: str, path: str | None, version: str | None, file_name: str
) -> tuple[dict[str, Problem], str, str]:
    """Problems, md5 and source file of ``name`` read by evalplus from ``path`` (None: wherever
    evalplus finds ``version``), checked to be tasks of that benchmark."""
    setting = _path_setting(name)
    try:
        with _evalplus_override(name, path):
            problems, dataset_hash, source = _load_with_evalplus(name, version or "default")
    except Exception as exc:
        if path is not None:
            raise ValueError(
                f"{setting}={path!r} could not be read as an EvalPlus {file_name} file: {exc!r}"
            ) from exc
        raise ValueError(
            f"evalplus could not find or download the {name} benchmark ({exc!r}). Offline, set "
            f"{setting} to a local {file_name} (or export "
            f"{'HUMANEVAL' if name == 'humaneval' else 'MBPP'}_OVERRIDE_PATH)."
        ) from exc
    bad = [task_id for task_id in problems if not task_id.startswith(_TASK_PREFIXES[name])]
    if bad or not problems:
        raise ValueError(
            f"{source!r} does not hold {name} tasks (first task ids: {list(problems)[:3]}); "
            f"point {setting} at a {file_name} file."
        )
    return problems, dataset_hash, source


def _checked_version(name: str, source: str, dataset_hash: str, expected: str | None) -> str:
    """The file's release (from its name, else its md5), with a warning when it is not the
    ``expected`` one: its numbers then belong to no named protocol."""
    found = _version_from_path(source, dataset_hash)
    if expected is not None and found != expected:
        logger.warning(
            "%s: %s is release %r, not the %s the evaluation protocol scores; its numbers are "
            "labelled 'custom' and are not comparable with the protocol's.",
            name,
            source,
            found,
            expected,
        )
    return found
