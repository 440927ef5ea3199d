"""``magicoder-curate``: dedup, filter and decontaminate generated rows (``conf/curate.yaml``)."""

from __future__ import annotations

import hydra
from omegaconf import DictConfig

from magicoder.config import config_dir, register_resolvers

register_resolvers()


@hydra.main(version_base="1.3", config_path=str(config_dir()), config_name="curate")
def main(cfg: DictConfig) -> float | None:
    """Compose, curate; returns the number of curated rows."""
    from magicoder.curation.app import run_curate

    metrics = run_curate(cfg)
    return metrics.get("curate/rows_out")


if __name__ == "__main__":
    main()
