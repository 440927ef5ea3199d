"""Experiment tracking: loggers from config, sweep grouping, evaluation tables for W&B."""

from __future__ import annotations

import logging
from pathlib import Path
from typing import TYPE_CHECKING, Any

from hydra.utils import instantiate
from lightning.pytorch.loggers import Logger, WandbLogger
from lightning.pytorch.utilities import rank_zero_only
from omegaconf import DictConfig

if TYPE_CHECKING:
    from magicoder.evaluation.harness import BenchmarkResult

log = logging.getLogger(__name__)

_WANDB_ID_FILE = "wandb_run_id"


def build_logger(cfg: DictConfig | None, run_dir: Path) -> Logger | None:
    """Instantiate ``cfg.logger`` writing under ``run_dir``; None for ``logger=none``.

    A W&B run keeps its id in the run directory, so a resumed run continues the same W&B run.
    """
    if cfg is None or "_target_" not in cfg:
        return None
    kwargs: dict[str, Any] = {"save_dir": str(run_dir)}
    if cfg._target_.endswith("WandbLogger"):
        group, tags = sweep_context()
        if cfg.get("group") is None and group is not None:
            kwargs["group"] = group
        kwargs["tags"] = [*(cfg.get("tags") or []), *tags]
        id_file = run_dir / _WANDB_ID_FILE
        if id_file.is_file():
            kwargs["id"] = id_file.read_text().strip()
        elif getattr(rank_zero_only, "rank", 0) == 0:  # only rank 0 opens a W&B run (DDP)
            from wandb.sdk.lib.runid import generate_id

            kwargs["id"] = generate_id()
            run_dir.mkdir(parents=True, exist_ok=True)
            id_file.write_text(kwargs["id"])
    logger = instantiate(cfg, **kwargs)
    assert isinstance(logger, Logger)
    return logger


def sweep_context() -> tuple[str | None, list[str]]:
    """W&B group and tags for the current Hydra job.

    Runs of one sweep share a group named after the sweep directory; tags carry the
    experiment's name and the job's overrides (the swept values among them).

    Returns:
        ``(group, tags)``; group is None outside a multirun (and outside Hydra).
    """
    from hydra.core.hydra_config import HydraConfig
    from hydra.types import RunMode

    if not HydraConfig.initialized():
        return None, []
    hydra_cfg = HydraConfig.get()
    tags = []
    experiment = hydra_cfg.runtime.choices.get("experiment")
    if experiment:
        tags.append(f"experiment={experiment}")
    if hydra_cfg.mode != RunMode.MULTIRUN:
        return None, tags
    # W&B caps tags at 64 characters.
    tags += [override[:64] for override in hydra_cfg.overrides.task]
    sweep_dir = Path(hydra_cfg.sweep.dir)
    return f"{sweep_dir.parent.name}/{sweep_dir.name}", tags


def log_eval_tables(logger: Logger | None, results: list[BenchmarkResult], stage: str) -> None:
    """For W&B: one stage's per-task results as a table, and its samples as an artifact."""
    if not isinstance(logger, WandbLogger):
        return
    import wandb

    run = logger.experiment
    for result in results:
        table = wandb.Table(columns=["task_id", "base_status", "plus_status", "solution"])
        for row in result.rows:
            table.add_data(row["task_id"], row["base_status"], row["plus_status"], row["solution"])
        run.log({f"eval/{stage}/{result.benchmark}/tasks": table})
        artifact = wandb.Artifact(
            name=f"samples-{run.id}-{stage}-{result.benchmark}",
            type="evalplus-samples",
            metadata={
                "stage": stage,
                "benchmark": result.benchmark,
                "version": result.version,
                "pass@1": result.pass_at_1,
                "pass@1_plus": result.pass_at_1_plus,
            },
        )
        artifact.add_file(str(result.samples_path))
        artifact.add_file(str(result.results_path))
        run.log_artifact(artifact)
