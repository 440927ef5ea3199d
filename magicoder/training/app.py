"""``run_train``: instruction-tune stage after stage, save and evaluate after each stage."""

from __future__ import annotations

import logging
import warnings
from collections.abc import Callable
from pathlib import Path
from typing import Any

import lightning as L
import torch
from hydra.utils import instantiate
from lightning.pytorch.callbacks import ModelCheckpoint
from lightning.pytorch.strategies import DDPStrategy, SingleDeviceStrategy
from omegaconf import DictConfig, OmegaConf
from transformers import AutoModelForCausalLM, PreTrainedModel, PreTrainedTokenizerBase

from magicoder.config import to_dict
from magicoder.data.datamodule import SFTDataModule
from magicoder.data.mixture import Mixture
from magicoder.evaluation.harness import EvalSettings, evaluate_model, load_benchmarks
from magicoder.models import ModelSpec
from magicoder.tracking.loggers import (
    build_logger,
    finish,
    log_eval_results,
    read_metrics,
    write_metrics,
)
from magicoder.training.callbacks import TrainMetrics
from magicoder.training.module import SFTModule

log = logging.getLogger(__name__)

STAGE_DONE = "stage_done"
RUN_COMPLETE = "run_complete"


def find_resume_dir(ckpt_path: str | None, run_dir: Path) -> Path | None:
    """Resolve ``ckpt_path`` to the run directory to continue, or None for a fresh run.

    Args:
        ckpt_path: None; ``"last"`` (the newest earlier run of this task that has
            checkpoints, or this run dir if it has some); a run directory; or a ``.ckpt``
            file inside ``<run dir>/checkpoints/<stage>/``.
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
    if path.is_file() and path.suffix == ".ckpt":
        return path.parents[2]
    if path.is_dir() and ((path / "checkpoints").is_dir() or (path / "model").is_dir()):
        return path
    raise FileNotFoundError(
        f"ckpt_path={ckpt_path!r} is neither a run directory with checkpoints/ nor a .ckpt "
        "file; pass an earlier run's directory, its checkpoints/<stage>/last.ckpt, or 'last'"
    )


def _load_weights(model: PreTrainedModel, hf_dir: Path) -> None:
    saved = AutoModelForCausalLM.from_pretrained(hf_dir, dtype=model.dtype)
    model.load_state_dict(saved.state_dict())


def _is_sharded(trainer: L.Trainer) -> bool:
    """Whether the strategy shards the weights across ranks (FSDP, DeepSpeed)."""
    return not isinstance(trainer.strategy, SingleDeviceStrategy | DDPStrategy)


def _barrier() -> None:
    if torch.distributed.is_available() and torch.distributed.is_initialized():
        torch.distributed.barrier()


def _max_positions(model: PreTrainedModel, spec: ModelSpec) -> int | None:
    return spec.max_position_embeddings or getattr(model.config, "max_position_embeddings", None)


def stage_max_seq_len(cfg: DictConfig, stage: DictConfig) -> int:
    """A stage's ``max_seq_len``, capped by ``data.max_seq_len_cap`` when that is set."""
    cap = cfg.data.get("max_seq_len_cap")
    return int(min(stage.max_seq_len, cap) if cap else stage.max_seq_len)


def _count_tokens(tokenizer: PreTrainedTokenizerBase) -> Callable[[str], int]:
    return lambda text: len(tokenizer(text, add_special_tokens=False)["input_ids"])


def _build_datamodule(
    cfg: DictConfig, stage: DictConfig, tokenizer: PreTrainedTokenizerBase
) -> SFTDataModule:
    sources = [instantiate(d) for d in stage.datasets.values()]
    for source in sources:
        if isinstance(source, Mixture):
            source.count_tokens = _count_tokens(tokenizer)
    return SFTDataModule(
        sources=sources,
        tokenizer=tokenizer,
        max_seq_len=stage_max_seq_len(cfg, stage),
        batch_size=cfg.data.batch_size,
        val_fraction=stage.get("val_fraction", 0.0),
        seed=cfg.data.seed,
        num_workers=cfg.data.num_workers,
        packing=cfg.data.get("packing", False),
        group_by_length=cfg.data.get("group_by_length", False),
    )


def _train_stage(
    cfg: DictConfig,
    name: str,
    stage: DictConfig,
    model: PreTrainedModel,
    datamodule: SFTDataModule,
    logger: Any,
    ckpt_dir: Path,
    resume: bool,
) -> tuple[L.Trainer, dict[str, float]]:
    checkpoint = ModelCheckpoint(
        dirpath=ckpt_dir,
        filename="step{step}",
        auto_insert_metric_name=False,
        every_n_train_steps=cfg.checkpoint_every_n_steps,
        save_last=True,
        save_top_k=1,
    )
    extra_callbacks = [instantiate(c) for c in (cfg.get("callbacks") or {}).values()]
    max_epochs = stage.max_epochs if stage.get("max_epochs") is not None else cfg.trainer.max_epochs
    trainer: L.Trainer = instantiate(
        cfg.trainer,
        max_epochs=max_epochs,
        strategy=instantiate(cfg.strategy),
        logger=logger if logger is not None else False,
        callbacks=[checkpoint, TrainMetrics(), *extra_callbacks],
        default_root_dir=str(ckpt_dir.parent.parent),
    )
    module = SFTModule(model, instantiate(cfg.optimizer), instantiate(cfg.scheduler))
    last = ckpt_dir / "last.ckpt"
    ckpt = str(last) if resume and last.is_file() else None
    if ckpt:
        log.info("Stage %s: resuming from %s", name, ckpt)
    with warnings.catch_warnings():
        # SFTDataModule's sampler restarts at the restored batch position, so Lightning's
        # "dataloader is not resumable" warning does not apply.
        warnings.filterwarnings("ignore", message="You're resuming from a checkpoint that ended")
        trainer.fit(module, datamodule=datamodule, ckpt_path=ckpt)
    # The end-of-stage checkpoint lets a rerun skip straight to saving and evaluation.
    trainer.save_checkpoint(last)
    stats = datamodule.stats["train"]
    metrics: dict[str, float] = {
        f"train/{name}/examples": float(stats.examples),
        f"train/{name}/truncated": float(stats.truncated),
        f"train/{name}/global_step": float(trainer.global_step),
    }
    for key in ("train/loss", "val/loss"):
        if key in trainer.callback_metrics:
            metrics[f"{key.split('/')[0]}/{name}/final_loss"] = float(trainer.callback_metrics[key])
    for source in datamodule.sources:
        if isinstance(source, Mixture):
            for part, counts in source.stats.items():
                for unit, value in counts.items():
                    metrics[f"data/{name}/{part}/{unit}"] = float(value)
    if logger is not None:
        logger.log_metrics(metrics)
    return trainer, metrics


