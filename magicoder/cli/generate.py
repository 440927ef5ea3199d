"""``magicoder-generate``: make OSS-Instruct rows with a teacher LLM (``conf/generate.yaml``)."""

from __future__ import annotations

import hydra
from omegaconf import DictConfig

from magicoder.cli import console_entry
from magicoder.config import config_dir


@hydra.main(version_base="1.3", config_path=str(config_dir()), config_name="generate")
def app(cfg: DictConfig) -> float | None:
    """Compose, generate; returns ``cfg.optimized_metric`` (for sweepers)."""
    from magicoder.generation.app import run_generate
    from magicoder.lifecycle import optimized_metric

    return optimized_metric(cfg, run_generate(cfg))


main = console_entry(app)


if __name__ == "__main__":
    main()
