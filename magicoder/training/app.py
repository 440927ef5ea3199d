"""``run_train``: instruction-tune stage after stage, save each stage, then evaluate each.

The run goes through :func:`magicoder.lifecycle.run_app` (run dir, resume, logger, metrics).
Every rank trains each stage in turn (a stage an earlier attempt finished is skipped) and
saves ``model/<stage>/``; each stage's trainer is freed before the next. Then the ranks leave
the process group, and rank zero alone evaluates each stage not scored before, on
``eval.device`` (see :func:`~magicoder.evaluation.harness.resolve_device`), with the training
memory released first: no rank waits in a collective while it evaluates, and the GPUs of the
other ranks are free for a vLLM engine.

With adapters (``finetune=lora|qlora``) each stage saves its adapter to
``model/<stage>/adapter/`` and the base with the adapter merged in to ``model/<stage>/``, so
everything that reads a stage directory (evaluation, vLLM, ``magicoder-evaluate model=local``,
``transformers.pipeline``) sees a plain model; the run's own evaluation scores those merged
weights.
"""

from __future__ import annotations

import json
import logging
import warnings
from dataclasses import dataclass
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
from magicoder.evaluation.benchmarks import Benchmark
from magicoder.evaluation.harness import (
    EvalSettings,
    chat_template_of,
    evaluate_model,
    load_benchmarks,
    resolve_device,
)
from magicoder.lifecycle import Run, barrier, leave_process_group, run_app
from magicoder.memory import release_memory
from magicoder.models import ModelSpec
from magicoder.prompts import MAGICODER_PROMPT
from magicoder.training.callbacks import LogProgress
from magicoder.training.finetune import (
    ADAPTER_DIR,
    Finetune,
    load_adapter_weights,
    merge_adapter,
    save_adapter,
)
from magicoder.training.global_batch import gradient_accumulation
from magicoder.training.module import SFTModule

log = logging.getLogger(__name__)

STAGE_DONE = "stage_done"
"""Marker in ``model/<stage>/``: the stage trained and its weights are saved."""
EVAL_DONE = "eval_done"
"""Marker in ``eval/<stage>/``: the stage was scored (a resumed run does not score it again)."""
RUN_CARD = "magicoder_run.json"
"""Beside each saved model: the prompt template and the resolved training config."""


def stage_max_seq_len(cfg: DictConfig, stage: DictConfig) -> int:
    """A stage's ``max_seq_len``, capped by ``data.max_seq_len_cap`` when that is set."""
    cap = cfg.data.get("max_seq_len_cap")
    return int(min(stage.max_seq_len, cap) if cap else stage.max_seq_len)


def stage_val_fraction(cfg: DictConfig, stage: DictConfig) -> float:
    """A stage's held-out fraction: ``data.val_fraction`` when that is set, else its own."""
    every_stage = cfg.data.get("val_fraction")
    return float(stage.get("val_fraction", 0.0) if every_stage is None else every_stage)


@dataclass
class TrainPlan:
    """What a training run needs, checked before any weights are loaded."""

    spec: ModelSpec
    eval_settings: EvalSettings
    benchmarks: dict[str, Benchmark]
    stages: dict[str, DictConfig]
    finetune: Finetune


def plan_run(cfg: DictConfig) -> TrainPlan:
    """Check the model, benchmarks and data of a run, failing on bad paths before training.

    Raises:
        ValueError, FileNotFoundError: Naming the setting to fix.
        RuntimeError, ImportError: ``finetune=qlora`` on a machine that cannot run it.
    """
    finetune: Finetune = instantiate(cfg.finetune) if "finetune" in cfg else Finetune()
    finetune.check()
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
    return TrainPlan(spec, eval_settings, benchmarks, stages, finetune)


def _check_lengths(cfg: DictConfig, plan: TrainPlan, model: PreTrainedModel) -> None:
    limit = plan.spec.max_position_embeddings or getattr(
        model.config, "max_position_embeddings", None
    )
    for name, stage in plan.stages.items():
        if limit is not None and stage_max_seq_len(cfg, stage) > limit:
            raise ValueError(
                f"data.stages.{name}.max_seq_len={stage.max_seq_len} exceeds the model's "
                f"{limit} positions; lower it or pick another model"
            )


