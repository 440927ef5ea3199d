"""Append-only jsonl files that survive being killed at any moment.

Each record is one line, written with a single ``write`` and flushed to the operating system
as soon as it is complete, so a killed process (even SIGKILL) loses at most the line it was
writing. :func:`repair_jsonl` cuts such a torn last line off before a resumed run appends.
"""

from __future__ import annotations

import json
import logging
import os
from pathlib import Path
from types import TracebackType
from typing import Any

from magicoder.io import iter_jsonl

log = logging.getLogger(__name__)


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
