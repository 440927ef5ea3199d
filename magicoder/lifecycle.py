"""One lifecycle for every app: run dir, resume, seeding, logger, ``metrics.json``, closing.

Every Hydra app's ``run_<stage>(cfg)`` is ``run_app(cfg, body)``: :func:`run_app` validates
the config, seeds, picks the run directory (continuing an earlier run when ``ckpt_path`` says
so), returns a finished run's metrics without redoing it (``skip_if_complete``), hands a
:class:`Run` to ``body`` and, whatever ``body`` does, writes ``metrics.json`` and closes the
logger: a W&B run that ends in an exception is finished with a failure exit code. This module
is the only place that writes ``metrics.json`` or finishes a logger.

Rank-zero decisions go through Lightning's ``rank_zero_only.rank`` (set from the launcher's
environment when the process starts, and by the strategy once it sets up), never through
whichever trainer object happens to be at hand.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import lightning as L
from lightning.fabric.utilities.rank_zero import rank_zero_only
from lightning.pytorch.loggers import Logger, WandbLogger
from omegaconf import DictConfig

from magicoder.config import to_dict, validate_config
from magicoder.provenance import provenance
from magicoder.tracking.loggers import build_logger, log_eval_tables

log = logging.getLogger(__name__)

RUN_COMPLETE = "run_complete"
"""Marker file written into a run directory when its app returned normally."""
METRICS_FILE = "metrics.json"
PROVENANCE_KEY = "provenance"
"""The ``metrics.json`` key of what made its numbers (everything else is a metric)."""


def is_global_zero() -> bool:
    """Whether this process is global rank zero (always true outside distributed runs)."""
    return getattr(rank_zero_only, "rank", 0) == 0


def barrier() -> None:
    """Wait for every rank (no-op outside an initialised process group)."""
    import torch.distributed as dist

    if dist.is_available() and dist.is_initialized():
        dist.barrier()


def leave_process_group() -> None:
    """Wait for every rank, then leave the process group (no-op outside one).

    What runs after this (rank zero's evaluation) holds no rank waiting in a collective, so
    no collective timeout (Lightning's default is 30 minutes) can end a long evaluation, and
    the other ranks exit and free their GPUs.
    """
    import torch.distributed as dist

    if dist.is_available() and dist.is_initialized():
        dist.barrier()
        dist.destroy_process_group()


def read_metrics(path: Path) -> dict[str, Any]:
    """The metrics of a ``metrics.json`` ({} when it does not exist), without its provenance."""
    content = json.loads(path.read_text()) if path.is_file() else {}
    content.pop(PROVENANCE_KEY, None)
    return content


def read_provenance(path: Path) -> dict[str, Any]:
    """The provenance a ``metrics.json`` records ({} when it has none)."""
    return json.loads(path.read_text()).get(PROVENANCE_KEY, {}) if path.is_file() else {}


def find_resume_dir(ckpt_path: str | None, run_dir: Path) -> Path | None:
    """Resolve ``ckpt_path`` to the run directory to continue, or None for a fresh run.

    Args:
        ckpt_path: None; ``"last"`` (the newest earlier run of this task that has
            checkpoints, or this run dir if it has some); a run directory; or a ``.ckpt``
            file (or directory, as DeepSpeed and sharded FSDP save them) inside
            ``<run dir>/checkpoints/<stage>/``.
        run_dir: This run's directory (Hydra's output dir).

    Raises:
        FileNotFoundError: When the path does not exist or no earlier run has checkpoints.
    """
    if ckpt_path is None:
        return None
    if ckpt_path == "last":
        if (run_dir / "checkpoints").is_dir():
            return run_dir
        siblings = sorted(
            (d for d in run_dir.parent.iterdir() if d != run_dir and (d / "checkpoints").is_dir()),
            key=lambda d: d.name,
        )
        if not siblings:
            raise FileNotFoundError(
                f"ckpt_path=last: no earlier run with checkpoints under {run_dir.parent}; "
                "pass ckpt_path=<run dir> or drop ckpt_path for a fresh run"
            )
        return siblings[-1]
    path = Path(ckpt_path).expanduser()
    if path.exists() and path.suffix == ".ckpt":  # a file, or DeepSpeed's directory
        return path.parents[2]
    if path.is_dir() and ((path / "checkpoints").is_dir() or (path / "model").is_dir()):
        return path
    raise FileNotFoundError(
        f"ckpt_path={ckpt_path!r} is neither a run directory with checkpoints/ nor a .ckpt "
        "file; pass an earlier run's directory, its checkpoints/<stage>/last.ckpt, or 'last'"
    )


@dataclass
class Run:
    """One app's run, as :func:`run_app` hands it to the app's body.

    Attributes:
        cfg: The composed config.
        dir: The run directory (an earlier run's when this one continues it).
        resumed: Whether this invocation continues an earlier run in ``dir``.
        metrics: Everything logged through :meth:`log_metrics` (and, when resumed, the
            earlier attempt's ``metrics.json``); written to ``metrics.json``.
        hparams: Extra hyperparameters logged beside the resolved config (set before the
            logger is first used).
        provenance: What made the numbers -- package versions, git revision, and the protocol
            of every evaluation (:meth:`record_evaluation`); in ``metrics.json`` under
            "provenance" and in the logger's config.
    """

    cfg: DictConfig
    dir: Path
    resumed: bool = False
    metrics: dict[str, Any] = field(default_factory=dict)
    hparams: dict[str, Any] = field(default_factory=dict)
    provenance: dict[str, Any] = field(default_factory=provenance)
    _logger: Logger | None = None
    _logger_built: bool = False

    @property
    def is_global_zero(self) -> bool:
        """Whether this process writes the run's files (global rank zero)."""
        return is_global_zero()

    @property
    def logger(self) -> Logger | None:
        """The configured logger, built on first use with the resolved config logged."""
        if not self._logger_built:
            self._logger_built = True
            self._logger = build_logger(self.cfg.get("logger"), self.dir)
            if self._logger is not None:
                self._logger.log_hyperparams(
                    {**to_dict(self.cfg), **self.hparams, PROVENANCE_KEY: self.provenance}
                )
        return self._logger

    def log_metrics(
        self, metrics: dict[str, float], step: int | None = None, summary: bool = False
    ) -> None:
        """Record metrics for ``metrics.json`` and send them to the logger.

        Args:
            metrics: Slash-namespaced values.
            step: The logger's step (None: the logger's own).
            summary: Also put them in the W&B run summary.
        """
        self.metrics.update(metrics)
        logger = self.logger
        if logger is None:
            return
        logger.log_metrics(metrics, step=step)
        if summary:
            self.summarize(metrics)

    def record_evaluation(self, stage: str, results: list[Any]) -> None:
        """Log one stage's scores (``BenchmarkResult`` s) with the protocol each was made under:
        metrics (also in the summary), the protocol records (provenance, logger config) and,
        for W&B, the per-task tables and samples."""
        protocols = self.provenance.setdefault("protocols", {})
        for result in results:
            self.log_metrics(result.metrics(stage), summary=True)
            protocols[f"eval/{stage}/{result.benchmark}"] = result.protocol
        logger = self.logger
        if logger is not None:
            logger.log_hyperparams({PROVENANCE_KEY: self.provenance})
        log_eval_tables(logger, results, stage)

    def summarize(self, values: dict[str, Any]) -> None:
        """Put values that are no time series (counts by reason, ...) in the W&B summary."""
        logger = self.logger
        if isinstance(logger, WandbLogger) and self.is_global_zero:
            logger.experiment.summary.update(values)

    def save_metrics(self) -> None:
        """Write ``metrics.json`` (rank zero only), merging into what an earlier attempt wrote."""
        if not self.is_global_zero:
            return
        path = self.dir / METRICS_FILE
        merged = {**read_metrics(path), **self.metrics, PROVENANCE_KEY: self.provenance}
        path.write_text(json.dumps(merged, indent=2, sort_keys=True) + "\n")

    def close(self, exit_code: int) -> None:
        """Write ``metrics.json`` and finish the logger (W&B keeps ``exit_code``)."""
        self.save_metrics()
        if self._logger is not None and self.is_global_zero:
            _finish_logger(self._logger, exit_code)


def _finish_logger(logger: Logger, exit_code: int, timeout: float = 60.0) -> None:
    """Close the tracker so its files are complete on disk.

    ``wandb.finish`` can return before W&B's service has written the last records of an
    offline run, so wait (up to ``timeout`` seconds) until the run file holds its exit record:
    whoever reads the run next sees every metric.
    """
    if not isinstance(logger, WandbLogger):
        logger.finalize("success" if exit_code == 0 else "failed")
        return
    from magicoder.tracking.wandb_runs import wait_for_exit

    run = logger.experiment
    run_file = Path(run.settings.sync_file) if run.settings.mode == "offline" else None
    run.finish(exit_code=exit_code)
    if run_file is not None and wait_for_exit(run_file, timeout) is None:
        log.warning("W&B run file %s has no exit record after %.0f s", run_file, timeout)


def _exit_code(error: BaseException) -> int:
    if isinstance(error, SystemExit):
        return error.code if isinstance(error.code, int) else 1
    return 255 if isinstance(error, KeyboardInterrupt) else 1


def run_app(cfg: DictConfig, body: Callable[[Run], None]) -> dict[str, Any]:
    """Run an app's ``body`` inside the shared lifecycle.

    Args:
        cfg: The composed config (``paths.output_dir`` is the run directory; optional keys:
            ``seed``, ``ckpt_path`` to continue an earlier run, ``skip_if_complete``).
        body: The app's work; it reads and writes through the :class:`Run` it is given.

    Returns:
        The run's metrics (also in ``<run dir>/metrics.json``).

    Raises:
        Whatever ``body`` raises, after ``metrics.json`` is written and the logger closed.
    """
    validate_config(cfg)
    if cfg.get("seed") is not None:
        L.seed_everything(cfg.seed, workers=True, verbose=False)
    run_dir = Path(cfg.paths.output_dir)
    resume_dir = find_resume_dir(cfg.get("ckpt_path"), run_dir)
    if resume_dir is not None and resume_dir != run_dir:
        log.info("Continuing run %s (this invocation's logs stay in %s)", resume_dir, run_dir)
    run_dir = resume_dir or run_dir
    if cfg.get("skip_if_complete") and (run_dir / RUN_COMPLETE).is_file():
        log.info("%s finished earlier (%s exists); returning its metrics", run_dir, RUN_COMPLETE)
        return read_metrics(run_dir / METRICS_FILE)
    run_dir.mkdir(parents=True, exist_ok=True)
    run = Run(cfg, run_dir, resumed=resume_dir is not None)
    if run.resumed:
        run.metrics.update(read_metrics(run_dir / METRICS_FILE))
        # Stages scored by an earlier attempt keep their protocol records.
        earlier = read_provenance(run_dir / METRICS_FILE).get("protocols", {})
        run.provenance["protocols"] = {**earlier, **run.provenance.get("protocols", {})}
    log.info("Run directory: %s", run_dir)
    try:
        body(run)
    except BaseException as error:
        run.close(_exit_code(error))
        raise
    run.close(0)
    if run.is_global_zero:
        (run_dir / RUN_COMPLETE).write_text("complete\n")
        for key, value in sorted(run.metrics.items()):
            log.info("%s = %s", key, f"{value:.4g}" if isinstance(value, float) else value)
    return run.metrics


def optimized_metric(cfg: DictConfig, metrics: dict[str, Any]) -> float | None:
    """The value a sweeper optimizes: ``metrics[cfg.optimized_metric]`` (None when unset).

    A configured key that the run did not produce (say, ``eval=none``) gives None with a
    warning rather than failing a finished run.
    """
    key = cfg.get("optimized_metric")
    if key is None:
        return None
    if key not in metrics:
        log.warning("optimized_metric=%s is not among this run's metrics; returning None", key)
        return None
    return float(metrics[key])