def build_datamodule(
    cfg: DictConfig, stage: DictConfig, tokenizer: PreTrainedTokenizerBase
) -> SFTDataModule:
    """The data module of one stage, its sources bound to the tokenizer."""
    sources = [instantiate(d) for d in stage.datasets.values()]
    for source in sources:
        source.connect(tokenizer)
    return SFTDataModule(
        sources=sources,
        tokenizer=tokenizer,
        max_seq_len=stage_max_seq_len(cfg, stage),
        batch_size=cfg.data.batch_size,
        val_fraction=stage_val_fraction(cfg, stage),
        seed=cfg.data.seed,
        num_workers=cfg.data.num_workers,
        packing=cfg.data.get("packing", False),
        group_by_length=cfg.data.get("group_by_length", False),
    )


def build_callbacks(cfg: DictConfig, ckpt_dir: Path) -> list[L.Callback]:
    """Every ``cfg.callbacks`` node; checkpoints go to the stage's ``ckpt_dir``."""
    callbacks = []
    for name, node in (cfg.get("callbacks") or {}).items():
        callback = instantiate(node)
        if isinstance(callback, ModelCheckpoint):
            if not callback.save_last:
                raise ValueError(
                    f"callbacks.{name}.save_last=false: resuming needs last.ckpt; set it to true"
                )
            callback.dirpath = str(ckpt_dir)
        if isinstance(callback, LogProgress):
            callback.desc = f"train {ckpt_dir.name}"
        callbacks.append(callback)
    return callbacks


def build_trainer(cfg: DictConfig, stage: DictConfig, run: Run, ckpt_dir: Path) -> L.Trainer:
    """The stage's ``lightning.Trainer``, its accumulation derived from the global batch."""
    max_epochs = stage.max_epochs if stage.get("max_epochs") is not None else cfg.trainer.max_epochs
    trainer: L.Trainer = instantiate(
        cfg.trainer,
        max_epochs=max_epochs,
        strategy=instantiate(cfg.strategy),
        logger=run.logger if run.logger is not None else False,
        callbacks=build_callbacks(cfg, ckpt_dir),
        default_root_dir=str(run.dir),
    )
    global_batch = cfg.data.get("global_batch_size")
    if global_batch is not None:
        trainer.accumulate_grad_batches = gradient_accumulation(
            global_batch, cfg.data.batch_size, trainer.num_devices, trainer.num_nodes
        )
        log.info(
            "Global batch %d = %d per device × %d devices × %d nodes × %d accumulation",
            global_batch,
            cfg.data.batch_size,
            trainer.num_devices,
            trainer.num_nodes,
            trainer.accumulate_grad_batches,
        )
    return trainer


def _stage_metrics(name: str, trainer: L.Trainer, datamodule: SFTDataModule) -> dict[str, float]:
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
    return metrics


def train_stage(
    run: Run, name: str, stage: DictConfig, model: PreTrainedModel, tokenizer: Any
) -> L.Trainer:
    """Fit one stage (continuing its ``last.ckpt`` when the run resumes) and log its summary."""
    cfg = run.cfg
    log.info("Stage %s: %s", name, OmegaConf.to_yaml(stage).strip().replace("\n", "; "))
    log.info("Stage %s: held out for val/loss: %g", name, stage_val_fraction(cfg, stage))
    datamodule = build_datamodule(cfg, stage, tokenizer)
    ckpt_dir = run.dir / "checkpoints" / name
    trainer = build_trainer(cfg, stage, run, ckpt_dir)
    module = SFTModule(model, instantiate(cfg.optimizer), instantiate(cfg.scheduler))
    last = ckpt_dir / "last.ckpt"
    # DeepSpeed and sharded FSDP save a checkpoint as a directory of that name.
    ckpt = str(last) if run.resumed and last.exists() else None
    if ckpt:
        log.info("Stage %s: resuming from %s", name, ckpt)
    with warnings.catch_warnings():
        # SFTDataModule's sampler restarts at the restored batch position, so Lightning's
        # "dataloader is not resumable" warning does not apply.
        warnings.filterwarnings("ignore", message="You're resuming from a checkpoint that ended")
        trainer.fit(module, datamodule=datamodule, ckpt_path=ckpt)
    # The end-of-stage checkpoint lets a rerun skip straight to saving and evaluation.
    trainer.save_checkpoint(last)
    run.log_metrics(_stage_metrics(name, trainer, datamodule))
    return trainer


