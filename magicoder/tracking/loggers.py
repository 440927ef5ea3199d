"""Experiment tracking: loggers from config, evaluation results to W&B, metrics.json."""

from __future__ import annotations

import json
import logging
import time
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


def log_eval_results(logger: Logger | None, results: list[BenchmarkResult], stage: str) -> None:
    """Log one stage's evaluation: metrics, and for W&B a per-task table and the samples."""
    if logger is None:
        return
    metrics: dict[str, float] = {}
    for result in results:
        metrics.update(result.metrics(stage))
    logger.log_metrics(metrics)
    if not isinstance(logger, WandbLogger):
        return
    import wandb

    run = logger.experiment
    run.summary.update(metrics)
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


def read_metrics(path: Path) -> dict[str, Any]:
    """Read ``metrics.json`` ({} when it does not exist)."""
    return json.loads(path.read_text()) if path.is_file() else {}


def write_metrics(path: Path, metrics: dict[str, Any]) -> None:
    """Write (merging into any existing) ``metrics.json``."""
    existing = read_metrics(path)
    existing.update(metrics)
    path.write_text(json.dumps(existing, indent=2, sort_keys=True) + "\n")


def finish(logger: Logger | None, timeout: float = 60.0) -> None:
    """Close the tracker so its files are complete on disk.

    ``wandb.finish`` can return before W&B's service has written the last records of an
    offline run, so wait (up to ``timeout`` seconds) until the run file holds its exit record:
    whoever reads the run next sees every metric.
    """
    if isinstance(logger, WandbLogger):
        run = logger.experiment
        run_file = Path(run.settings.sync_file) if run.settings.mode == "offline" else None
        run.finish()
        if run_file is not None:
            _wait_for_exit_record(run_file, timeout)
    elif logger is not None:
        logger.finalize("success")


def _wait_for_exit_record(run_file: Path, timeout: float) -> None:
    from magicoder.tracking.wandb_offline import read_offline_run

    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if run_file.is_file() and read_offline_run(run_file).exit_code is not None:
            return
        time.sleep(0.2)
    log.warning("W&B run file %s has no exit record after %.0f s", run_file, timeout)
