"""Helpers shared by the tests that run an app as its own process (the way users run it)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path
from typing import Any

TESTS_DIR = Path(__file__).resolve().parent

TWO_TINY_STAGES = [
    "data=oss-then-evol",
    "sources=embedded",
    "sources.oss.max_files=25",
    "sources.evol.max_files=25",
    "data.stages.oss-instruct.max_seq_len=128",
    "data.stages.evol-instruct.max_seq_len=128",
    "data.batch_size=2",
    "data.num_workers=0",
]
"""The paper's two stages on a few embedded rows: overrides for ``conf/train.yaml``."""


def cli_env() -> dict[str, str]:
    """The environment for an app under test: W&B offline and quiet, one torch thread per
    process, and ``tests/`` importable (for the test callbacks configs may name)."""
    path = os.pathsep.join(filter(None, [str(TESTS_DIR), os.environ.get("PYTHONPATH")]))
    return {
        **os.environ,
        "WANDB_MODE": "offline",
        "WANDB_SILENT": "true",
        "OMP_NUM_THREADS": "1",
        "PYTHONPATH": path,
    }


def run_module(
    module: str, args: list[str], cwd: Path, timeout: float = 1200, **kwargs: Any
) -> subprocess.CompletedProcess:
    """``python -m <module> <args>`` in ``cwd`` (nothing may depend on the working directory),
    output captured as text unless ``kwargs`` say where it goes."""
    if "stdout" not in kwargs:
        kwargs["capture_output"] = True
    return subprocess.run(
        [sys.executable, "-m", module, *args],
        env=cli_env(),
        cwd=cwd,
        text=True,
        timeout=timeout,
        **kwargs,
    )


def cpu_trainer(**kwargs: Any) -> Any:
    """A one-process CPU ``lightning.Trainer`` without logger, checkpoints, progress bar or
    model summary; ``kwargs`` add to those settings or override them."""
    import lightning as L

    options: dict[str, Any] = {
        "accelerator": "cpu",
        "devices": 1,
        "logger": False,
        "enable_checkpointing": False,
        "enable_progress_bar": False,
        "enable_model_summary": False,
    }
    return L.Trainer(**{**options, **kwargs})
