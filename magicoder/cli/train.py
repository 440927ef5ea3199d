"""``magicoder-train``: instruction-tune a code model (``conf/train.yaml``)."""

from __future__ import annotations

import hydra
from omegaconf import DictConfig

from magicoder.config import config_dir, register_resolvers

register_resolvers()


@hydra.main(version_base="1.3", config_path=str(config_dir()), config_name="train")
def main(cfg: DictConfig) -> float | None:
    """Compose, train, evaluate; returns the last stage's HumanEval+ pass@1 (for sweepers)."""
    from magicoder.training.app import run_train

    metrics = run_train(cfg)
    plus = [v for k, v in metrics.items() if k.endswith("humaneval_plus/pass@1")]
    return plus[-1] if plus else None


if __name__ == "__main__":
    main()
