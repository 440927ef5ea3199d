"""``run_evaluate``: load a model from config and score it, logging like a training run."""

from __future__ import annotations

import logging
from typing import Any

import torch
from hydra.utils import instantiate
from omegaconf import DictConfig

from magicoder.config import to_dict
from magicoder.evaluation.harness import EvalSettings, evaluate_model, load_benchmarks
from magicoder.lifecycle import Run, run_app
from magicoder.models import ModelSpec
from magicoder.tracking.loggers import log_eval_tables

log = logging.getLogger(__name__)


def resolve_device(name: str) -> torch.device:
    """``auto`` → the first CUDA device when there is one, else the CPU."""
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    return torch.device(name)


def _evaluate(run: Run) -> None:
    cfg = run.cfg
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
    results = evaluate_model(model, tokenizer, settings, run.dir / "eval" / cfg.stage, benchmarks)
    for result in results:
        run.log_metrics(result.metrics(cfg.stage), summary=True)
    log_eval_tables(run.logger, results, cfg.stage)


def run_evaluate(cfg: DictConfig) -> dict[str, Any]:
    """Score ``cfg.model`` on ``cfg.eval.benchmarks``.

    Args:
        cfg: The composed ``conf/evaluate.yaml``.

    Returns:
        ``eval/<stage>/<benchmark>/pass@1`` and ``..._plus/pass@1`` (percent), also written to
        ``<run dir>/metrics.json``.
    """
    return run_app(cfg, _evaluate)
