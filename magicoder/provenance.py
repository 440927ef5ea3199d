"""What produced a number: package versions and the project's revision.

Recorded in every ``results.json``, in ``metrics.json`` and in the W&B config, beside the
evaluation protocol's fingerprint (:mod:`magicoder.evaluation.protocols`).
"""

from __future__ import annotations

import functools
import platform
import subprocess
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path
from typing import Any

PACKAGES: tuple[str, ...] = (
    "magicoder",
    "torch",
    "transformers",
    "lightning",
    "evalplus",
    "datasets",
    "hydra-core",
    "wandb",
    "vllm",
    "peft",
)
"""Packages whose versions move results; those not installed are left out."""


def package_versions() -> dict[str, str]:
    """Installed version of each of :data:`PACKAGES` (missing ones are omitted)."""
    versions = {}
    for name in PACKAGES:
        try:
            versions[name] = version(name)
        except PackageNotFoundError:
            continue
    return versions


@functools.cache
def git_revision() -> str:
    """The project's git commit, with "-dirty" when the work tree has changes; "unknown"
    outside a git checkout (e.g. an installed wheel)."""
    root = Path(__file__).resolve().parent.parent
    try:
        commit = _git(root, "rev-parse", "HEAD")
        dirty = _git(root, "status", "--porcelain", "--untracked-files=no")
    except (OSError, subprocess.CalledProcessError):
        return "unknown"
    return commit + ("-dirty" if dirty else "")


def _git(root: Path, *args: str) -> str:
    return subprocess.run(
        ["git", "-C", str(root), *args], capture_output=True, text=True, check=True, timeout=30
    ).stdout.strip()


def provenance() -> dict[str, Any]:
    """Packages, revision and interpreter of this process."""
    return {
        "packages": package_versions(),
        "git_revision": git_revision(),
        "python": platform.python_version(),
    }
