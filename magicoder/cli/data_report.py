"""``magicoder-data-report``: report on an instruction file (``conf/data-report.yaml``)."""

from __future__ import annotations

import hydra
from omegaconf import DictConfig

from magicoder.config import config_dir, register_resolvers

register_resolvers()


@hydra.main(version_base="1.3", config_path=str(config_dir()), config_name="data-report")
def main(cfg: DictConfig) -> float | None:
    """Compose, report; returns the mean similarity to HumanEval when it was computed."""
    from magicoder.curation.app import run_data_report

    metrics = run_data_report(cfg)
    return metrics.get("report/humaneval_similarity_mean")


if __name__ == "__main__":
    main()
