"""Config plumbing shared by the Hydra apps: resolvers, schemas, validation, small helpers."""

from __future__ import annotations

import dataclasses
import os
from collections.abc import Callable
from pathlib import Path
from typing import Any

from omegaconf import DictConfig, OmegaConf
from omegaconf.errors import MissingMandatoryValue, OmegaConfBaseException

from magicoder.evaluation.protocols import PROTOCOLS


def project_root() -> Path:
    """The checkout holding ``conf/`` (override with the MAGICODER_ROOT environment variable)."""
    env = os.environ.get("MAGICODER_ROOT")
    return Path(env).resolve() if env else Path(__file__).resolve().parents[1]


def config_dir() -> Path:
    """Directory of the primary configs."""
    return project_root() / "conf"


def _if_exists(path: str) -> str | None:
    """``${mc.if_exists:PATH}``: PATH when that file exists, else null."""
    return path if Path(path).expanduser().exists() else None


def _last_key(node: DictConfig) -> str:
    """``${mc.last_key:${data.stages}}``: the name of the mapping's last entry."""
    keys = list(node)
    if not keys:
        raise ValueError("mc.last_key got an empty mapping (is data.stages empty?)")
    return str(keys[-1])


_RESOLVERS: dict[str, Callable[..., Any]] = {
    "mc.root": lambda: str(project_root()),
    "mc.if_exists": _if_exists,
    "mc.last_key": _last_key,
}


def register_configs() -> None:
    """Register the ``mc.*`` resolvers and the config schemas in Hydra's ConfigStore.

    Idempotent. Every app calls it before Hydra composes, and so does the test helper;
    the schemas are what make a wrong type or an unknown key fail at compose time
    (see :mod:`magicoder.schemas`).
    """
    for name, resolver in _RESOLVERS.items():
        if not OmegaConf.has_resolver(name):
            OmegaConf.register_new_resolver(name, resolver)
    from hydra.core.config_store import ConfigStore

    from magicoder.schemas import store_schemas

    store_schemas(ConfigStore.instance().store)


def check_device(key: str, device: str) -> None:
    """Refuse a device setting torch cannot parse ("auto" passes), naming the key."""
    if device == "auto":
        return
    import torch  # here: settings are checked without loading torch on import

    try:
        torch.device(device)
    except RuntimeError as err:
        raise ValueError(
            f"{key}={device!r} is not a device; use auto, cpu, cuda or cuda:<index>."
        ) from err


def _is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _is_number(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)


def _int_at_least(low: int) -> Callable[[Any], bool]:
    return lambda v: _is_int(v) and v >= low


def _or_null(check: Callable[[Any], bool]) -> Callable[[Any], bool]:
    return lambda v: v is None or check(v)


def _positive(value: Any) -> bool:
    return _is_number(value) and value > 0


def _fraction(value: Any) -> bool:
    return _is_number(value) and 0 <= value < 1


def _share(value: Any) -> bool:
    return _is_number(value) and 0 < value <= 1


