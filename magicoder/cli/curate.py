"""``magicoder-curate``: dedup, filter and decontaminate generated rows (``conf/curate.yaml``)."""

from __future__ import annotations

import hydra
from omegaconf import DictConfig

from magicoder.cli import console_entry
from magicoder.config import config_dir


@hydra.main(version_base="1.3", config_path=str(config_dir()), config_name="curate")
def app(cfg: DictConfig) -> float | None:
    """Compose, curate; returns ``cfg.optimized_metric`` (for sweepers)."""
    from magicoder.curation.app import run_curate
    from magicoder.lifecycle import optimized_metric

    return optimized_metric(cfg, run_curate(cfg))


main = console_entry(app)


if __name__ == "__main__":
    main()
