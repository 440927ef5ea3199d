"""Read W&B offline runs (``wandb/offline-run-*/run-<id>.wandb``) without the W&B server.

wandb >= 0.2x no longer ships a Python reader for its transaction log (the old
``wandb.sdk.internal.datastore`` module is gone; the file is written by the Go ``wandb-core``
service). This module re-implements the reader so that tests and offline tooling can check what a
training/evaluation run actually logged.

On-disk format (verified against files written by wandb 0.31.0 and the ``wandb-core`` Go sources,
``core/pkg/leveldb/record.go`` + ``core/internal/stream/store.go``):

* A 7-byte file header: ``b":W&B"`` ident, ``uint16`` magic ``0xBEE1`` (little-endian, i.e. bytes
  ``e1 be``), ``uint8`` version ``0``.
* The header is the first 7 bytes of the first 32 KiB block; the rest of the file is a LevelDB
  log (https://github.com/google/leveldb/blob/main/doc/log_format.md): 32 KiB blocks made of
  chunks that never cross a block boundary. Each chunk is a 7-byte chunk header -- ``uint32``
  checksum, ``uint16`` payload length (both little-endian), ``uint8`` type (FULL=1, FIRST=2,
  MIDDLE=3, LAST=4) -- followed by the payload. A block tail shorter than 7 bytes is zero
  padding; the last block is not padded (the file simply ends).
* Checksum: plain (unmasked) IEEE CRC-32 (``zlib.crc32``) over the type byte followed by the
  payload. W&B opens its writer with ``CRCAlgoIEEE``; this is *not* LevelDB's masked CRC-32C.
* Each logical record (one chunk of type FULL, or FIRST + MIDDLE* + LAST) is one serialized
  ``wandb.proto.wandb_internal_pb2.Record``.
"""

from __future__ import annotations

import json
import struct
import zlib
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, BinaryIO, TypeAlias

from google.protobuf.message import DecodeError
from wandb.proto import wandb_internal_pb2

if TYPE_CHECKING:
    # wandb ships its generated protobuf modules without type stubs (and picks the v5/v6/v7 one
    # at import time), so static checkers cannot see the message classes.
    Record: TypeAlias = Any
else:
    Record = wandb_internal_pb2.Record

__all__ = [
    "OfflineRun",
    "Record",
    "find_offline_runs",
    "iter_records",
    "read_offline_run",
]

WANDB_IDENT = b":W&B"
WANDB_MAGIC = 0xBEE1
WANDB_VERSION = 0
_FILE_HEADER = struct.Struct("<4sHB")  # ident, magic, version -> 7 bytes
_CHUNK_HEADER = struct.Struct("<IHB")  # crc32, length, type -> 7 bytes
BLOCK_SIZE = 32 * 1024

_FULL, _FIRST, _MIDDLE, _LAST = 1, 2, 3, 4
# CRC-32 of the lone type byte, used as the running start value for the payload CRC.
_TYPE_CRC = {t: zlib.crc32(bytes([t])) for t in (_FULL, _FIRST, _MIDDLE, _LAST)}

_OFFLINE_RUN_GLOB = "offline-run-*"
_RUN_FILE_GLOB = "run-*.wandb"


def _check_file_header(head: bytes, path: Path) -> None:
    """Validate the 7-byte W&B file header.

    Args:
        head: The first bytes of the file (at least 7 unless the file is shorter).
        path: The file, for error messages.

    Raises:
        ValueError: If the bytes are not a W&B run-file header of a supported version.
    """
    if len(head) < _FILE_HEADER.size:
        raise ValueError(f"{path} is not a W&B run file: only {len(head)} bytes long")
    ident, magic, version = _FILE_HEADER.unpack_from(head)
    if ident != WANDB_IDENT or magic != WANDB_MAGIC:
        raise ValueError(
            f"{path} is not a W&B run file: header {head[: _FILE_HEADER.size]!r} does not start "
            f"with ident {WANDB_IDENT!r} and magic {WANDB_MAGIC:#06x}"
        )
    if version != WANDB_VERSION:
        raise ValueError(
            f"{path}: unsupported W&B run-file version {version} (expected {WANDB_VERSION})"
        )