_RULES: tuple[tuple[str, Callable[[Any], bool], str], ...] = (
    ("trainer.max_steps", _int_at_least(-1), "an integer >= -1 (-1: no limit)"),
    ("trainer.max_epochs", _int_at_least(1), "an integer >= 1"),
    ("trainer.accumulate_grad_batches", _int_at_least(1), "an integer >= 1"),
    ("trainer.num_nodes", _int_at_least(1), "an integer >= 1"),
    ("trainer.log_every_n_steps", _int_at_least(1), "an integer >= 1"),
    ("optimizer.lr", _positive, "a number > 0"),
    ("scheduler.num_warmup_steps", _int_at_least(0), "an integer >= 0"),
    ("scheduler.warmup_ratio", _fraction, "a number in [0, 1)"),
    ("data.batch_size", _int_at_least(1), "an integer >= 1"),
    ("data.num_workers", _int_at_least(0), "an integer >= 0"),
    (
        "data.global_batch_size",
        _or_null(_int_at_least(1)),
        "an integer >= 1, or null (batch_size × devices × trainer.accumulate_grad_batches)",
    ),
    ("data.max_seq_len_cap", _or_null(_int_at_least(1)), "an integer >= 1, or null (no cap)"),
    (
        "data.val_fraction",
        _or_null(_fraction),
        "a number in [0, 1), or null (each stage's own val_fraction)",
    ),
    ("eval.limit", _or_null(_int_at_least(1)), "an integer >= 1, or null (every task)"),
    ("eval.max_new_tokens", _or_null(_int_at_least(1)), "an integer >= 1, or null (protocol's)"),
    ("eval.protocol", lambda v: v in PROTOCOLS, f"one of {sorted(PROTOCOLS)}"),
    ("eval.batch_size", lambda v: v == "auto" or _int_at_least(1)(v), 'an integer >= 1 or "auto"'),
    ("eval.n_workers", _or_null(_int_at_least(1)), "an integer >= 1, or null (every core)"),
    ("teacher.concurrency", _int_at_least(1), "an integer >= 1"),
    ("teacher.max_tokens", _int_at_least(1), "an integer >= 1"),
    ("teacher.max_attempts", _int_at_least(1), "an integer >= 1"),
    ("teacher.temperature", lambda v: _is_number(v) and v >= 0, "a number >= 0"),
    ("teacher.timeout", _positive, "a number > 0"),
    ("teacher.requests_per_minute", _or_null(_positive), "a number > 0, or null (no limit)"),
    ("seeds.min_lines", _int_at_least(1), "an integer >= 1"),
    ("seeds.chunk_size", _int_at_least(1), "an integer >= 1"),
    ("seeds.max_considered_docs", _or_null(_int_at_least(1)), "an integer >= 1, or null (all)"),
    ("start_index", _int_at_least(0), "an integer >= 0"),
    ("num_rows", _or_null(_int_at_least(1)), "an integer >= 1, or null (all snippets)"),
    ("log_every_n_rows", _int_at_least(1), "an integer >= 1"),
    ("near_dedup.threshold", _share, "a number in (0, 1]"),
    ("near_dedup.num_perm", _int_at_least(1), "an integer >= 1"),
    ("decontaminate.ngram.n", _or_null(_int_at_least(1)), "an integer >= 1, or null"),
    ("decontaminate.ngram.threshold", _share, "a number in (0, 1]"),
    ("max_rows", _or_null(_int_at_least(1)), "an integer >= 1, or null (all rows)"),
)
"""Key → check → what is allowed. A key the config does not have is not checked."""

_STAGE_RULES: tuple[tuple[str, Callable[[Any], bool], str], ...] = (
    ("max_seq_len", _int_at_least(1), "an integer >= 1"),
    ("max_epochs", _or_null(_int_at_least(1)), "an integer >= 1, or null (trainer.max_epochs)"),
    ("val_fraction", _fraction, "a number in [0, 1)"),
)

_ABSENT = object()


def _select(cfg: DictConfig, key: str) -> Any:
    """The resolved value at ``key``; ``_ABSENT`` when the key is absent or still ``???``."""
    try:
        return OmegaConf.select(cfg, key, default=_ABSENT, throw_on_missing=True)
    except MissingMandatoryValue:
        return _ABSENT


def _check(key: str, value: Any, ok: Callable[[Any], bool], allowed: str) -> None:
    if value is not _ABSENT and not ok(value):
        raise ValueError(f"{key}={value!r} is not allowed: use {allowed}")


