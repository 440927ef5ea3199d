"""``magicoder-train``: instruction-tune a code model (``conf/train.yaml``)."""

from __future__ import annotations

import hydra
from omegaconf import DictConfig

from magicoder.cli import console_entry
from magicoder.config import config_dir


@hydra.main(version_base="1.3", config_path=str(config_dir()), config_name="train")
def app(cfg: DictConfig) -> float | None:
    """Compose, train, evaluate; returns ``cfg.optimized_metric`` (for sweepers)."""
    from magicoder.lifecycle import optimized_metric
    from magicoder.training.app import run_train

    return optimized_metric(cfg, run_train(cfg))


main = console_entry(app)


if __name__ == "__main__":
    main()
