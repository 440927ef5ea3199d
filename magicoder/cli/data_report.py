"""``magicoder-data-report``: report on an instruction file (``conf/data-report.yaml``)."""

from __future__ import annotations

import hydra
from omegaconf import DictConfig

from magicoder.config import config_dir, register_configs


@hydra.main(version_base="1.3", config_path=str(config_dir()), config_name="data-report")
def app(cfg: DictConfig) -> float | None:
    """Compose, report; returns ``cfg.optimized_metric`` (for sweepers)."""
    from magicoder.curation.app import run_data_report
    from magicoder.lifecycle import optimized_metric

    return optimized_metric(cfg, run_data_report(cfg))


def main() -> float | None:
    """The console script: register the configs, then compose and run. Registering here, not
    on import, keeps this module light for the scoring workers that re-import it (spawned
    processes import the parent's main module; the schemas import torch and transformers)."""
    register_configs()
    return app()  # Hydra parses the command line


if __name__ == "__main__":
    main()