def validate_config(cfg: DictConfig) -> None:
    """Check what types cannot: ranges, consistency, and each data source's keys.

    Called first thing by every app (and by the tests' compose helper), before anything
    loads. Keys a config does not have are skipped, so one function serves every app.

    Raises:
        ValueError: Naming the key, its value and what is allowed.
    """
    _check_declared_keys(cfg, "")
    _check_recipe(cfg)
    _check_strategy(cfg)
    _check_finetune(cfg)
    for key, ok, allowed in _RULES:
        _check(key, _select(cfg, key), ok, allowed)
    min_lines, max_lines = _select(cfg, "seeds.min_lines"), _select(cfg, "seeds.max_lines")
    if min_lines is not _ABSENT and max_lines is not _ABSENT and max_lines < min_lines:
        raise ValueError(
            f"seeds.max_lines={max_lines!r} is not allowed: use an integer >= seeds.min_lines "
            f"({min_lines})"
        )
    callbacks = _select(cfg, "callbacks")
    for name in callbacks if isinstance(callbacks, DictConfig) else ():
        key = f"callbacks.{name!s}.every_n_train_steps"
        _check(key, _select(cfg, key), _or_null(_int_at_least(1)), "an integer >= 1, or null")
    stages = _select(cfg, "data.stages")
    for name in stages if isinstance(stages, DictConfig) else ():
        for field, ok, allowed in _STAGE_RULES:
            key = f"data.stages.{name!s}.{field}"
            _check(key, _select(cfg, key), ok, allowed)
        datasets = _select(cfg, f"data.stages.{name!s}.datasets")
        for dataset in datasets if isinstance(datasets, DictConfig) else ():
            _check_source(f"data.stages.{name!s}.datasets.{dataset!s}", datasets[dataset])


FROM_SCRATCH_MODELS = ("magicoder.models.TinyLlama",)
"""Model classes built from config: the only ones the tiny-from-scratch recipe is for."""


def _check_recipe(cfg: DictConfig) -> None:
    """Refuse to fine-tune a pretrained model with the tiny model's from-scratch settings."""
    recipe, target = _select(cfg, "recipe_name"), _select(cfg, "model._target_")
    pretrained = target is not _ABSENT and target not in FROM_SCRATCH_MODELS
    if recipe == "tiny-from-scratch" and pretrained:
        raise ValueError(
            f"model={_select(cfg, 'model.name')} is pretrained, but recipe=tiny-from-scratch "
            "holds the tiny model's from-scratch settings (lr 2e-3, 20 warmup steps, 128 new "
            "tokens). Add recipe=paper for the paper's fine-tuning settings (Adafactor, lr 5e-5, "
            "15 warmup steps, global batch 512, bf16, 2 epochs, eval.protocol=magicoder-paper), "
            "or use a preset that builds on it, e.g. experiment=paper-recipe or "
            "experiment=magicoder-ds."
        )


FSDP_TARGET = "magicoder.training.strategies.fsdp"
DEEPSPEED_TARGET = "lightning.pytorch.strategies.DeepSpeedStrategy"


def _is_adafactor(target: Any) -> bool:
    """Whether an optimizer ``_target_`` names an Adafactor (transformers' or torch's)."""
    return isinstance(target, str) and target.rpartition(".")[2] == "Adafactor"


def _check_strategy(cfg: DictConfig) -> None:
    """Refuse strategy settings under which the run would save a wrong model or train with
    another optimizer than the config names.

    The training app saves the Hugging Face model from
    ``trainer.strategy.lightning_module_state_dict()`` and builds the optimizer from
    ``conf/optimizer`` (a client optimizer, in DeepSpeed's terms); each refusal below is a
    combination where one of the two silently goes wrong on GPUs, found only after training.

    Raises:
        ValueError: Naming the key, its value, why it cannot work, and what to use instead.
    """
    target = _select(cfg, "strategy._target_")
    optimizer = _select(cfg, "optimizer._target_")
    if target == FSDP_TARGET:
        _check_fsdp(cfg, optimizer)
    if target == DEEPSPEED_TARGET:
        _check_deepspeed(cfg, optimizer)