def run_train(cfg: DictConfig) -> dict[str, float]:
    """Train every stage of ``cfg.data.stages`` in order, saving and evaluating after each.

    Args:
        cfg: The composed ``conf/train.yaml``.

    Returns:
        Final metrics (also written to ``<run dir>/metrics.json``): per stage the training
        summary and ``eval/<stage>/<benchmark>/pass@1`` (percent).
    """
    L.seed_everything(cfg.seed, workers=True)
    run_dir = Path(cfg.paths.output_dir)
    resume_dir = find_resume_dir(cfg.get("ckpt_path"), run_dir)
    if resume_dir is not None and resume_dir != run_dir:
        log.info("Continuing run %s (this invocation's logs stay in %s)", resume_dir, run_dir)
        run_dir = resume_dir
    run_dir.mkdir(parents=True, exist_ok=True)
    if cfg.get("skip_if_complete") and (run_dir / RUN_COMPLETE).is_file():
        log.info("%s finished earlier (%s exists); returning its metrics", run_dir, RUN_COMPLETE)
        return read_metrics(run_dir / "metrics.json")

    # Fail on bad paths before any model is loaded or trained.
    log.info("Model: %s", cfg.model._target_)
    spec: ModelSpec = instantiate(cfg.model)
    spec.check()
    eval_settings = EvalSettings(**to_dict(cfg.eval))
    benchmarks = load_benchmarks(eval_settings) if eval_settings.benchmarks else {}
    stages: dict[str, DictConfig] = {str(name): stage for name, stage in cfg.data.stages.items()}
    if not stages:
        raise ValueError("data.stages is empty; a data config needs at least one stage")
    for name, stage in stages.items():
        for key, source in stage.datasets.items():
            if "_target_" not in source:
                raise ValueError(
                    f"data.stages.{name}.datasets.{key} has no _target_ (is an override for "
                    "another data config?); give it a source class such as "
                    "magicoder.data.sources.JsonlFile"
                )
    for stage in stages.values():
        for source in stage.datasets.values():
            instantiate(source).check()

    model, tokenizer = spec.load()
    max_positions = _max_positions(model, spec)
    for name, stage in stages.items():
        if max_positions is not None and stage_max_seq_len(cfg, stage) > max_positions:
            raise ValueError(
                f"data.stages.{name}.max_seq_len={stage.max_seq_len} exceeds the model's "
                f"{max_positions} positions; lower it or pick another model"
            )

    logger = build_logger(cfg.get("logger"), run_dir)
    if logger is not None:
        logger.log_hyperparams(to_dict(cfg))
    log.info("Run directory: %s", run_dir)
    metrics: dict[str, float] = {}
    for name, stage in stages.items():
        hf_dir = run_dir / "model" / name
        trainer = None
        if (hf_dir / STAGE_DONE).is_file():
            log.info("Stage %s finished in an earlier attempt; loading %s", name, hf_dir)
            _load_weights(model, hf_dir)
        else:
            log.info("Stage %s: %s", name, OmegaConf.to_yaml(stage).strip().replace("\n", "; "))
            datamodule = _build_datamodule(cfg, stage, tokenizer)
            trainer, stage_metrics = _train_stage(
                cfg,
                name,
                stage,
                model,
                datamodule,
                logger,
                run_dir / "checkpoints" / name,
                resume=resume_dir is not None,
            )
            metrics.update(stage_metrics)
            # Every rank takes part: sharded strategies (FSDP) gather the full weights here.
            state = trainer.strategy.lightning_module_state_dict()
            if trainer.is_global_zero:
                model.save_pretrained(
                    hf_dir, state_dict={k.removeprefix("model."): v for k, v in state.items()}
                )
                tokenizer.save_pretrained(hf_dir)
                (hf_dir / STAGE_DONE).write_text("trained\n")
            if _is_sharded(trainer):
                # The trained weights live in shards; continue (and evaluate) from the saved
                # full copy on every rank.
                _barrier()
                model, tokenizer = spec.load()
                _load_weights(model, hf_dir)
        if trainer is None or trainer.is_global_zero:
            if eval_settings.benchmarks:
                results = evaluate_model(
                    model,
                    tokenizer,
                    eval_settings,
                    run_dir / "eval" / name,
                    benchmarks,
                    model_path=hf_dir,
                )
                log_eval_results(logger, results, name)
                for result in results:
                    metrics.update(result.metrics(name))
            write_metrics(run_dir / "metrics.json", metrics)
        _barrier()
    if trainer is None or trainer.is_global_zero:
        finish(logger)
        (run_dir / RUN_COMPLETE).write_text("complete\n")
        for key, value in sorted(metrics.items()):
            log.info("%s = %.4g", key, value)
    return metrics
