"""Instruction-data sources. Each ``datasets:`` entry of a stage config instantiates one.

A source's :meth:`load` returns instruction rows ``{"instruction", "response", ...}``;
rows that lack either field are counted, reported and skipped. File and hub sources take a
``columns`` map from our field names to the dataset's own (as torchtune's ``column_map``
does), so a dataset with other field names needs a YAML file, not code.
"""

from __future__ import annotations

import ast
import logging
import random
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from magicoder.io import iter_jsonl
from magicoder.prompts import OSS_INSTRUCT_INSTRUCTION

log = logging.getLogger(__name__)

FORMATS = ("instruction", "oss_instruct")
STDLIB_KINDS = ("all", "functions", "methods")
LANGUAGE_ARMS = ("python", "non_python")
"""The two arms of the paper's language ablation (its experiments/lang_ablation.py)."""
FIELDS = ("instruction", "response", "problem", "solution", "lang")
"""Our field names, the keys a ``columns`` map may rename."""


def rename_columns(record: dict[str, Any], columns: dict[str, str]) -> dict[str, Any]:
    """Give a dataset row our field names.

    Args:
        record: A dataset row.
        columns: Our field name → the dataset's name for it, e.g. ``{"response": "output"}``;
            fields not named keep their names.

    Returns:
        The row with each mapped field under our name (the dataset's name dropped); a field
        the row lacks stays absent, so the row is then skipped like any incomplete row.
    """
    if not columns:
        return record
    theirs = set(columns.values())
    row = {key: value for key, value in record.items() if key not in theirs}
    for ours, their_name in columns.items():
        if their_name in record:
            row[ours] = record[their_name]
    return row


def check_columns(columns: dict[str, str], where: str) -> None:
    """Raise ValueError unless ``columns`` maps our field names to strings."""
    unknown = sorted(set(columns) - set(FIELDS))
    if unknown:
        raise ValueError(
            f"{where}: columns names {unknown}, which are not our fields; its keys are any of "
            f"{list(FIELDS)} and its values the dataset's names for them"
        )
    bad = {ours: theirs for ours, theirs in columns.items() if not isinstance(theirs, str)}
    if bad:
        raise ValueError(f"{where}: columns {bad} must map each field to a column name (a string)")


def to_instruction_row(record: dict[str, Any], fmt: str) -> dict[str, Any] | None:
    """Turn one raw record into an instruction row, or None when it is unusable.

    Args:
        record: A dataset row.
        fmt: ``"instruction"`` (has instruction/response) or ``"oss_instruct"`` (has
            problem/solution, turned into an instruction as the paper does).

    Returns:
        The row with non-empty string ``instruction`` and ``response``, other fields kept as
        provenance; None when a required field is missing or empty.
    """
    if fmt == "oss_instruct":
        problem, solution = record.get("problem"), record.get("solution")
        if not _text(problem) or not _text(solution):
            return None
        extra = {k: v for k, v in record.items() if k not in ("problem", "solution")}
        return {
            "instruction": OSS_INSTRUCT_INSTRUCTION.format(problem=problem),
            "response": solution,
            **extra,
        }
    if fmt == "instruction":
        if not _text(record.get("instruction")) or not _text(record.get("response")):
            return None
        return dict(record)
    raise ValueError(f"data format {fmt!r} is unknown; use one of {FORMATS}")


def _text(value: Any) -> bool:
    return isinstance(value, str) and bool(value.strip())


def convert_rows(
    records: Iterable[dict[str, Any]], fmt: str, name: str, langs: Sequence[str] | None = None
) -> list[dict[str, Any]]:
    """Convert records with :func:`to_instruction_row`, warning about skipped ones.

    Args:
        records: Raw rows.
        fmt: Row format (see :data:`FORMATS`).
        name: Dataset name for messages.
        langs: Keep only rows whose ``lang`` field is one of these (None keeps all).

    Raises:
        ValueError: When no record is usable.
    """
    rows, skipped, other_lang = [], 0, 0
    keep = {lang.lower() for lang in langs} if langs is not None else None
    for record in records:
        row = to_instruction_row(record, fmt)
        if row is None:
            skipped += 1
        elif keep is not None and str(row.get("lang", "")).lower() not in keep:
            other_lang += 1
        else:
            rows.append(row)
    if other_lang:
        log.info(
            "%s: left out %d rows whose lang is not in %s", name, other_lang, sorted(keep or [])
        )
    if skipped:
        required = "problem/solution" if fmt == "oss_instruct" else "instruction/response"
        log.warning("%s: skipped %d rows without non-empty %s", name, skipped, required)
    if not rows:
        raise ValueError(
            f"dataset {name} has no usable row ({skipped} skipped, {other_lang} in other "
            f"languages than {langs}): each row needs "
            f"{'problem and solution' if fmt == 'oss_instruct' else 'instruction and response'}"
            " strings; check the file, the dataset's `format`, or map its field names with "
            "`columns`"
        )
    return rows