def _check_fsdp(cfg: DictConfig, optimizer: Any) -> None:
    """FSDP: a full state dict, and no Adafactor over sharded (flattened) parameters."""
    state_dict_type = _select(cfg, "strategy.state_dict_type")
    if state_dict_type == "sharded":
        # Under SHARDED_STATE_DICT, FSDP's state_dict() returns each rank's local shards
        # only (ShardedTensor/DTensor values), so rank zero's save_pretrained would write
        # its own shard as if it were the model.
        raise ValueError(
            "strategy.state_dict_type='sharded' is not allowed: the run saves the Hugging "
            "Face model (model/<stage>/) from trainer.strategy.lightning_module_state_dict(), "
            "which under a sharded state dict holds only this rank's shard of each weight, "
            "so the saved model would be rank 0's shard. Use strategy.state_dict_type=full."
        )
    if state_dict_type is not _ABSENT and state_dict_type != "full":
        raise ValueError(f"strategy.state_dict_type={state_dict_type!r} is not allowed: use full")
    sharding = _select(cfg, "strategy.sharding_strategy")
    if _is_adafactor(optimizer) and sharding != "NO_SHARD":
        # torch FSDP (FSDP1, as Lightning's FSDPStrategy wraps it) flattens each unit's
        # parameters into one FlatParameter and, for every sharded strategy, gives each
        # rank a 1-D slice of it; with use_orig_params=True (Lightning's default) the
        # original parameters become 1-D views of that slice
        # (FlatParamHandle._use_sharded_views), empty where the weight lies on another
        # rank. Adafactor factors second moments only for parameters of 2+ dims, so it
        # would keep full, unfactored moments, and clip each update by the RMS of a slice.
        raise ValueError(
            f"strategy.sharding_strategy={sharding!r} with optimizer._target_={optimizer!r} "
            "is not allowed: a sharded FSDP strategy hands the optimizer each weight as a "
            "1-D slice of a flattened parameter, so Adafactor keeps unfactored second "
            "moments and clips updates per slice, which is not the paper's optimizer. Use "
            "strategy=ddp (the paper's), strategy.sharding_strategy=NO_SHARD, or "
            "optimizer=adamw."
        )


def _check_deepspeed(cfg: DictConfig, optimizer: Any) -> None:
    """DeepSpeed: no ZeRO-3, no optimizer offload, and no Adafactor over flat partitions."""
    stage = _select(cfg, "strategy.stage")
    if stage == 3:
        # DeepSpeedStrategy inherits Strategy.lightning_module_state_dict(), a plain
        # module.state_dict(); under ZeRO-3 each parameter's data is an empty placeholder
        # outside a GatheredParameters context.
        raise ValueError(
            "strategy.stage=3 is not allowed: Lightning's DeepSpeedStrategy does not gather "
            "ZeRO-3 partitioned parameters in lightning_module_state_dict(), from which the "
            "run saves the Hugging Face model, so model/<stage>/ would hold empty "
            "placeholders. Use strategy=fsdp (full state dict) or strategy.stage=1 or 2."
        )
    if _select(cfg, "strategy.offload_optimizer") is True:
        # DeepSpeed's zero_force_ds_cpu_optimizer defaults to true and Lightning does not
        # set it: deepspeed.initialize raises on a client optimizer with ZeRO-Offload.
        raise ValueError(
            "strategy.offload_optimizer=True is not allowed: DeepSpeed refuses a client "
            "optimizer (the run's comes from conf/optimizer) with ZeRO-Offload unless "
            "zero_force_ds_cpu_optimizer is false, which this config does not set. Use "
            "strategy.offload_optimizer=false, or strategy=fsdp to shard optimizer state."
        )
    if _is_adafactor(optimizer):
        # ZeRO (every stage) hands the client optimizer flat fp32 partitions, one 1-D
        # tensor per parameter group and rank, instead of the model's weights.
        raise ValueError(
            f"strategy=deepspeed with optimizer._target_={optimizer!r} is not allowed: "
            "ZeRO flattens the parameters into 1-D partitions before the optimizer sees "
            "them, so Adafactor's factored second moments (per row and column of each 2-D "
            "weight) become unfactored ones and updates are clipped per partition, which "
            "is not the paper's optimizer. Use strategy=ddp (the paper's) or optimizer=adamw."
        )


FINETUNE_MODES = ("full", "lora", "qlora")
FINETUNE_STAGE_INITS = ("adapters", "merged")


