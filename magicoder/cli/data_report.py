"""``magicoder-data-report``: report on an instruction file (``conf/data-report.yaml``)."""

from __future__ import annotations

import hydra
from omegaconf import DictConfig

from magicoder.cli import console_entry
from magicoder.config import config_dir


@hydra.main(version_base="1.3", config_path=str(config_dir()), config_name="data-report")
def app(cfg: DictConfig) -> float | None:
    """Compose, report; returns ``cfg.optimized_metric`` (for sweepers)."""
    from magicoder.curation.app import run_data_report
    from magicoder.lifecycle import optimized_metric

    return optimized_metric(cfg, run_data_report(cfg))


main = console_entry(app)


if __name__ == "__main__":
    main()