def save_stage(
    run: Run,
    trainer: L.Trainer,
    model: torch.nn.Module,
    tokenizer: Any,
    hf_dir: Path,
    plan: TrainPlan | None = None,
    base_dir: Path | None = None,
):
    """Save the stage's weights, tokenizer and run card as a Hugging Face model directory.

    Every rank takes part: sharded strategies (FSDP) gather the full weights here. With
    adapters, ``hf_dir/adapter/`` gets the adapter and ``hf_dir`` the merged model: the
    unquantized base (``base_dir``, or the spec's own) reloaded on the CPU with the adapter
    merged into it, so the training copy keeps its separate adapter for the next stage.
    """
    state = trainer.strategy.lightning_module_state_dict()
    if run.is_global_zero:
        weights = {k.removeprefix("model."): v for k, v in state.items()}
        if plan is not None and plan.finetune.uses_adapters:
            save_adapter(model, hf_dir / ADAPTER_DIR, weights)
            tokenizer.save_pretrained(hf_dir / ADAPTER_DIR)
            base, _ = plan.spec.load(path=base_dir)
            merged = merge_adapter(base, hf_dir / ADAPTER_DIR)
            merged.save_pretrained(hf_dir)
            del base, merged
        else:
            model.save_pretrained(hf_dir, state_dict=weights)  # type: ignore[operator]
        tokenizer.save_pretrained(hf_dir)
        card = {"prompt_template": MAGICODER_PROMPT, "config": to_dict(run.cfg)}
        (hf_dir / RUN_CARD).write_text(json.dumps(card, indent=2) + "\n")
        (hf_dir / STAGE_DONE).write_text("trained\n")


def _load_weights(model: PreTrainedModel, hf_dir: Path) -> None:
    saved = AutoModelForCausalLM.from_pretrained(hf_dir, dtype=model.dtype)
    model.load_state_dict(saved.state_dict())


def _is_sharded(trainer: L.Trainer) -> bool:
    """Whether the strategy shards the weights across ranks (FSDP, DeepSpeed)."""
    return not isinstance(trainer.strategy, SingleDeviceStrategy | DDPStrategy)


def load_model(
    plan: TrainPlan, packed: bool, base_dir: Path | None = None
) -> tuple[torch.nn.Module, PreTrainedTokenizerBase]:
    """The model to train: the spec's weights (or ``base_dir``'s), quantized and wrapped in
    fresh adapters as ``plan.finetune`` says (``full``: as loaded)."""
    quantization = plan.finetune.quantization(getattr(torch, plan.spec.dtype))
    model, tokenizer = plan.spec.load(packed=packed, quantization=quantization, path=base_dir)
    return plan.finetune.wrap(model), tokenizer


def stage_base_dir(run: Run, plan: TrainPlan, index: int) -> Path | None:
    """Where the frozen base of stage ``index`` comes from: the previous stage's merged
    model with ``finetune.stage_init=merged``, else the spec's own weights (None)."""
    names = list(plan.stages)
    ft = plan.finetune
    if index and ft.uses_adapters and ft.stage_init == "merged":
        return run.dir / "model" / names[index - 1]
    return None


def _reload_stage(run: Run, plan: TrainPlan, index: int) -> torch.nn.Module:
    """A fresh model holding the saved weights of stage ``index`` (as it trained them)."""
    name = list(plan.stages)[index]
    packed = bool(run.cfg.data.get("packing", False))
    if not plan.finetune.uses_adapters:
        model, _ = plan.spec.load(packed=packed)
        _load_weights(model, run.dir / "model" / name)
        return model
    wrapped, _ = load_model(plan, packed, stage_base_dir(run, plan, index))
    load_adapter_weights(wrapped, run.dir / "model" / name / ADAPTER_DIR)
    return wrapped


def start_stage(
    run: Run, plan: TrainPlan, index: int, model: torch.nn.Module, held: str | None
) -> torch.nn.Module:
    """The model stage ``index`` trains from, given ``model`` holding stage ``held``.

    The first stage starts from the base; a later one from the previous stage's weights:
    in full (``full``), its adapters on the same base (``stage_init=adapters``), or fresh
    adapters on its merged model (``stage_init=merged``, reloaded from ``model/<stage>/``).
    A resumed run whose model does not hold the previous stage reads it from disk.
    """
    if index == 0:
        return model
    previous = list(plan.stages)[index - 1]
    base_dir = stage_base_dir(run, plan, index)
    if base_dir is not None:
        del model
        release_memory()
        model, _ = load_model(plan, bool(run.cfg.data.get("packing", False)), base_dir)
        return model
    if held != previous:
        if plan.finetune.uses_adapters:
            load_adapter_weights(model, run.dir / "model" / previous / ADAPTER_DIR)
        else:
            _load_weights(model, run.dir / "model" / previous)  # type: ignore[arg-type]
    return model