def _iter_payloads(
    fh: BinaryIO, path: Path, *, verify_checksums: bool, allow_truncated: bool
) -> Iterator[bytes]:
    """Yield the payload of each logical record of an open ``.wandb`` file.

    Args:
        fh: Binary file object positioned at offset 0.
        path: The file, for error messages.
        verify_checksums: Whether to check each chunk's CRC-32.
        allow_truncated: Whether to silently drop an incomplete final record (see
            :func:`iter_records`).

    Yields:
        The serialized bytes of each record, in file order.

    Raises:
        ValueError: On a bad file header or corrupt framing.
    """
    block = fh.read(BLOCK_SIZE)
    _check_file_header(block, path)
    block_start = 0  # file offset of `block`
    pos = _FILE_HEADER.size  # the file header occupies the start of the first block
    pending: bytearray | None = None  # payload of a FIRST..MIDDLE* record being assembled
    pending_offset = 0

    def corrupt(offset: int, why: str) -> ValueError:
        return ValueError(f"{path}: corrupt W&B run file at byte {offset}: {why}")

    while True:
        remaining = len(block) - pos
        if remaining < _CHUNK_HEADER.size:
            # Block trailer (zero padding) or the end of the file.
            if len(block) == BLOCK_SIZE:
                block_start += BLOCK_SIZE
                block = fh.read(BLOCK_SIZE)
                pos = 0
                if block:
                    continue
            if remaining and any(block[pos:]) and not allow_truncated:
                raise corrupt(block_start + pos, "truncated chunk header at end of file")
            break

        offset = block_start + pos
        crc, length, ctype = _CHUNK_HEADER.unpack_from(block, pos)
        if crc == 0 and length == 0 and ctype == 0:
            # Zeroed rest of block (as written by LevelDB-style writers); skip to the next one.
            if pending is not None:
                raise corrupt(offset, "zero padding inside a multi-chunk record")
            pos = len(block)
            if len(block) < BLOCK_SIZE:
                break
            continue
        start = pos + _CHUNK_HEADER.size
        end = start + length
        if end > len(block):
            if len(block) == BLOCK_SIZE:
                raise corrupt(offset, f"chunk length {length} overflows its 32 KiB block")
            if allow_truncated:
                break  # the writer was interrupted mid-chunk; drop the torn tail
            raise corrupt(offset, f"chunk of length {length} runs past the end of the file")
        payload = memoryview(block)[start:end]
        if ctype not in _TYPE_CRC:
            raise corrupt(offset, f"unknown chunk type {ctype}")
        if verify_checksums and zlib.crc32(payload, _TYPE_CRC[ctype]) != crc:
            raise corrupt(offset, "checksum mismatch")
        pos = end

        if ctype == _FULL:
            if pending is not None:
                raise corrupt(offset, "FULL chunk inside a multi-chunk record")
            yield bytes(payload)
        elif ctype == _FIRST:
            if pending is not None:
                raise corrupt(offset, "FIRST chunk inside a multi-chunk record")
            pending = bytearray(payload)
            pending_offset = offset
        else:  # MIDDLE or LAST
            if pending is None:
                raise corrupt(offset, "MIDDLE/LAST chunk without a FIRST chunk")
            pending += payload
            if ctype == _LAST:
                yield bytes(pending)
                pending = None

    if pending is not None and not allow_truncated:
        raise corrupt(pending_offset, "multi-chunk record is missing its LAST chunk")


