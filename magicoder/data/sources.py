"""Instruction-data sources. Each ``datasets:`` entry of a stage config instantiates one.

A source's :meth:`load` returns instruction rows ``{"instruction", "response", ...}``;
rows that lack either field are counted, reported and skipped. File and hub sources take a
``columns`` map from our field names to the dataset's own (as torchtune's ``column_map``
does), so a dataset with other field names needs a YAML file, not code.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from magicoder.io import iter_jsonl
from magicoder.prompts import OSS_INSTRUCT_INSTRUCTION

log = logging.getLogger(__name__)

FORMATS = ("instruction", "oss_instruct")
STDLIB_KINDS = ("all", "functions", "methods")
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
