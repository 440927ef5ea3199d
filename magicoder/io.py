"""Reading jsonl files, shared by every stage that consumes rows."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any


def iter_jsonl(path: str | Path, *, objects_only: bool = True) -> Iterator[dict[str, Any]]:
    """Yield the records of a jsonl file (blank lines skipped).

    Args:
        path: The file.
        objects_only: Raise on a line holding valid JSON that is not an object; with False
            such a line yields ``{}`` so that callers count it among the unusable rows.

    Raises:
        ValueError: On a line that is not valid JSON (or not an object), naming file and line.
    """
    path = Path(path)
    with path.open(encoding="utf-8") as f:
        for n, line in enumerate(f, 1):
            if not line.strip():
                continue
            try:
                record = json.loads(line)
            except json.JSONDecodeError as err:
                raise ValueError(f"{path}:{n} is not valid JSON ({err}); fix or remove it") from err
            if isinstance(record, dict):
                yield record
            elif objects_only:
                raise ValueError(f"{path}:{n} is not a JSON object")
            else:
                yield {}