def iter_records(
    path: str | Path,
    *,
    verify_checksums: bool = True,
    allow_truncated: bool = True,
) -> Iterator[Record]:
    """Iterate over the protobuf records of a W&B run file (``run-<id>.wandb``).

    The file is streamed block by block, so arbitrarily large run files are fine.

    Args:
        path: Path to the ``.wandb`` file.
        verify_checksums: Check each chunk's IEEE CRC-32 (over type byte + payload) and raise on a
            mismatch.
        allow_truncated: If True (default), an incomplete *final* record -- what a killed process
            or a still-running writer leaves behind -- is silently dropped; if False it raises.
            Corruption anywhere else always raises.

    Yields:
        Each decoded ``wandb_internal_pb2.Record`` in file order.

    Raises:
        ValueError: If the file is not a W&B run file (bad header), or its framing, checksums or
            protobuf payloads are corrupt. The message names the file.
        OSError: If the file cannot be read.
    """
    path = Path(path)
    with path.open("rb") as fh:
        for payload in _iter_payloads(
            fh, path, verify_checksums=verify_checksums, allow_truncated=allow_truncated
        ):
            record = Record()
            try:
                record.ParseFromString(payload)
            except DecodeError as exc:
                raise ValueError(f"{path}: undecodable W&B record: {exc}") from exc
            yield record


@dataclass
class OfflineRun:
    """What an offline W&B run logged, decoded from its ``.wandb`` transaction log.

    Attributes:
        path: The ``run-<id>.wandb`` file that was read.
        run_id: The run id (from the run record; falls back to the file name).
        project: The project name, or ``""`` if none was recorded.
        config: Final run config. Values are JSON-decoded; an item addressed by a multi-part
            ``nested_key`` is stored as nested dicts. Includes W&B's internal ``_wandb`` key.
        history: One dict per history row (``run.log`` call), in order. Keys are ``item.key`` or
            the ``item.nested_key`` parts joined with ``"/"``; values are JSON-decoded. Every row
            has ``_step`` (W&B also adds ``_runtime`` and ``_timestamp``).
        summary: Final summary after applying every summary update/removal in order (nested
            ``nested_key`` paths become nested dicts, e.g. ``summary["_wandb"]["runtime"]``).
        files: Paths (relative to the run's ``files/`` dir) of files W&B was asked to save,
            deduplicated, in first-seen order.
        exit_code: The exit code from the run's exit record, or None if the run never finished.
    """

    path: Path
    run_id: str
    project: str = ""
    config: dict[str, Any] = field(default_factory=dict)
    history: list[dict[str, Any]] = field(default_factory=list)
    summary: dict[str, Any] = field(default_factory=dict)
    files: list[str] = field(default_factory=list)
    exit_code: int | None = None

    def metric(self, key: str) -> list[tuple[int, Any]]:
        """Return ``(step, value)`` for every history row that logged ``key``.

        Args:
            key: A history key such as ``"train/loss"``.

        Returns:
            The logged values with their ``_step``, in logging order.
        """
        return [(row["_step"], row[key]) for row in self.history if key in row]


def _decode_json(value_json: str, where: str) -> Any:
    try:
        return json.loads(value_json)
    except json.JSONDecodeError as exc:
        raise ValueError(f"{where}: invalid value_json {value_json!r}: {exc}") from exc


def _item_path(key: str, nested_key: Sequence[str]) -> list[str]:
    return [key] if key else list(nested_key)


def _set_path(target: dict[str, Any], path: Sequence[str], value: Any) -> None:
    *parents, leaf = path
    for part in parents:
        child = target.get(part)
        if not isinstance(child, dict):
            child = target[part] = {}
        target = child
    target[leaf] = value


def _del_path(target: dict[str, Any], path: Sequence[str]) -> None:
    *parents, leaf = path
    for part in parents:
        child = target.get(part)
        if not isinstance(child, dict):
            return
        target = child
    target.pop(leaf, None)


def _apply_updates(
    target: dict[str, Any],
    record: Any,  # wandb_internal_pb2.ConfigRecord | wandb_internal_pb2.SummaryRecord
    where: str,
) -> None:
    for item in record.update:
        path = _item_path(item.key, item.nested_key)
        if path:
            _set_path(target, path, _decode_json(item.value_json, where))
    for item in record.remove:
        path = _item_path(item.key, item.nested_key)
        if path:
            _del_path(target, path)


def _history_value(item: Any, where: str) -> Any:  # item: wandb_internal_pb2.HistoryItem
    if item.value_json:
        return _decode_json(item.value_json, where)
    kind = item.WhichOneof("value")  # typed values, used by some writers instead of value_json
    if kind is None or kind == "none":
        return None
    if kind == "json":
        return _decode_json(item.json, where)
    return getattr(item, kind)


