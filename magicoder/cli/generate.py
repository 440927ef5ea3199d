"""``magicoder-generate``: make OSS-Instruct rows with a teacher LLM (``conf/generate.yaml``)."""

from __future__ import annotations

import hydra
from omegaconf import DictConfig

from magicoder.config import config_dir, register_resolvers

register_resolvers()


@hydra.main(version_base="1.3", config_path=str(config_dir()), config_name="generate")
def main(cfg: DictConfig) -> float | None:
    """Compose, generate; returns the number of accepted rows of this invocation."""
    from magicoder.generation.app import run_generate

    metrics = run_generate(cfg)
    return metrics.get("generate/accepted")


if __name__ == "__main__":
    main()
