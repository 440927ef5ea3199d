"""``magicoder-evaluate``: score a model on HumanEval+ / MBPP+ (``conf/evaluate.yaml``)."""

from __future__ import annotations

import hydra
from omegaconf import DictConfig

from magicoder.config import config_dir, register_configs

register_configs()


@hydra.main(version_base="1.3", config_path=str(config_dir()), config_name="evaluate")
def main(cfg: DictConfig) -> float | None:
    """Compose, generate, score; returns ``cfg.optimized_metric`` (for sweepers)."""
    from magicoder.evaluation.app import run_evaluate
    from magicoder.lifecycle import optimized_metric

    return optimized_metric(cfg, run_evaluate(cfg))


if __name__ == "__main__":
    main()