@dataclass
class Source:
    """Base of all sources.

    Attributes:
        name: Name in logs and reports.
        langs: Keep only rows whose ``lang`` is one of these (None: all languages).
    """

    name: str
    langs: list[str] | None = None

    def check(self) -> None:
        """Raise early (before training) if the source cannot be read."""

    def connect(self, tokenizer: Any) -> None:
        """Late binding: the runner hands the tokenizer to every source before loading.

        Sources that need it (to count tokens, say) keep it; the others ignore it.
        """

    def load(self) -> list[dict[str, Any]]:
        """Return the instruction rows."""
        raise NotImplementedError


@dataclass
class StdlibPairs(Source):
    """Docstring → function pairs from the Python standard library (offline, deterministic).

    Attributes:
        max_files: Scan only the first N standard-library files (None: all).
        kind: ``all``, ``functions`` (module level) or ``methods`` (in classes): two disjoint
            halves that stand in for two datasets in offline mixture ablations.
    """

    max_files: int | None = None
    kind: str = "all"

    def check(self) -> None:
        if self.kind not in STDLIB_KINDS:
            raise ValueError(
                f"StdlibPairs kind={self.kind!r} is unknown; use one of {STDLIB_KINDS}"
            )

    def load(self) -> list[dict[str, Any]]:
        from magicoder.data.stdlib import stdlib_pairs

        self.check()
        rows = [
            row
            for row in stdlib_pairs(self.max_files)
            if self.kind == "all" or ("." in row["qualname"]) == (self.kind == "methods")
        ]
        return convert_rows(rows, "instruction", self.name, self.langs)


@dataclass
class JsonlFile(Source):
    """A local jsonl file of instruction/response (or OSS-Instruct problem/solution) rows.

    Attributes:
        path: The file.
        format: ``instruction`` or ``oss_instruct``.
        columns: Our field name → the file's name for it (see :func:`rename_columns`).
    """

    path: str = "???"
    format: str = "instruction"
    columns: dict[str, str] = field(default_factory=dict)

    def check(self) -> None:
        if not Path(self.path).is_file():
            raise FileNotFoundError(
                f"dataset file {self.path!r} does not exist; set data.path (for data=jsonl) "
                "to a jsonl file of instruction/response rows"
            )
        if self.format not in FORMATS:
            raise ValueError(f"format={self.format!r} is unknown; use one of {FORMATS}")
        check_columns(self.columns, f"dataset {self.name}")

    def load(self) -> list[dict[str, Any]]:
        self.check()
        records = iter_jsonl(self.path, objects_only=False)
        return convert_rows(
            (rename_columns(record, self.columns) for record in records),
            self.format,
            f"{self.name} ({self.path})",
            self.langs,
        )


@dataclass
class HubDataset(Source):
    """A dataset on the Hugging Face hub (or a local dataset directory / script).

    Attributes:
        path: Dataset name, e.g. ``ise-uiuc/Magicoder-OSS-Instruct-75K``.
        split: Split to read.
        revision: Revision to pin.
        format: ``instruction`` or ``oss_instruct``.
        columns: Our field name → the dataset's name for it (see :func:`rename_columns`).
    """

    path: str = "???"
    split: str = "train"
    revision: str | None = None
    format: str = "instruction"
    columns: dict[str, str] = field(default_factory=dict)

    def check(self) -> None:
        if self.format not in FORMATS:
            raise ValueError(f"format={self.format!r} is unknown; use one of {FORMATS}")
        check_columns(self.columns, f"dataset {self.name}")

    def load(self) -> list[dict[str, Any]]:
        import datasets

        self.check()
        try:
            ds = datasets.load_dataset(self.path, split=self.split, revision=self.revision)
        except Exception as err:  # datasets raises many types for offline/missing data
            raise RuntimeError(
                f"could not load dataset {self.path!r} (split {self.split!r}): {err}. Offline, "
                "export it to jsonl and train with data=jsonl data.path=<file>"
            ) from err
        # Renamed row by row rather than with datasets' rename_columns: one code path for
        # hub and jsonl sources, and the same handling of rows that lack a mapped field.
        records = (rename_columns(record, self.columns) for record in ds)
        return convert_rows(records, self.format, self.name, self.langs)


