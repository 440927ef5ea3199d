"""jsonl files, shared by every stage: one reader, one crash-safe appender, one writer.

Each record is one line, written with a single ``write`` and flushed to the operating system
as soon as it is complete, so a killed process (even SIGKILL) loses at most the line it was
writing. :func:`repair_jsonl` cuts such a torn last line off before a resumed run appends.
"""

from __future__ import annotations

import json
import logging
import os
from collections.abc import Iterable, Iterator
from pathlib import Path
from types import TracebackType
from typing import Any

log = logging.getLogger(__name__)


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


def repair_jsonl(path: Path) -> int:
    """Truncate ``path`` after its last complete line.

    A line is complete when it ends with a newline; the writer adds the newline last, so an
    interrupted write leaves a tail without one.

    Args:
        path: A jsonl file (a missing file is fine).

    Returns:
        The number of bytes cut off.
    """
    if not path.is_file():
        return 0
    size = path.stat().st_size
    if size == 0:
        return 0
    with path.open("rb+") as f:
        # Scan back from the end in blocks for the last newline.
        block = 1 << 16
        end = size
        keep = 0
        while end > 0:
            start = max(0, end - block)
            f.seek(start)
            chunk = f.read(end - start)
            at = chunk.rfind(b"\n")
            if at >= 0:
                keep = start + at + 1
                break
            end = start
        if keep < size:
            f.truncate(keep)
            log.warning("%s: cut off a torn last line (%d bytes)", path, size - keep)
    return size - keep


def read_indices(path: Path, key: str = "index") -> list[int]:
    """The ``key`` field of every record of ``path`` (empty when the file does not exist)."""
    if not path.is_file():
        return []
    return [int(record[key]) for record in iter_jsonl(path)]


class JsonlAppender:
    """Append records to a jsonl file, one flushed line each.

    Args:
        path: The file (created when missing).
        fsync: Also ask the OS to put each line on disk. A killed process never loses flushed
            lines; fsync only matters if the machine itself goes down, and costs a disk sync
            per record.
    """

    def __init__(self, path: Path, fsync: bool = False):
        self.path = path
        self.fsync = fsync
        path.parent.mkdir(parents=True, exist_ok=True)
        repair_jsonl(path)
        self._file = path.open("ab", buffering=0)
        self.written = 0

    def write(self, record: dict[str, Any]) -> None:
        """Append one record as one line."""
        data = (json.dumps(record, ensure_ascii=False) + "\n").encode("utf-8")
        view = memoryview(data)
        while view:
            n = self._file.write(view)
            view = view[n or 0 :]
        if self.fsync:
            os.fsync(self._file.fileno())
        self.written += 1

    def close(self) -> None:
        """Close the file."""
        self._file.close()

    def __enter__(self) -> JsonlAppender:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()


def write_jsonl(path: str | Path, rows: Iterable[dict[str, Any]]) -> int:
    """Write ``rows`` as a whole jsonl file: appended and flushed line by line to a temporary
    sibling that replaces ``path`` once complete, so readers never see half a file.

    Returns:
        The number of rows written.
    """
    path = Path(path)
    tmp = path.with_name(f"{path.name}.tmp{os.getpid()}")
    tmp.unlink(missing_ok=True)
    with JsonlAppender(tmp) as out:
        for row in rows:
            out.write(row)
    tmp.replace(path)
    return out.written


def markdown_table(
    columns: Iterable[str], rows: Iterable[dict[str, Any]], *, float_format: str | None = None
) -> str:
    """A GitHub-flavoured markdown table, one line per row, ending in a newline.

    Args:
        columns: The header, in order; each row's cells are looked up by these names.
        rows: One dict per row. A missing key or a None value is an empty cell.
        float_format: A format spec for float cells (``".3f"``); None writes ``str(value)``.

    Returns:
        The table. A ``|`` inside a cell is escaped and a newline becomes a space, so a cell
        never breaks the table.
    """
    columns = list(columns)
    lines = [_markdown_row(columns), "|" + "---|" * len(columns)]
    for row in rows:
        cells = []
        for column in columns:
            value = row.get(column)
            if value is None:
                cells.append("")
            elif isinstance(value, float) and float_format is not None:
                cells.append(format(value, float_format))
            else:
                cells.append(str(value))
        lines.append(_markdown_row(cells))
    return "\n".join(lines) + "\n"


def _markdown_row(cells: list[str]) -> str:
    escaped = (cell.replace("|", "\\|").replace("\n", " ") for cell in cells)
    return "| " + " | ".join(escaped) + " |"
