"""``magicoder-evaluate``: score a model on HumanEval+ / MBPP+ (``conf/evaluate.yaml``)."""

from __future__ import annotations

import hydra
from omegaconf import DictConfig

from magicoder.cli import console_entry
from magicoder.config import config_dir


@hydra.main(version_base="1.3", config_path=str(config_dir()), config_name="evaluate")
def app(cfg: DictConfig) -> float | None:
    """Compose, generate, score; returns ``cfg.optimized_metric`` (for sweepers)."""
    from magicoder.evaluation.app import run_evaluate
    from magicoder.lifecycle import optimized_metric

    return optimized_metric(cfg, run_evaluate(cfg))


main = console_entry(app)


if __name__ == "__main__":
    main()