def split_by_language(
    rows: Iterable[dict[str, Any]],
) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """The paper's "conservative" Python / non-Python split of OSS-Instruct rows.

    A row is Python when its ``lang`` is ``"python"`` and its instruction followed by its
    response mentions "python" (any case); it is non-Python when its ``lang`` is anything
    else and the text never mentions "python". Rows that fit neither (a Python row that
    never says so, another language's row that mentions Python) are left out of both.

    Args:
        rows: Instruction rows with a ``lang`` field.

    Returns:
        The Python rows and the non-Python rows, each in input order.
    """
    python_rows, other_rows = [], []
    for row in rows:
        mentions_python = "python" in (row["instruction"] + row["response"]).lower()
        if row.get("lang") == "python":
            if mentions_python:
                python_rows.append(row)
        elif not mentions_python:
            other_rows.append(row)
    return python_rows, other_rows


def language_arm(
    rows: Sequence[dict[str, Any]], arm: str, n: int | None = 30000, seed: int = 1
) -> list[dict[str, Any]]:
    """Select one arm of the paper's language ablation, row for row as the paper did.

    The paper seeds Python's global generator once, draws ``n`` Python rows and then ``n``
    non-Python rows from the same stream; the non-Python arm replays the Python draw first
    so that, given rows in the same order, both arms are the paper's exact selections.

    Args:
        rows: Instruction rows with a ``lang`` field, in the dataset's order.
        arm: ``python`` or ``non_python``.
        n: Rows to draw per arm (the paper: 30,000); None keeps the whole arm, in order.
        seed: Seed of the draw (the paper: 1).

    Returns:
        The arm's rows, in the drawn order.

    Raises:
        ValueError: For an unknown arm, or when an arm has fewer than ``n`` rows.
    """
    if arm not in LANGUAGE_ARMS:
        raise ValueError(f"language arm {arm!r} is unknown; use one of {LANGUAGE_ARMS}")
    python_rows, other_rows = split_by_language(rows)
    if n is None:
        return python_rows if arm == "python" else other_rows
    for name, found in (("python", python_rows), ("non_python", other_rows)):
        if len(found) < n:
            raise ValueError(
                f"the {name} arm has {len(found)} rows, fewer than n={n} to draw (both arms "
                "are drawn, in the paper's order); lower n or use data with more rows"
            )
    rng = random.Random(seed)  # the same stream as random.seed(seed) then random.sample
    python_pick = rng.sample(python_rows, k=n)
    if arm == "python":
        return python_pick
    return rng.sample(other_rows, k=n)


@dataclass
class LanguageArm(Source):
    """One arm of the paper's Python / non-Python ablation, drawn from another source.

    Attributes:
        source: The source whose rows are split (OSS-Instruct-75K in the paper).
        arm: ``python`` or ``non_python`` (see :func:`language_arm`).
        n: Rows per arm (the paper: 30,000); None keeps the whole arm.
        seed: Seed of the draw (the paper: 1).
    """

    source: Source | None = None
    arm: str = "python"
    n: int | None = 30000
    seed: int = 1

    def check(self) -> None:
        if self.source is None:
            raise ValueError(f"LanguageArm {self.name}: set `source` to the source to split")
        if self.arm not in LANGUAGE_ARMS:
            raise ValueError(
                f"LanguageArm {self.name}: arm={self.arm!r} is unknown; use one of {LANGUAGE_ARMS}"
            )
        self.source.check()

    def connect(self, tokenizer: Any) -> None:
        if self.source is not None:
            self.source.connect(tokenizer)

    def load(self) -> list[dict[str, Any]]:
        self.check()
        assert self.source is not None
        rows = language_arm(self.source.load(), self.arm, self.n, self.seed)
        log.info("%s: %d %s rows (seed %d)", self.name, len(rows), self.arm, self.seed)
        return rows


