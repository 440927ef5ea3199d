"""Benchmark strings to decontaminate against, read from local files.

What is taken follows Magicoder's ``decontamination/benchmark_data.py`` (from
bigcode-dataset): HumanEval docstrings and canonical solutions (minus generic one-liners),
MBPP descriptions and solutions (test split, task ids 11–510), GSM8K test questions, APPS test
questions and DS-1000 prompts (the part before the solution marker). HumanEval+ and MBPP+ add
their rewritten solutions and MBPP+'s descriptions, the versions this framework evaluates on.

By default every string is stripped, empty strings are dropped and the generic HumanEval
solutions are the four the original meant to spare. With ``as_original=True`` the strings are
exactly the ones the original searched for: MBPP descriptions and solutions and DS-1000 prompts
keep their surrounding whitespace (182 MBPP test solutions end in spaces or a line break, so a
copy without them is not a match), the generic solutions are its list as Python reads it
(:data:`HUMAN_EVAL_STRINGS_OK_AS_WRITTEN`), and :func:`load_benchmark_strings` returns them in
the original's scan order (:data:`ORIGINAL_SCAN_ORDER`).
"""

from __future__ import annotations

import gzip
import json
import logging
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

log = logging.getLogger(__name__)

HUMAN_EVAL_STRINGS_OK = frozenset(
    {"return x + y", "return len(string)", "return n**2", "return ''.join(strings)"}
)
"""HumanEval solutions generic enough to keep (the paper's list as it was meant: HumanEval/53,
23, 41 and 28)."""

HUMAN_EVAL_STRINGS_OK_AS_WRITTEN = frozenset(
    {"return x + y", "return len(string)", "return n**2", "return .join(strings)"}
)
"""The same list as the original's code has it: its fourth entry, ``"return " ".join(strings)"``,
is two adjacent string literals that Python joins into ``return .join(strings)``, which no
solution equals. A solution is spared when its stripped text equals an entry (case and
whitespace count), so the original spares HumanEval/53, 23 and 41, and still searches for
HumanEval/28's ``return ''.join(strings)``."""

ORIGINAL_SCAN_ORDER = ("mbpp", "humaneval", "apps", "gsm8k", "ds1000")
"""The order in which the original tries benchmark strings (MBPP descriptions, MBPP solutions,
HumanEval docstrings, HumanEval solutions, APPS questions, GSM8K questions, DS-1000 prompts):
its first hit names the benchmark a row is dropped for."""

MBPP_TEST_IDS = range(11, 511)
"""MBPP's test split, the part the paper decontaminates against."""


@dataclass(frozen=True)
class BenchmarkString:
    """One string a training row must not contain.

    Attributes:
        benchmark: Benchmark name (``humaneval``, ``mbpp``, ...).
        kind: What the string is: ``docstring``, ``solution``, ``question``, ``prompt``.
        task_id: The benchmark task it comes from.
        text: The string.
    """

    benchmark: str
    kind: str
    task_id: str
    text: str

    def describe(self) -> dict[str, str]:
        """The ``matched`` record of a rejected row."""
        return {
            "benchmark": self.benchmark,
            "kind": self.kind,
            "task_id": self.task_id,
            "string": self.text,
        }


def read_records(path: Path) -> Iterator[dict[str, Any]]:
    """Rows of a ``.jsonl``, ``.jsonl.gz`` or ``.json`` (list of objects) file."""
    opener = gzip.open if path.suffix == ".gz" else open
    with opener(path, "rt", encoding="utf-8") as f:  # type: ignore[operator]
        if path.name.endswith(".json") or path.name.endswith(".json.gz"):
            data = json.load(f)
            yield from (data if isinstance(data, list) else data.values())
            return
        for line in f:
            if line.strip():
                yield json.loads(line)


def extract_docstring(prompt: str) -> str:
    """The docstring of a HumanEval prompt (the paper's rule; the whole prompt if none)."""
    if '"""' in prompt:
        parts = prompt.split('"""')
        if prompt.count('"""') == 4:
            return parts[3].strip()
        return parts[1].strip()
    if "'''" in prompt:
        return prompt.split("'''")[1].strip()
    return prompt.strip()