def _resolve_run_file(path: Path) -> Path:
    if path.is_file():
        return path
    if not path.is_dir():
        raise FileNotFoundError(f"No W&B run file or directory at {path}")
    run_files = sorted(path.glob(_RUN_FILE_GLOB))
    if run_files:
        # A run directory holds one run-<id>.wandb; a resumed run in the same dir would reuse it.
        return run_files[-1]
    runs = find_offline_runs(path)
    if not runs:
        raise FileNotFoundError(
            f"No W&B offline run under {path} (looked for {_RUN_FILE_GLOB} in it and for "
            f"{_OFFLINE_RUN_GLOB}/ dirs in it and in its wandb/ subdirectory)"
        )
    return sorted(runs[-1].glob(_RUN_FILE_GLOB))[-1]


def find_offline_runs(root: str | Path) -> list[Path]:
    """List the offline run directories under ``root``, oldest first.

    Looks for ``offline-run-*`` directories that contain a ``run-*.wandb`` file, both directly in
    ``root`` (i.e. ``root`` is a ``wandb/`` dir) and in ``root/wandb``. Run directories are named
    ``offline-run-YYYYMMDD_HHMMSS-<id>``, so sorting by name sorts by start time (runs started in
    the same second are ordered by id).

    Args:
        root: A directory containing a ``wandb/`` folder, or the ``wandb/`` folder itself.

    Returns:
        The run directories sorted by name; empty if there are none.
    """
    root = Path(root)
    runs: set[Path] = set()
    for base in (root, root / "wandb"):
        if not base.is_dir():
            continue
        for candidate in base.glob(_OFFLINE_RUN_GLOB):
            if candidate.is_dir() and not candidate.is_symlink():
                if any(candidate.glob(_RUN_FILE_GLOB)):
                    runs.add(candidate)
    return sorted(runs, key=lambda p: (p.name, str(p)))


def read_offline_run(
    path: str | Path, *, verify_checksums: bool = True, allow_truncated: bool = True
) -> OfflineRun:
    """Read an offline W&B run back from disk.

    Args:
        path: One of: the ``run-<id>.wandb`` file; an offline run directory
            (``.../wandb/offline-run-*/``); or a directory containing a ``wandb/`` folder (or the
            ``wandb/`` folder itself). In the last case, if there are several offline runs, the
            latest one by directory name (i.e. by start time) is read -- use
            :func:`find_offline_runs` to pick another.
        verify_checksums: Passed to :func:`iter_records`.
        allow_truncated: Passed to :func:`iter_records`.

    Returns:
        The decoded run.

    Raises:
        FileNotFoundError: If no run file can be found at or under ``path``.
        ValueError: If the file is not a W&B run file or is corrupt.
    """
    run_file = _resolve_run_file(Path(path))
    run = OfflineRun(path=run_file, run_id="")
    seen_files: set[str] = set()
    where = str(run_file)

    for record in iter_records(
        run_file, verify_checksums=verify_checksums, allow_truncated=allow_truncated
    ):
        kind = record.WhichOneof("record_type")
        if kind == "run":
            run_record = record.run
            if not run.run_id and run_record.run_id:
                run.run_id = run_record.run_id
            if not run.project and run_record.project:
                run.project = run_record.project
            _apply_updates(run.config, run_record.config, where)
            _apply_updates(run.summary, run_record.summary, where)
        elif kind == "config":
            _apply_updates(run.config, record.config, where)
        elif kind == "summary":
            _apply_updates(run.summary, record.summary, where)
        elif kind == "history":
            row: dict[str, Any] = {}
            for item in record.history.item:
                key = item.key or "/".join(item.nested_key)
                row[key] = _history_value(item, where)
            row.setdefault("_step", record.history.step.num)
            run.history.append(row)
        elif kind == "files":
            for file_item in record.files.files:
                if file_item.path not in seen_files:
                    seen_files.add(file_item.path)
                    run.files.append(file_item.path)
        elif kind == "exit":
            run.exit_code = record.exit.exit_code

    if not run.run_id:
        # run-<id>.wandb
        run.run_id = run_file.stem.removeprefix("run-")
    return run