def completion_pair(code: str, docstring: str) -> dict[str, str] | None:
    """The paper's comment–function baseline row for one Python function (completion-style).

    As in the paper's experiments/train_comment_code_pairs.py: the function's code up to and
    including the closing quotes of its first triple-quoted string is the prompt, the rest
    (the body) is the completion; no instruction template. Functions with an empty
    docstring, a docstring of one repeated character, or no triple-quoted string give None.

    Args:
        code: The function's source, from ``def`` to its end.
        docstring: Its docstring (only checked for being usable).

    Returns:
        ``{"prompt", "completion"}`` or None.
    """
    docstring = docstring.strip()
    if not docstring or docstring.count(docstring[0]) == len(docstring):
        return None
    code = code.strip()
    for quote in ('"""', "'''"):
        if code.count(quote) >= 2:
            start = code.index(quote)
            end = code.index(quote, start + 3) + 3
            return {"prompt": code[:end], "completion": code[end:]}
    return None


def completion_pairs_from_source(text: str) -> list[dict[str, str]]:
    """Completion-style comment–function rows (:func:`completion_pair`) of one module.

    Args:
        text: Python source code.

    Returns:
        One row per function or method with a usable docstring, in source order; ``[]``
        when the text does not parse.
    """
    try:
        tree = ast.parse(text)
    except (SyntaxError, ValueError):
        return []
    rows = []
    for node in ast.walk(tree):
        if not isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef):
            continue
        docstring = ast.get_docstring(node, clean=False)
        code = ast.get_source_segment(text, node)
        if docstring is None or code is None:
            continue
        row = completion_pair(code, docstring)
        if row is not None:
            rows.append(row)
    return rows


@dataclass
class StdlibCompletionPairs(Source):
    """The paper's comment–function baseline on the embedded standard-library corpus.

    Rows are ``{"prompt", "completion", "lang", "source"}``: raw code to continue, with no
    instruction template (unlike :class:`StdlibPairs`, which are instruction rows).

    Attributes:
        max_files: Scan only the first N standard-library files (None: all).
    """

    max_files: int | None = None

    def load(self) -> list[dict[str, Any]]:
        from magicoder.data.stdlib import read_source, stdlib_files

        rows = []
        for path in stdlib_files(self.max_files):
            text = read_source(path)
            for row in completion_pairs_from_source(text or ""):
                rows.append({**row, "lang": "python", "source": path.name})
        if not rows:
            raise ValueError(f"{self.name}: no function with a docstring in the corpus")
        return rows


@dataclass
class CommentFunctionPairs(Source):
    """The paper's comment–function baseline data, built from its seed documents.

    Rows are completion-style, ``{"prompt", "completion", "lang", "source"}`` as
    :class:`StdlibCompletionPairs` gives them, in 9 languages: every pair whose function
    overlaps its OSS-Instruct seed snippet, then a seeded draw from the other pairs (see
    :mod:`magicoder.data.comment_pairs`). ``langs`` filters after that selection.

    Attributes:
        path: The seed-document jsonl (written by
            ``experiments/comment-function-baseline/collect_seed_documents.py``).
        n: Pairs in all (the paper: 75,197); None keeps every pair.
        seed: Seed of the draw (the paper's: 42).
    """

    path: str = "???"
    n: int | None = 75197
    seed: int = 42

    def check(self) -> None:
        if not Path(self.path).is_file():
            raise FileNotFoundError(
                f"seed-document file {self.path!r} does not exist; write it with "
                "experiments/comment-function-baseline/collect_seed_documents.py and set "
                "data.path (for data=comment-function-75k) to it"
            )

    def load(self) -> list[dict[str, Any]]:
        from magicoder.data.comment_pairs import comment_function_pairs, select_pairs

        self.check()
        covered, rest = comment_function_pairs(iter_jsonl(self.path))
        log.info(
            "%s: %d covered and %d other comment–function pairs in %s",
            self.name,
            len(covered),
            len(rest),
            self.path,
        )
        try:
            rows = select_pairs(covered, rest, self.n, self.seed)
        except ValueError as err:
            raise ValueError(f"{self.name} ({self.path}): {err}") from err
        if self.langs is not None:
            keep = {lang.lower() for lang in self.langs}
            rows = [row for row in rows if row["lang"].lower() in keep]
        return rows
