"""OmegaConf resolvers and small helpers shared by the Hydra apps."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from omegaconf import DictConfig, OmegaConf


def project_root() -> Path:
    """The checkout holding ``conf/`` (override with the MAGICODER_ROOT environment variable)."""
    env = os.environ.get("MAGICODER_ROOT")
    return Path(env).resolve() if env else Path(__file__).resolve().parents[1]


def config_dir() -> Path:
    """Directory of the primary configs."""
    return project_root() / "conf"


def _if_exists(path: str) -> str | None:
    """``${mc.if_exists:PATH}``: PATH when that file exists, else null."""
    return path if Path(path).expanduser().exists() else None


def register_resolvers() -> None:
    """Register the ``mc.*`` resolvers the configs use (idempotent)."""
    if not OmegaConf.has_resolver("mc.root"):
        OmegaConf.register_new_resolver("mc.root", lambda: str(project_root()))
    if not OmegaConf.has_resolver("mc.if_exists"):
        OmegaConf.register_new_resolver("mc.if_exists", _if_exists)


def to_dict(cfg: DictConfig | None) -> dict[str, Any]:
    """Resolve a config node into plain Python containers (``{}`` for None)."""
    if cfg is None:
        return {}
    out = OmegaConf.to_container(cfg, resolve=True)
    assert isinstance(out, dict)
    return {str(key): value for key, value in out.items()}