def _check_finetune(cfg: DictConfig) -> None:
    """Refuse finetune settings that cannot train, before anything loads.

    QLoRA's base weights are bitsandbytes 4-bit tensors: FSDP shards parameters by
    flattening them (which needs ``bnb_4bit_quant_storage`` set to the compute dtype and a
    mixed-precision setup this config does not make), and DeepSpeed ZeRO partitions them
    likewise; a run with either would fail or silently train other weights on GPUs.

    Raises:
        ValueError: Naming the key, its value, and what to use instead.
    """
    mode = _select(cfg, "finetune.mode")
    if mode is _ABSENT:
        return
    _check("finetune.mode", mode, lambda v: v in FINETUNE_MODES, f"one of {FINETUNE_MODES}")
    stage_init = _select(cfg, "finetune.stage_init")
    _check(
        "finetune.stage_init",
        stage_init,
        lambda v: v in FINETUNE_STAGE_INITS,
        f"one of {FINETUNE_STAGE_INITS}",
    )
    if mode == "full":
        return
    for key, ok, allowed in (
        ("finetune.r", _int_at_least(1), "an integer >= 1"),
        ("finetune.alpha", _positive, "a number > 0"),
        ("finetune.dropout", _fraction, "a number in [0, 1)"),
    ):
        _check(key, _select(cfg, key), ok, allowed)
    target = _select(cfg, "strategy._target_")
    if mode == "qlora" and target in (FSDP_TARGET, DEEPSPEED_TARGET):
        name = "fsdp" if target == FSDP_TARGET else "deepspeed"
        raise ValueError(
            f"finetune=qlora with strategy={name} is not allowed: the 4-bit base weights "
            "would be sharded (FSDP needs bnb_4bit_quant_storage in the compute dtype and a "
            "matching mixed-precision policy; ZeRO partitions them the same way), which this "
            "config does not set up. QLoRA is for one GPU: use strategy=auto (one device) or "
            f"strategy=ddp (one full 4-bit copy per GPU), or finetune=lora with strategy={name}."
        )


def _check_declared_keys(node: DictConfig, where: str) -> None:
    """Refuse keys a node's schema does not declare.

    Hydra's ``+key=value`` adds a key even to a structured config; without this check a typo
    such as ``+trainer.max_step=5`` would reach the class it configures.
    """
    schema = OmegaConf.get_type(node)
    if dataclasses.is_dataclass(schema):
        known = {f.name for f in dataclasses.fields(schema)} | ({"hydra"} if not where else set())
        unknown = sorted(str(key) for key in node.keys() if key not in known)
        if unknown:
            raw = OmegaConf.to_container(node, resolve=False)
            assert isinstance(raw, dict)
            first = unknown[0]
            raise ValueError(
                f"{where}{first}={raw[first]!r} is not allowed: {schema.__name__} has no key "
                f"{first!r}; its keys are {', '.join(sorted(known - {'hydra'}))}"
            )
    for key, value in node.items_ex(resolve=False):
        if isinstance(value, DictConfig):
            _check_declared_keys(value, f"{where}{key!s}.")


def _check_source(where: str, node: Any) -> None:
    """Check a data-source node against the schema of its ``_target_`` (a source of ours).

    Data configs hold sources of any class under ``datasets:``, so their keys cannot be
    typed in the data schema; the class named by ``_target_`` decides them here.
    """
    from magicoder.schemas import source_schemas

    if not isinstance(node, DictConfig) or "_target_" not in node:
        return
    schema = source_schemas().get(str(node._target_))
    if schema is None:
        return  # a class from outside this package: instantiate() checks its arguments
    try:
        OmegaConf.merge(OmegaConf.structured(schema), node)
    except OmegaConfBaseException as err:
        allowed = sorted(OmegaConf.structured(schema).keys())
        raise ValueError(
            f"{where}.{err.full_key}: {err.msg} (a {node._target_} takes {', '.join(allowed)})"
        ) from err
    sources = node.get("sources")
    for name in sources if isinstance(sources, DictConfig) else ():
        _check_source(f"{where}.sources.{name!s}", sources[name])


def to_dict(cfg: DictConfig | None) -> dict[str, Any]:
    """Resolve a config node into plain Python containers (``{}`` for None)."""
    if cfg is None:
        return {}
    out = OmegaConf.to_container(cfg, resolve=True)
    assert isinstance(out, dict)
    return {str(key): value for key, value in out.items()}
