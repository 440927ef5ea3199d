"""Read offline W&B runs back from disk through wandb's own ``wandb leet inspect``.

wandb >= 0.2x ships no Python reader for its ``run-<id>.wandb`` transaction log (the file is
written by the Go ``wandb-core`` service), but its CLI reads one: ``wandb leet inspect --json``
prints every record as a JSON line and ``wandb leet inspect --summary --json`` prints the run's
state, exit code, latest metrics and config as one object. This module runs that tool with the
current interpreter's wandb and turns its output into a :class:`WandbRun`; it never parses the
file itself.

Two things the tool's JSON does differently from what a run logged:

* Nested history values are flattened with ``"."``: ``run.log({"eval": {"acc": 0.25}})`` gives
  the history key ``"eval.acc"`` (as in W&B's UI and its public API's ``run.history()``). The
  summary stays nested (``summary["eval"]["acc"]``).
* JSON has no NaN or infinity, so the tool prints them as the strings ``"NaN"``,
  ``"Infinity"`` and ``"-Infinity"``; they are turned back into floats here (a metric logged
  as one of these exact strings therefore reads back as a float).
"""

from __future__ import annotations

import json
import math
import os
import signal
import subprocess
import sys
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

__all__ = ["WandbRun", "find_run_file", "read_run", "wait_for_exit"]

_RUN_FILE_GLOB = "run-*.wandb"
_OFFLINE_RUN_GLOB = "offline-run-*"
# Reading even a long run takes the tool seconds; this only stops a hung subprocess.
_READ_TIMEOUT_S = 600.0
# What `wandb leet inspect` needs to start (it imports wandb before running wandb-core).
_STARTUP_S = 30.0
_NON_FINITE = {"NaN": math.nan, "Infinity": math.inf, "-Infinity": -math.inf}


@dataclass(frozen=True)
class WandbRun:
    """What an offline W&B run logged, as ``wandb leet inspect`` reads it.

    Attributes:
        path: The ``run-<id>.wandb`` file that was read.
        run_id: The run id (the file name's when the file holds no run record yet).
        state: The tool's word for the run: ``"finished"`` (exit code 0), ``"failed"``
            (non-zero exit code), else its word for a run without an exit record yet (e.g.
            ``"unknown"`` for a file its process never flushed).
        exit_code: The code of the run's exit record, or None if it has none.
        project: The project name, ``""`` if none was recorded.
        group: The run group, ``""`` if none.
        tags: The run's tags.
        config: The final config (W&B's internal ``_wandb`` key left out).
        summary: The final summary, nested (``summary["eval"]["acc"]`` for a logged
            ``{"eval": {"acc": ...}}``).
        history: One dict per history row (``run.log`` call) in order; nested keys joined with
            ``"."``; every row has ``_step``.
        files: Paths (relative to the run's ``files/``) of the files W&B saved, first seen first.
    """

    path: Path
    run_id: str
    state: str
    exit_code: int | None
    project: str = ""
    group: str = ""
    tags: list[str] = field(default_factory=list)
    config: dict[str, Any] = field(default_factory=dict)
    summary: dict[str, Any] = field(default_factory=dict)
    history: list[dict[str, Any]] = field(default_factory=list)
    files: list[str] = field(default_factory=list)


def find_run_file(path: str | Path) -> Path:
    """The ``run-<id>.wandb`` file at or under ``path``; the newest run's if there are several.

    Args:
        path: A ``.wandb`` file; an offline run directory (``wandb/offline-run-*/``); a
            ``wandb/`` directory; or a directory holding a ``wandb/`` directory (a run dir).

    Returns:
        The run file. Among several offline runs, the newest is the one started last (the
        ``offline-run-YYYYMMDD_HHMMSS-<id>`` name), then, within the same second, the one
        written last.

    Raises:
        FileNotFoundError: If ``path`` does not exist or holds no offline run.
        ValueError: If ``path`` is a file that is not a ``.wandb`` file.
    """
    path = Path(path)
    if path.is_file():
        if path.suffix != ".wandb":
            raise ValueError(f"{path} is not a W&B run file; pass a run-<id>.wandb file or a dir")
        return path
    if not path.is_dir():
        raise FileNotFoundError(f"no W&B run file or directory at {path}")
    if run_files := sorted(path.glob(_RUN_FILE_GLOB)):
        return run_files[-1]
    candidates = [
        run_file
        for base in (path, path / "wandb")
        for run_dir in base.glob(_OFFLINE_RUN_GLOB)
        if run_dir.is_dir()
        for run_file in sorted(run_dir.glob(_RUN_FILE_GLOB))[-1:]
    ]
    if not candidates:
        raise FileNotFoundError(
            f"no W&B offline run under {path} (looked for {_RUN_FILE_GLOB} in it and for "
            f"{_OFFLINE_RUN_GLOB}/ dirs in it and in its wandb/ dir); was the run logged with "
            "logger=wandb in offline mode?"
        )
    # offline-run-YYYYMMDD_HHMMSS-<id>: drop the random id, keep the start time.
    return max(candidates, key=lambda f: (f.parent.name.rpartition("-")[0], f.stat().st_mtime_ns))


