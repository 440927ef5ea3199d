"""``magicoder-evaluate``: score a model on HumanEval+ / MBPP+ (``conf/evaluate.yaml``)."""

from __future__ import annotations

import hydra
from omegaconf import DictConfig

from magicoder.config import config_dir, register_resolvers

register_resolvers()


@hydra.main(version_base="1.3", config_path=str(config_dir()), config_name="evaluate")
def main(cfg: DictConfig) -> float | None:
    """Compose, generate, score; returns HumanEval+ pass@1 when it was evaluated."""
    from magicoder.evaluation.app import run_evaluate

    metrics = run_evaluate(cfg)
    return metrics.get(f"eval/{cfg.stage}/humaneval_plus/pass@1")


if __name__ == "__main__":
    main()
