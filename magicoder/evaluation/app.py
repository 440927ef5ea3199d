"""``run_evaluate``: load a model from config and score it (or score given samples files),
logging like a training run."""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

from hydra.utils import instantiate
from omegaconf import DictConfig

from magicoder.config import to_dict
from magicoder.evaluation.harness import (
    BenchmarkResult,
    EvalSettings,
    evaluate_model,
    evaluate_samples,
    load_benchmarks,
    resolve_device,
)
from magicoder.lifecycle import Run, run_app
from magicoder.models import ModelSpec

log = logging.getLogger(__name__)


def _evaluate(run: Run) -> None:
    cfg = run.cfg
    settings = EvalSettings(**to_dict(cfg.eval))
    if not settings.benchmarks:
        raise ValueError("eval.benchmarks is empty; pick eval=humaneval+mbpp, humaneval or mbpp")
    benchmarks = load_benchmarks(settings)
    out_dir = run.dir / "eval" / cfg.stage
    if cfg.samples:
        results = _score_samples(dict(cfg.samples), settings, benchmarks, out_dir)
        run.record_evaluation(cfg.stage, results)
        return
    spec: ModelSpec = instantiate(cfg.model)
    spec.check()
    model, tokenizer = spec.load()
    if settings.backend == "hf":
        # vLLM loads the weights itself; the copy here only names them, so it stays on the CPU.
        model = model.to(resolve_device(settings.device))  # type: ignore[arg-type]
    results = evaluate_model(model, tokenizer, settings, out_dir, benchmarks)
    run.record_evaluation(cfg.stage, results)


def _score_samples(
    samples: dict[str, str], settings: EvalSettings, benchmarks: dict[str, Any], out_dir: Path
) -> list[BenchmarkResult]:
    """Score given samples files, one per configured benchmark."""
    if set(samples) != set(settings.benchmarks):
        raise ValueError(
            f"samples={samples!r} must name one file for each of eval.benchmarks="
            f"{settings.benchmarks} (pick eval=humaneval or eval=mbpp to score one)."
        )
    return [
        evaluate_samples(benchmarks[name], samples[name], settings, out_dir / name / "results.json")
        for name in settings.benchmarks
    ]


def run_evaluate(cfg: DictConfig) -> dict[str, Any]:
    """Score ``cfg.model`` on ``cfg.eval.benchmarks``.

    Args:
        cfg: The composed ``conf/evaluate.yaml``.

    Returns:
        ``eval/<stage>/<benchmark>/pass@1`` and ``..._plus/pass@1`` (percent), also written to
        ``<run dir>/metrics.json``.
    """
    return run_app(cfg, _evaluate)