def _strings(
    benchmark: str, kind: str, items: Iterator[tuple[str, str]], strip: bool = True
) -> list[BenchmarkString]:
    """One :class:`BenchmarkString` per non-blank text, stripped unless ``strip`` is False.

    Blank texts are dropped even unstripped: a blank pattern occurs in every row.
    """
    out = []
    for task_id, text in items:
        text = text or ""
        if text.strip():
            out.append(
                BenchmarkString(benchmark, kind, str(task_id), text.strip() if strip else text)
            )
    return out


def humaneval_strings(
    path: Path, name: str = "humaneval", as_original: bool = False
) -> list[BenchmarkString]:
    """HumanEval(+) docstrings and canonical solutions, minus the generic solutions.

    Args:
        path: ``HumanEval.jsonl.gz`` (or a HumanEval+ release).
        name: The benchmark name the strings carry.
        as_original: Spare :data:`HUMAN_EVAL_STRINGS_OK_AS_WRITTEN` (the original's list as
            its code reads) instead of :data:`HUMAN_EVAL_STRINGS_OK`.
    """
    generic = HUMAN_EVAL_STRINGS_OK_AS_WRITTEN if as_original else HUMAN_EVAL_STRINGS_OK
    rows = list(read_records(path))
    return _strings(
        name, "docstring", ((r["task_id"], extract_docstring(r["prompt"])) for r in rows)
    ) + _strings(
        name,
        "solution",
        (
            (r["task_id"], r["canonical_solution"])
            for r in rows
            if r["canonical_solution"].strip() not in generic
        ),
    )


def mbpp_strings(
    path: Path, split: str = "test", as_original: bool = False
) -> list[BenchmarkString]:
    """Original MBPP descriptions (``text``) and solutions (``code``).

    Args:
        path: ``mbpp.jsonl``.
        split: ``test`` (task ids 11–510, the paper) or ``all``.
        as_original: Keep the texts unstripped, as the original searched for them.
    """
    if split not in ("test", "all"):
        raise ValueError(f"mbpp split {split!r} is unknown; use 'test' (the paper) or 'all'")
    rows = [r for r in read_records(path) if split == "all" or r["task_id"] in MBPP_TEST_IDS]
    if split == "test" and len(rows) != len(MBPP_TEST_IDS):
        log.warning("%s has %d MBPP test tasks, expected %d", path, len(rows), len(MBPP_TEST_IDS))
    strip = not as_original
    return _strings(
        "mbpp", "docstring", ((f"mbpp/{r['task_id']}", r["text"]) for r in rows), strip
    ) + _strings("mbpp", "solution", ((f"mbpp/{r['task_id']}", r["code"]) for r in rows), strip)


def mbpp_plus_description(prompt: str) -> str:
    """The description of an MBPP+ prompt (``\"\"\"\\n<description>\\nassert ...\\n\"\"\"``)."""
    body = prompt.strip().strip('"').strip()
    lines = [line for line in body.splitlines() if not line.strip().startswith("assert ")]
    return "\n".join(lines).strip()


def mbpp_plus_strings(path: Path) -> list[BenchmarkString]:
    """MBPP+ descriptions and canonical solutions."""
    rows = list(read_records(path))
    return _strings(
        "mbpp_plus", "docstring", ((r["task_id"], mbpp_plus_description(r["prompt"])) for r in rows)
    ) + _strings("mbpp_plus", "solution", ((r["task_id"], r["canonical_solution"]) for r in rows))


def gsm8k_strings(path: Path) -> list[BenchmarkString]:
    """GSM8K test questions."""
    return _strings(
        "gsm8k",
        "question",
        ((f"gsm8k/{i}", r["question"]) for i, r in enumerate(read_records(path))),
    )


def apps_strings(path: Path) -> list[BenchmarkString]:
    """APPS test questions (a jsonl export of ``codeparrot/apps`` test with ``question``)."""
    return _strings(
        "apps",
        "question",
        ((str(r.get("problem_id", i)), r["question"]) for i, r in enumerate(read_records(path))),
    )