def fit_and_save(
    run: Run, plan: TrainPlan, index: int, model: torch.nn.Module, tokenizer: Any
) -> torch.nn.Module:
    """Train stage number ``index``, save it to ``model/<name>/`` and free its trainer.

    Returns:
        The model holding the stage's weights: ``model`` itself, or after a sharded strategy
        (whose wrapping changed ``model``) a fresh copy loaded from the saved directory.
    """
    name = list(plan.stages)[index]
    hf_dir = run.dir / "model" / name
    trainer = train_stage(run, name, plan.stages[name], model, tokenizer)  # type: ignore[arg-type]
    save_stage(run, trainer, model, tokenizer, hf_dir, plan, stage_base_dir(run, plan, index))
    run.save_metrics()
    sharded = _is_sharded(trainer)
    # The trainer, its module and optimizer state sit in reference cycles: free them now,
    # not whenever the cyclic collector runs, before the next stage or evaluation.
    del trainer
    release_memory()
    if sharded:
        barrier()  # every rank reads the full copy rank zero wrote
        model = _reload_stage(run, plan, index)
    return model


def evaluate_stage(
    run: Run, plan: TrainPlan, name: str, model: PreTrainedModel, tokenizer: Any
) -> None:
    """Score stage ``name`` with ``model`` (holding that stage's weights) and record it."""
    out_dir = run.dir / "eval" / name
    results = evaluate_model(
        model,
        tokenizer,
        plan.eval_settings,
        out_dir,
        plan.benchmarks,
        model_path=run.dir / "model" / name,
    )
    run.record_evaluation(name, results)
    (out_dir / EVAL_DONE).write_text("scored\n")
    run.save_metrics()


def place_for_generation(
    model: PreTrainedModel, settings: EvalSettings, trainer_cfg: DictConfig
) -> PreTrainedModel:
    """Put the model where evaluation generates.

    ``trainer.fit`` leaves the model on the CPU (Lightning's teardown moves it there). The
    ``hf`` backend generates on ``eval.device``; for ``vllm`` the model stays on the CPU,
    since the engine loads its own copy from the saved stage onto GPUs this process must
    leave free.
    """
    if settings.backend != "hf":
        return model.cpu()
    device = resolve_device(
        settings.device, trainer_cfg.get("accelerator", "auto"), trainer_cfg.get("devices")
    )
    log.info("Evaluating on %s", device)
    return model.to(device)


def _train(run: Run) -> None:
    cfg = run.cfg
    plan = plan_run(cfg)
    model, tokenizer = load_model(plan, bool(cfg.data.get("packing", False)))
    _check_lengths(cfg, plan, model)  # type: ignore[arg-type]
    if plan.eval_settings.benchmarks:  # a prompt the tokenizer cannot render fails before training
        chat_template_of(tokenizer, plan.eval_settings.prompt)
    names = list(plan.stages)
    held: str | None = None  # the stage whose weights `model` holds (None: the base model's)
    for index, name in enumerate(names):
        if (run.dir / "model" / name / STAGE_DONE).is_file():
            log.info("Stage %s finished in an earlier attempt (%s)", name, run.dir / "model" / name)
            continue
        model = start_stage(run, plan, index, model, held)
        model = fit_and_save(run, plan, index, model, tokenizer)
        held = name
    leave_process_group()
    if not run.is_global_zero or not plan.eval_settings.benchmarks:
        return
    if plan.finetune.uses_adapters:
        # Score the merged model/<stage>/ weights, as evaluation anywhere else would load them.
        del model
        release_memory()
        held = None
    for name in names:
        if (run.dir / "eval" / name / EVAL_DONE).is_file():
            log.info("Stage %s was scored in an earlier attempt", name)
            continue
        if held != name:
            if plan.finetune.uses_adapters:
                model, _ = plan.spec.load(path=run.dir / "model" / name)
            else:
                _load_weights(model, run.dir / "model" / name)  # type: ignore[arg-type]
            held = name
        model = place_for_generation(model, plan.eval_settings, cfg.trainer)  # type: ignore[arg-type]
        evaluate_stage(run, plan, name, model, tokenizer)  # type: ignore[arg-type]


def run_train(cfg: DictConfig) -> dict[str, Any]:
    """Train every stage of ``cfg.data.stages`` in order, saving each; then evaluate each.

    Args:
        cfg: The composed ``conf/train.yaml``.

    Returns:
        Final metrics (also written to ``<run dir>/metrics.json``): per stage the training
        summary and ``eval/<stage>/<benchmark>/pass@1`` (percent).
    """
    return run_app(cfg, _train)
