"""``run_evaluate``: load a model from config and score it, logging like a training run."""

from __future__ import annotations

import logging
from pathlib import Path

import lightning as L
import torch
from hydra.utils import instantiate
from omegaconf import DictConfig

from magicoder.config import to_dict
from magicoder.evaluation.harness import EvalSettings, evaluate_model, load_benchmarks
from magicoder.models import ModelSpec
from magicoder.tracking.loggers import build_logger, finish, log_eval_results, write_metrics

log = logging.getLogger(__name__)


def resolve_device(name: str) -> torch.device:
    """``auto`` → the first CUDA device when there is one, else the CPU."""
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    return torch.device(name)


def run_evaluate(cfg: DictConfig) -> dict[str, float]:
    """Score ``cfg.model`` on ``cfg.eval.benchmarks``.

    Args:
        cfg: The composed ``conf/evaluate.yaml``.

    Returns:
        ``eval/<stage>/<benchmark>/pass@1`` and ``..._plus/pass@1`` (percent), also written to
        ``<run dir>/metrics.json``.
    """
    L.seed_everything(cfg.seed)
    run_dir = Path(cfg.paths.output_dir)
    run_dir.mkdir(parents=True, exist_ok=True)
    settings = EvalSettings(**to_dict(cfg.eval))
    if not settings.benchmarks:
        raise ValueError("eval.benchmarks is empty; pick eval=humaneval+mbpp, humaneval or mbpp")
    spec: ModelSpec = instantiate(cfg.model)
    spec.check()
    benchmarks = load_benchmarks(settings)
    model, tokenizer = spec.load()
    if settings.backend == "hf":
        # vLLM loads the weights itself; the copy here only names them, so it stays on the CPU.
        model = model.to(resolve_device(cfg.device))  # type: ignore[arg-type]
    logger = build_logger(cfg.get("logger"), run_dir)
    if logger is not None:
        logger.log_hyperparams(to_dict(cfg))
    results = evaluate_model(model, tokenizer, settings, run_dir / "eval" / cfg.stage, benchmarks)
    log_eval_results(logger, results, cfg.stage)
    metrics: dict[str, float] = {}
    for result in results:
        metrics.update(result.metrics(cfg.stage))
    write_metrics(run_dir / "metrics.json", metrics)
    finish(logger)
    for key, value in sorted(metrics.items()):
        log.info("%s = %.4g", key, value)
    return metrics