def _ds1000_prompt(prompt: str) -> str:
    for marker in ("SOLUTION START", "BEGIN SOLUTION"):
        if marker in prompt:
            return prompt.split(marker)[0]
    return prompt


def ds1000_strings(path: Path, as_original: bool = False) -> list[BenchmarkString]:
    """DS-1000 prompts, cut before the solution marker.

    Args:
        path: The original release's ``ds1000_data`` directory (``*/Insertion/q*/prompt.txt``)
            or the newer single-file release (jsonl with ``prompt``).
        as_original: Keep the prompts unstripped, as the original searched for them.
    """
    strip = not as_original
    if path.is_dir():
        files = sorted(path.glob("*/Insertion/q*/prompt.txt"))
        if not files:
            raise FileNotFoundError(f"{path} has no */Insertion/q*/prompt.txt (DS-1000 data dir)")
        items = ((str(f.relative_to(path).parent), _ds1000_prompt(f.read_text())) for f in files)
        return _strings("ds1000", "prompt", items, strip)
    return _strings(
        "ds1000",
        "prompt",
        (
            (str(r.get("metadata", {}).get("problem_id", i)), _ds1000_prompt(r["prompt"]))
            for i, r in enumerate(read_records(path))
        ),
        strip,
    )


LOADERS: dict[str, Callable[[Path], list[BenchmarkString]]] = {
    "humaneval": humaneval_strings,
    "humaneval_plus": lambda p: humaneval_strings(p, "humaneval_plus"),
    "mbpp": mbpp_strings,
    "mbpp_plus": mbpp_plus_strings,
    "gsm8k": gsm8k_strings,
    "apps": apps_strings,
    "ds1000": ds1000_strings,
}
"""Benchmark name → loader of its strings from a local file (the default preparation)."""


def _load(name: str, file: Path, mbpp_split: str, as_original: bool) -> list[BenchmarkString]:
    if name == "mbpp":
        return mbpp_strings(file, mbpp_split, as_original)
    if name in ("humaneval", "humaneval_plus"):
        return humaneval_strings(file, name, as_original)
    if name == "ds1000":
        return ds1000_strings(file, as_original)
    # GSM8K and APPS questions were stripped by the original too; MBPP+ is not in it.
    return LOADERS[name](file)


def load_benchmark_strings(
    paths: dict[str, str | None], mbpp_split: str = "test", as_original: bool = False
) -> list[BenchmarkString]:
    """Read every configured benchmark file.

    Args:
        paths: Benchmark name (a key of :data:`LOADERS`) → file; None skips that benchmark.
        mbpp_split: Which MBPP tasks to take (``test`` or ``all``).
        as_original: The strings exactly as the original searched for them (see the module
            docstring), in :data:`ORIGINAL_SCAN_ORDER`; benchmarks the original did not
            search (HumanEval+, MBPP+) come last.

    Returns:
        All strings, benchmark by benchmark (in ``paths`` order unless ``as_original``).

    Raises:
        ValueError: For an unknown benchmark name.
        FileNotFoundError: For a configured file that does not exist.
    """
    out: list[BenchmarkString] = []
    for name, path in paths.items():
        if name not in LOADERS:
            raise ValueError(
                f"decontaminate.benchmarks.{name} is unknown; use any of {sorted(LOADERS)}"
            )
        if path is None:
            searched = as_original and name in ORIGINAL_SCAN_ORDER
            log.warning(
                "Decontamination: %s skipped (no file configured)%s",
                name,
                "; the original searched it, so rows it would drop may stay" if searched else "",
            )
            continue
        file = Path(path).expanduser()
        if not file.exists():
            raise FileNotFoundError(
                f"decontaminate.benchmarks.{name}={path!r} does not exist; point it at the "
                f"benchmark file, or set it to null to skip {name}"
            )
        strings = _load(name, file, mbpp_split, as_original)
        log.info("Decontamination: %d strings from %s (%s)", len(strings), name, file)
        out.extend(strings)
    if as_original:
        rank = {name: i for i, name in enumerate(ORIGINAL_SCAN_ORDER)}
        out.sort(key=lambda s: rank.get(s.benchmark, len(rank)))  # stable: file order within
    return out
