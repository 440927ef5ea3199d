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
    CODE_FENCE,
    HUMANEVAL_INSTRUCTION,
    HUMANEVAL_RESPONSE_PREFIX,
    MBPP_INSTRUCTION,
    MBPP_RESPONSE_PREFIX,
)

logger = logging.getLogger(__name__)

BENCHMARK_NAMES: tuple[str, ...] = ("humaneval", "mbpp")
"""Benchmarks this module knows, by their evalplus dataset name."""

PINNED_VERSIONS: dict[str, str] = {"humaneval": "v0.1.10", "mbpp": "v0.2.0"}
"""The releases the paper's numbers (and evalplus 0.3.1's defaults) refer to."""

_FILE_NAMES: dict[str, str] = {
    "humaneval": "HumanEvalPlus-v0.1.10.jsonl.gz",
    "mbpp": "MbppPlus-v0.2.0.jsonl.gz",
}
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


def cut_completion(text: str) -> str:
    """Keep a completion up to (excluding) its first code fence, as the paper does.

    Args:
        text: The generated continuation of the response prefix.

    Returns:
        The text before the first "```", or all of it when there is none.
    """
    index = text.find(CODE_FENCE)
    return text if index < 0 else text[:index]


def assemble_solution(
    benchmark_name: str, problem: Problem, completion: str, sanitize: bool = True
) -> str:
    """Turn a raw completion into the full program EvalPlus scores.

    HumanEval+: the response prefix ends with the (stripped) prompt, so the program is
    ``problem["prompt"] + cut completion`` -- exactly what evalplus builds from a
    ``{"task_id", "completion"}`` sample, and what Magicoder's own samples were scored as.
    MBPP+: the response prefix is only the opening fence, so the program is the cut completion.

    Args:
        benchmark_name: "humaneval" or "mbpp".
        problem: The evalplus problem (needs "prompt" and "entry_point").
        completion: The raw generated text (everything after the response prefix).
        sanitize: Run evalplus's standard post-processing (``evalplus.sanitize.sanitize``,
            keeping imports and the definitions the entry point needs). Falls back to the
            unsanitized program if it raises or returns nothing.

    Returns:
        The program text.

    Raises:
        ValueError: If ``benchmark_name`` is unknown.
    """
    code = cut_completion(completion)
    if benchmark_name == "humaneval":
        program = problem["prompt"] + code
    elif benchmark_name == "mbpp":
        program = code
    else:
        raise ValueError(f"Unknown benchmark {benchmark_name!r}; choose one of {BENCHMARK_NAMES}.")
    if not sanitize:
        return program
    # Imported here: evalplus.sanitize pulls in tree-sitter and evalplus.data (datasets, pandas).
    from evalplus.sanitize import sanitize as evalplus_sanitize

    try:
        sanitized = evalplus_sanitize(program, entrypoint=problem["entry_point"])
    except Exception as exc:  # any failure of the sanitizer means "keep it as generated"
        logger.debug("sanitize failed on %s (%s); keeping it as is", problem.get("task_id"), exc)
        return program
    return sanitized if sanitized.strip() else program


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


def _load_with_evalplus(name: str) -> tuple[dict[str, Problem], str, str]:
    """Problems, md5 and path of the file evalplus resolves for ``name`` right now."""
    if name == "humaneval":
        from evalplus.data.humaneval import (
            _ready_human_eval_plus_path,
            get_human_eval_plus,
            get_human_eval_plus_hash,
        )

        problems = get_human_eval_plus()
        return problems, get_human_eval_plus_hash(), _ready_human_eval_plus_path()
    from evalplus.data.mbpp import _ready_mbpp_plus_path, get_mbpp_plus, get_mbpp_plus_hash

    problems = get_mbpp_plus()
    return problems, get_mbpp_plus_hash(), _ready_mbpp_plus_path()


def _version_from_path(path: str, dataset_hash: str) -> str:
    match = _VERSION_RE.match(Path(path).name)
    return match.group(1) if match else dataset_hash


def load_benchmark(name: str, path: str | None = None, limit: int | None = None) -> Benchmark:
    """Load HumanEval+ or MBPP+ through evalplus's own loaders.

    Args:
        name: "humaneval" (HumanEval+ v0.1.10, 164 tasks) or "mbpp" (MBPP+ v0.2.0, 378 tasks).
        path: A local evalplus ``.jsonl`` / ``.jsonl.gz`` file (the ``eval.<name>_path``
            setting). None lets evalplus find it: its ``HUMANEVAL_OVERRIDE_PATH`` /
            ``MBPP_OVERRIDE_PATH`` environment variables, its cache, or a download.
        limit: Keep only the first ``limit`` tasks (quick runs); None keeps all.

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
    problems, dataset_hash, source = _read_problems(name, _resolve_path(name, path))
    version = _checked_version(name, source, dataset_hash)
    n_total = len(problems)
    if limit is not None:
        problems = dict(list(problems.items())[:limit])
    logger.info(
        "Loaded %s %s: %d of %d tasks from %s (md5 %s)",
        name,
        version,
        len(problems),
        n_total,
        source,
        dataset_hash,
    )
    return Benchmark(
        name=name,
        problems=problems,
        dataset_hash=dataset_hash,
        version=version,
        path=str(source),
        n_total=n_total,
        limit=limit,
    )


def _path_setting(name: str) -> str:
    return f"eval.{name}_path"


def _resolve_path(name: str, path: str | None) -> str | None:
    """``path`` made absolute, after checking that it is a file (None stays None)."""
    if path is None:
        return None
    resolved = Path(path).expanduser().resolve()
    if not resolved.is_file():
        setting = _path_setting(name)
        raise FileNotFoundError(
            f"{setting}={str(path)!r}: no such file. Point {setting} at a local "
            f"{_FILE_NAMES[name]} (the EvalPlus release file), or set it to null to let evalplus "
            "download it."
        )
    return str(resolved)


def _read_problems(name: str, path: str | None) -> tuple[dict[str, Problem], str, str]:
    """Problems, md5 and source file of ``name`` read by evalplus from ``path`` (None: wherever
    evalplus finds it), checked to be tasks of that benchmark."""
    setting, file_name = _path_setting(name), _FILE_NAMES[name]
    try:
        with _evalplus_override(name, path):
            problems, dataset_hash, source = _load_with_evalplus(name)
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


def _checked_version(name: str, source: str, dataset_hash: str) -> str:
    """The file's release, with a warning when it is not the one the paper reports."""
    version = _version_from_path(source, dataset_hash)
    if version != PINNED_VERSIONS[name]:
        logger.warning(
            "%s: %s is version %r, not the %s the paper reports; numbers are not comparable.",
            name,
            source,
            version,
            PINNED_VERSIONS[name],
        )
    return version