def read_run(path: str | Path) -> WandbRun:
    """Read an offline W&B run with ``wandb leet inspect``.

    Args:
        path: As for :func:`find_run_file`.

    Returns:
        The run's state, exit code, config, summary, history and saved files.

    Raises:
        FileNotFoundError: If no run file is found at or under ``path``.
        ValueError: If the tool cannot read the file (not a W&B run file, corrupt); the message
            names the file and gives the tool's error.
    """
    run_file = find_run_file(path)
    with ThreadPoolExecutor(max_workers=2) as pool:
        records_job = pool.submit(_inspect, run_file, ["--json"], _READ_TIMEOUT_S)
        summary_job = pool.submit(_inspect, run_file, ["--summary", "--json"], _READ_TIMEOUT_S)
        records = _json_lines(records_job.result(), run_file)
        summary_text = summary_job.result()
    try:
        overview = json.loads(summary_text)
    except json.JSONDecodeError as err:
        raise ValueError(
            f"`wandb leet inspect --summary --json {run_file}` printed no JSON object ({err})"
        ) from err

    history: list[dict[str, Any]] = []
    files: list[str] = []
    run_record: dict[str, Any] = {}
    for record in records:
        kind = record.get("type")
        if kind == "history":
            row = _restore_non_finite(dict(record["history"].get("item", {})))
            row.setdefault("_step", record["history"].get("step", {}).get("num", 0))
            history.append(row)
        elif kind == "files":
            for item in record["files"].get("files", []):
                if item["path"] not in files:
                    files.append(item["path"])
        elif kind == "run" and not run_record:
            run_record = record["run"]

    exit_code = overview.get("exit_code")
    return WandbRun(
        path=run_file,
        run_id=overview.get("run_id") or run_file.stem.removeprefix("run-"),
        state=overview.get("state", "unknown"),
        exit_code=None if exit_code is None else int(exit_code),
        project=overview.get("project", ""),
        group=run_record.get("run_group", ""),
        tags=list(overview.get("tags") or []),
        config=overview.get("config") or {},
        summary=_restore_non_finite(overview.get("summary") or {}),
        history=history,
        files=files,
    )


def wait_for_exit(run_file: str | Path, timeout: float) -> int | None:
    """Wait until a run file holds its exit record (``wandb leet inspect --follow``).

    ``run.finish()`` can return before W&B's service has flushed the last records of an offline
    run; whoever reads the run next should see all of them.

    Args:
        run_file: The run's ``run-<id>.wandb`` file (``run.settings.sync_file``).
        timeout: Give up once the file has gone this many seconds without a write, or after
            this long plus the tool's start-up allowance if it keeps being written.

    Returns:
        The run's exit code, or None if no exit record appeared in time.

    Raises:
        FileNotFoundError: If ``run_file`` does not exist.
        ValueError: If ``timeout`` is not positive, or the tool cannot read the file.
    """
    run_file = Path(run_file)
    if not run_file.is_file():
        raise FileNotFoundError(f"no W&B run file at {run_file}")
    if timeout <= 0:
        raise ValueError(f"timeout={timeout} must be positive (seconds to wait for the exit)")
    flags = ["--follow", "--json", "--idle-timeout", f"{timeout:g}s"]
    try:
        out = _inspect(run_file, flags, timeout + _STARTUP_S)
    except TimeoutError:
        return None
    exits = [r["exit"] for r in _json_lines(out, run_file) if r.get("type") == "exit"]
    return int(exits[-1].get("exit_code", 0)) if exits else None


def _inspect(run_file: Path, flags: list[str], timeout: float) -> str:
    """Run ``wandb leet inspect FLAGS RUN_FILE`` and return what it printed."""
    command = [sys.executable, "-m", "wandb", "leet", "inspect", *flags, str(run_file)]
    # Offline mode tells the tool not to send its own error telemetry anywhere.
    env = {**os.environ, "WANDB_MODE": "offline", "WANDB_SILENT": "true"}
    # Its own session, so that a timeout kills the wandb-core child along with the CLI.
    proc = subprocess.Popen(
        command,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=env,
        start_new_session=True,
    )
    try:
        out, err = proc.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.communicate()
        raise TimeoutError(f"`{' '.join(command)}` ran over {timeout:g} s") from None
    if proc.returncode != 0:
        raise ValueError(
            f"`wandb leet inspect` could not read {run_file} (exit {proc.returncode}): "
            f"{err.strip() or out.strip()}"
        )
    return out


def _json_lines(text: str, run_file: Path) -> list[dict[str, Any]]:
    records = []
    for n, line in enumerate(text.splitlines(), 1):
        if not line.strip():
            continue
        try:
            records.append(json.loads(line))
        except json.JSONDecodeError as err:
            raise ValueError(
                f"`wandb leet inspect --json {run_file}` printed a line {n} that is not JSON "
                f"({err}): {line[:200]!r}"
            ) from err
    return records


def _restore_non_finite(value: Any) -> Any:
    if isinstance(value, str):
        return _NON_FINITE.get(value, value)
    if isinstance(value, dict):
        return {key: _restore_non_finite(item) for key, item in value.items()}
    if isinstance(value, list):
        return [_restore_non_finite(item) for item in value]
    return value
