"""Shared fixtures: benchmark files beside the checkout, composed configs, a tiny model."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from hydra import compose as hydra_compose
from hydra import initialize_config_dir
from hydra.core.global_hydra import GlobalHydra
from omegaconf import DictConfig, open_dict

from magicoder.config import config_dir, register_configs, validate_config

ROOT = Path(__file__).resolve().parents[1]
DATA_DIR = ROOT.parent / "shared" / "data"
HUMANEVAL_PLUS = DATA_DIR / "HumanEvalPlus-v0.1.10.jsonl.gz"
MBPP_PLUS = DATA_DIR / "MbppPlus-v0.2.0.jsonl.gz"

register_configs()
os.environ.setdefault("WANDB_SILENT", "true")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")


@pytest.fixture(scope="session")
def data_dir() -> Path:
    """The shared benchmark files (never copied into the project)."""
    if not HUMANEVAL_PLUS.is_file() or not MBPP_PLUS.is_file():
        pytest.fail(f"benchmark files are expected in {DATA_DIR} (../shared/data)")
    return DATA_DIR


def compose_config(name: str, overrides: list[str], output_dir: Path) -> DictConfig:
    """Compose ``conf/<name>.yaml`` as the CLI would, with the run dir set to ``output_dir``.

    Like every app, it validates the config (:func:`magicoder.config.validate_config`).
    """
    GlobalHydra.instance().clear()
    with initialize_config_dir(str(config_dir()), version_base="1.3"):
        cfg = hydra_compose(name, overrides=overrides)
    with open_dict(cfg):
        cfg.paths.output_dir = str(output_dir)
    validate_config(cfg)
    return cfg


@pytest.fixture(scope="session")
def tiny_cache(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A model cache shared by the session, so the tiny model is built once."""
    return tmp_path_factory.mktemp("model-cache")


@pytest.fixture
def compose():
    """The :func:`compose_config` function, for tests that compose configs."""
    return compose_config
