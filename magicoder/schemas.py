"""Structured-config schemas: one per config group option, registered in Hydra's ConfigStore.

Each YAML file under ``conf/<group>/`` starts its defaults list with the schema it fills in
(``- /schema/<group>/<name>@_here_``), so a wrong type (``optimizer.lr=abc``) or an unknown
key (``trainer.max_step=5``, or a typo in a YAML file) fails while Hydra composes, naming
the key. Hydra documents the pattern as "extending configs".

Nodes that instantiate one of this package's dataclasses (model specs, data sources, seed
sources, teacher and evaluation settings) get a schema derived from that dataclass's fields
(:func:`derived_schema`), so adding a field to the class is enough. Third-party targets
(Lightning's Trainer and callbacks, torch and transformers optimizers, loggers, strategies)
get explicit dataclasses with the keys the YAML sets. Ranges and consistency that types
cannot express are checked by :func:`magicoder.config.validate_config`.

The derived schemas import the classes they follow (torch and evalplus among their imports),
so they are built on first use: by :func:`store_schemas` or a lookup such as
``magicoder.schemas.TinyLlamaConfig`` (which unpickling a config does).
"""

from __future__ import annotations

import dataclasses
import functools
import operator
import types
import typing
from collections.abc import Callable
from dataclasses import dataclass, field
from enum import Enum
from pathlib import Path
from typing import Any, Union

from omegaconf import MISSING

from magicoder.chat.settings import ChatSettings

_PRIMITIVES = (int, float, bool, str, bytes, Path)


def _is_primitive(hint: Any) -> bool:
    return hint in _PRIMITIVES or (isinstance(hint, type) and issubclass(hint, Enum))


def omegaconf_type(hint: Any) -> Any:
    """The closest type hint OmegaConf 2.3 can enforce for a dataclass field's ``hint``.

    Primitives, their Optionals and unions (``int | str``) stay as they are; containers keep
    primitive element types; what OmegaConf cannot type (a union with a container, a
    dataclass such as a nested :class:`~magicoder.data.sources.Source`) becomes ``Any``.

    Raises:
        TypeError: For a hint that is not configuration at all (a callable, an object).
    """
    if hint is Any or _is_primitive(hint):
        return hint
    origin, args = typing.get_origin(hint), typing.get_args(hint)
    if origin in (Union, types.UnionType):
        rest = [a for a in args if a is not type(None)]
        if len(rest) == 1:
            inner = omegaconf_type(rest[0])
        elif all(_is_primitive(a) for a in rest):
            inner = functools.reduce(operator.or_, rest)
        else:
            inner = Any
        return inner | None if len(rest) < len(args) else inner
    if origin in (list, tuple) or (origin is not None and origin.__name__ == "Sequence"):
        element = args[0] if args else Any
        return types.GenericAlias(list, (element if _is_primitive(element) else Any,))
    if origin is dict:
        value = args[1] if args else Any
        return types.GenericAlias(dict, (str, value if _is_primitive(value) else Any))
    if dataclasses.is_dataclass(hint):
        return Any
    raise TypeError(f"{hint!r} is not a configuration type")


def _is_optional_container(hint: Any) -> bool:
    args = typing.get_args(hint)
    if typing.get_origin(hint) not in (Union, types.UnionType) or type(None) not in args:
        return False
    return any(typing.get_origin(a) in (list, dict) for a in args)


def derived_schema(
    cls: type,
    target: str | None,
    *,
    exclude: tuple[str, ...] = (),
    extra: tuple[tuple[str, Any, Any], ...] = (),
) -> type:
    """A schema for config nodes that instantiate dataclass ``cls``: its init fields, typed.

    Args:
        cls: The dataclass the node builds.
        target: The ``_target_`` the YAML writes (None for nodes read without
            ``instantiate``, such as ``eval``).
        exclude: Fields that are runtime state, not configuration.
        extra: ``(name, type, default)`` of further keys, e.g. ``_convert_``.

    Returns:
        A dataclass named ``<cls>Config``; fields without a default are mandatory (``???``).
    """
    hints = typing.get_type_hints(cls)
    specs: list[tuple[str, Any, Any]] = []
    if target is not None:
        specs.append(("_target_", str, field(default=target)))
    specs += [(name, hint, field(default=default)) for name, hint, default in extra]
    for f in dataclasses.fields(cls):
        if not f.init or f.name in exclude:
            continue
        try:
            hint = omegaconf_type(hints[f.name])
        except TypeError as err:
            raise TypeError(f"{cls.__name__}.{f.name}: {err}; exclude it") from err
        if _is_optional_container(hint):
            # OmegaConf resolves a value merged into a None container, and an interpolation
            # such as `langs: ${data.langs}` cannot resolve inside its own file: keep it Any.
            hint = Any
        if f.default is not dataclasses.MISSING:
            default = field(default=f.default)
        elif f.default_factory is not dataclasses.MISSING:
            default = field(default_factory=f.default_factory)
        else:
            default = field(default=MISSING)
        specs.append((f.name, hint, default))
    schema = _make(f"{cls.__name__}Config", specs)
    schema.__doc__ = f"Schema of a node that instantiates {cls.__module__}.{cls.__qualname__}."
    return schema


def _make(name: str, specs: list[tuple[str, Any, Any]], bases: tuple[type, ...] = ()) -> type:
    # A module-level name, so configs holding the schema pickle (submitit launchers do).
    schema = dataclasses.make_dataclass(name, specs, bases=bases)
    schema.__module__ = __name__
    return schema


# Third-party targets: the keys the YAML sets, typed.


@dataclass
class PathsConfig:
    """``conf/paths/``: where runs, caches and benchmark files live."""

    root_dir: str = MISSING
    log_dir: str = MISSING
    output_dir: str = MISSING
    cache_dir: str = MISSING
    benchmark_dir: str = MISSING


@dataclass
class AdamWConfig:
    """``torch.optim.AdamW``, bound to the parameters later (``_partial_``)."""

    _target_: str = "torch.optim.AdamW"
    _partial_: bool = True
    lr: float = MISSING
    betas: list[float] = field(default_factory=lambda: [0.9, 0.999])
    eps: float = 1e-8
    weight_decay: float = 0.0


@dataclass
class AdafactorConfig:
    """``transformers.optimization.Adafactor`` with a fixed learning rate."""

    _target_: str = "transformers.optimization.Adafactor"
    _partial_: bool = True
    lr: float = MISSING
    scale_parameter: bool = False
    relative_step: bool = False
    warmup_init: bool = False
    weight_decay: float = 0.0


@dataclass
class LinearWarmupConfig:
    """``magicoder.training.schedules.linear_warmup``, bound to the optimizer later."""

    _target_: str = "magicoder.training.schedules.linear_warmup"
    _partial_: bool = True
    num_warmup_steps: int = 0
    warmup_ratio: float = 0.0


@dataclass
class CosineConfig(LinearWarmupConfig):
    """``magicoder.training.schedules.cosine``."""

    _target_: str = "magicoder.training.schedules.cosine"
    num_cycles: float = 0.5


@dataclass
class AutoStrategyConfig:
    """Lightning's own strategy choice."""

    _target_: str = "magicoder.training.strategies.auto"


@dataclass
class DDPStrategyConfig:
    """``lightning.pytorch.strategies.DDPStrategy``."""

    _target_: str = "lightning.pytorch.strategies.DDPStrategy"
    process_group_backend: str | None = None
    find_unused_parameters: bool = False


@dataclass
class DeepSpeedStrategyConfig:
    """``lightning.pytorch.strategies.DeepSpeedStrategy``."""

    _target_: str = "lightning.pytorch.strategies.DeepSpeedStrategy"
    stage: int = 2
    offload_optimizer: bool = False
    offload_parameters: bool = False


@dataclass
class FSDPStrategyConfig:
    """``magicoder.training.strategies.fsdp``: one FSDP unit per decoder layer."""

    _target_: str = "magicoder.training.strategies.fsdp"
    layer_classes: list[str] = MISSING
    sharding_strategy: str = "FULL_SHARD"
    activation_checkpointing: bool = False
    state_dict_type: str = "full"


@dataclass
class TrainerConfig:
    """``lightning.pytorch.Trainer``; the runner adds strategy, logger, callbacks, run dir."""

    _target_: str = "lightning.pytorch.Trainer"
    accelerator: str = "auto"
    devices: Any = "auto"  # int, "auto" or a list of device indices
    num_nodes: int = 1
    precision: int | str = "32-true"
    max_epochs: int = 1
    max_steps: int = -1
    accumulate_grad_batches: int = 1
    gradient_clip_val: float | None = None
    log_every_n_steps: int = 50
    val_check_interval: int | float | None = None
    check_val_every_n_epoch: int | None = 1
    num_sanity_val_steps: int = 0
    limit_val_batches: int | float | None = None
    deterministic: bool | str = False  # Lightning also takes "warn"
    benchmark: bool | None = None
    enable_progress_bar: bool = True
    use_distributed_sampler: bool = False


@dataclass
class WandbLoggerConfig:
    """``lightning.pytorch.loggers.WandbLogger``; the run dir, id and sweep tags come from code."""

    _target_: str = "lightning.pytorch.loggers.WandbLogger"
    project: str = "magicoder"
    entity: str | None = None
    name: str | None = None
    group: str | None = None
    tags: list[str] = field(default_factory=list)
    mode: str = "offline"
    log_model: bool | str = False  # W&B also takes "all"


@dataclass
class CSVLoggerConfig:
    """``lightning.pytorch.loggers.CSVLogger``; the run dir comes from code."""

    _target_: str = "lightning.pytorch.loggers.CSVLogger"
    name: str = "csv"


@dataclass
class ModelCheckpointConfig:
    """``lightning.pytorch.callbacks.ModelCheckpoint``; the runner sets ``dirpath`` per stage."""

    _target_: str = "lightning.pytorch.callbacks.ModelCheckpoint"
    dirpath: str | None = None
    filename: str | None = None
    auto_insert_metric_name: bool = True
    every_n_train_steps: int | None = None
    save_last: bool | str | None = None  # "link" too
    save_top_k: int = 1


@dataclass
class EarlyStoppingConfig:
    """``lightning.pytorch.callbacks.EarlyStopping``."""

    _target_: str = "lightning.pytorch.callbacks.EarlyStopping"
    monitor: str = MISSING
    mode: str = "min"
    patience: int = 3
    min_delta: float = 0.0
    strict: bool = True


@dataclass
class TrainMetricsConfig:
    """``magicoder.training.callbacks.TrainMetrics`` (no arguments)."""

    _target_: str = "magicoder.training.callbacks.TrainMetrics"


@dataclass
class LogProgressConfig:
    """``magicoder.training.callbacks.LogProgress``: plain progress lines off a terminal."""

    _target_: str = "magicoder.training.callbacks.LogProgress"
    every_n_steps: int | None = None
    every_n_seconds: float | None = None


# Data: the ``data`` group is read by the runner, not instantiated; its sources are.


@dataclass
class StageConfig:
    """One training stage: ``data.stages.<name>``."""

    max_seq_len: int = MISSING
    max_epochs: int | None = None
    val_fraction: float = 0.0
    datasets: dict[str, Any] = MISSING  # name → a source node (checked by validate_config)


@dataclass
class DataConfig:
    """``conf/data/``: batching and the stages, trained in order."""

    name: str = MISSING
    batch_size: int = MISSING
    global_batch_size: int | None = None
    num_workers: int = 0
    seed: int = 0
    packing: bool = False
    group_by_length: bool = False
    langs: list[str] | None = None
    max_seq_len_cap: int | None = None
    val_fraction: float | None = None
    stages: dict[str, StageConfig] = MISSING


@dataclass
class JsonlDataConfig(DataConfig):
    """``data=jsonl``: one local file, its format and column names on the command line."""

    path: str = MISSING
    format: str = "instruction"
    columns: dict[str, str] = field(default_factory=dict)


@dataclass
class CommentPairsDataConfig(DataConfig):
    """``data=comment-function-75k``: the seed-document file on the command line."""

    path: str = MISSING


@dataclass
class CurateExactDedupConfig:
    fields: list[str] | None = None


@dataclass
class CurateNearDedupConfig:
    threshold: float = 0.7
    num_perm: int = 128
    shingle: int = 5
    seed: int = 1


@dataclass
class DecontaminationBenchmarksConfig:
    """Benchmark → local file (None skips it); the names of ``curation.benchmarks.LOADERS``."""

    humaneval: str | None = None
    humaneval_plus: str | None = None
    mbpp: str | None = None
    mbpp_plus: str | None = None
    gsm8k: str | None = None
    ds1000: str | None = None
    apps: str | None = None


@dataclass
class NgramConfig:
    n: int | None = None
    threshold: float = 0.5


@dataclass
class CurateDecontaminateConfig:
    columns: list[str] | None = None
    normalize: str = "whitespace"
    mbpp_split: str = "test"
    benchmarks: DecontaminationBenchmarksConfig = field(
        default_factory=DecontaminationBenchmarksConfig
    )
    ngram: NgramConfig = field(default_factory=NgramConfig)


@dataclass
class CurateExecuteConfig:
    """The ``execute`` step (``magicoder.curation.execute``)."""

    sandbox: str = "auto"
    timeout: float = 10.0
    n_workers: int = 1
    shard: str | None = None
    cache_path: str | None = None
    merge_from: list[str] = field(default_factory=list)
    toolchains: dict[str, str | None] = field(default_factory=dict)
    compile_timeout: float = 30.0


@dataclass
class CurateReportConfig:
    enabled: bool = True
    humaneval_path: str | None = None
    bins: int = 50


# Primary configs: their own keys typed; each group node carries its group's schema.


@dataclass
class AppConfig:
    """Keys every app has."""

    task_name: str = MISSING
    run_name: str = MISSING
    optimized_metric: str | None = None
    paths: Any = MISSING
    logger: Any = None


@dataclass
class TrainAppConfig(AppConfig):
    """``conf/train.yaml``."""

    model: Any = MISSING
    data: Any = MISSING
    sources: Any = MISSING
    optimizer: Any = MISSING
    scheduler: Any = MISSING
    strategy: Any = MISSING
    trainer: Any = MISSING
    finetune: Any = MISSING
    eval: Any = MISSING
    callbacks: dict[str, Any] = field(default_factory=dict)
    recipe_name: str = MISSING
    seed: int = 0
    ckpt_path: str | None = None
    skip_if_complete: bool = True


@dataclass
class EvaluateAppConfig(AppConfig):
    """``conf/evaluate.yaml``."""

    model: Any = MISSING
    eval: Any = MISSING
    stage: str = MISSING
    samples: dict[str, str] = field(default_factory=dict)
    seed: int = 0


@dataclass
class GenerateAppConfig(AppConfig):
    """``conf/generate.yaml``."""

    seeds: Any = MISSING
    teacher: Any = MISSING
    prompt: str = MISSING
    start_index: int = 0
    num_rows: int | None = None
    output_dir: str = MISSING
    resume: bool = False
    cache: bool = True
    cache_path: str = MISSING
    fsync: bool = False
    progress_bar: bool = True
    log_every_n_rows: int = 50


@dataclass
class CurateAppConfig(AppConfig):
    """``conf/curate.yaml``."""

    model: Any = MISSING
    inputs: list[str] = MISSING
    input_format: str = "oss_instruct"
    output_dir: str = MISSING
    shuffle_seed: int | None = None
    steps: list[str] = MISSING
    format: str = "instruction"
    exact_dedup: CurateExactDedupConfig = field(default_factory=CurateExactDedupConfig)
    near_dedup: CurateNearDedupConfig = field(default_factory=CurateNearDedupConfig)
    decontaminate: CurateDecontaminateConfig = field(default_factory=CurateDecontaminateConfig)
    execute: CurateExecuteConfig = field(default_factory=CurateExecuteConfig)
    report: CurateReportConfig = field(default_factory=CurateReportConfig)


@dataclass
class DataReportAppConfig(AppConfig):
    """``conf/data-report.yaml``."""

    model: Any = MISSING
    inputs: list[str] = MISSING
    output_dir: str = MISSING
    humaneval_path: str | None = None
    max_rows: int | None = None
    seed: int = 0
    bins: int = 50


# ``generation`` of ``conf/chat.yaml`` and ``conf/demo.yaml``: ChatSettings' own fields (its
# module imports no torch, so the schema is derived here, not on first use).
ChatSettingsConfig = derived_schema(ChatSettings, None)


@dataclass
class ChatAppConfig(AppConfig):
    """``conf/chat.yaml``."""

    model: Any = MISSING
    run: str | None = None
    stage: str | None = None
    instruction: str | None = None
    seed: int = 0
    generation: Any = field(default_factory=ChatSettingsConfig)  # typed by its default


@dataclass
class DemoAppConfig(AppConfig):
    """``conf/demo.yaml``; ``server_name``, ``server_port`` and ``share`` are Gradio's."""

    model: Any = MISSING
    run: str | None = None
    stage: str | None = None
    compare: str | None = None
    compare_stage: str | None = None
    seed: int = 0
    server_name: str = "127.0.0.1"
    server_port: int = 7860
    share: bool = False
    benchmark_dir: str | None = None
    examples_per_benchmark: int = 5
    generation: Any = field(default_factory=ChatSettingsConfig)  # typed by its default


# Derived schemas: built on first use (they import the classes, some of which import torch).


@functools.cache
def source_schemas() -> dict[str, type]:
    """``_target_`` → schema, for every instruction-data source class of this package."""
    from magicoder.data.mixture import Mixture
    from magicoder.data.sources import CommentFunctionPairs, HubDataset, JsonlFile, StdlibPairs

    return {
        "magicoder.data.sources.StdlibPairs": derived_schema(
            StdlibPairs, "magicoder.data.sources.StdlibPairs"
        ),
        "magicoder.data.sources.JsonlFile": derived_schema(
            JsonlFile, "magicoder.data.sources.JsonlFile"
        ),
        "magicoder.data.sources.HubDataset": derived_schema(
            HubDataset, "magicoder.data.sources.HubDataset"
        ),
        "magicoder.data.sources.CommentFunctionPairs": derived_schema(
            CommentFunctionPairs, "magicoder.data.sources.CommentFunctionPairs"
        ),
        "magicoder.data.mixture.Mixture": derived_schema(
            Mixture,
            "magicoder.data.mixture.Mixture",
            exclude=("count_tokens", "stats"),
            extra=(("_convert_", str, "object"),),
        ),
    }


@functools.cache
def group_schemas() -> dict[str, dict[str, type]]:
    """Group → option name → schema, as stored under ``schema/<group>/<name>``."""
    from magicoder.evaluation.harness import EvalSettings
    from magicoder.generation.seeds import HubSeeds, LocalSeeds, StdlibSeeds
    from magicoder.generation.teacher import TeacherSettings
    from magicoder.models import HubModel, TinyLlama
    from magicoder.training.finetune import Finetune

    sources = source_schemas()
    hub, stdlib = (
        sources["magicoder.data.sources.HubDataset"],
        sources["magicoder.data.sources.StdlibPairs"],
    )
    mixture = sources["magicoder.data.mixture.Mixture"]

    def pair(name: str, schema: type) -> type:
        """A ``sources`` option: the ``oss`` and ``evol`` nodes the data configs refer to."""
        fields = [(key, schema, field(default_factory=schema)) for key in ("oss", "evol")]
        return _make(name, fields)

    return {
        "paths": {"default": PathsConfig},
        "model": {
            "tiny_llama": derived_schema(
                TinyLlama, "magicoder.models.TinyLlama", extra=(("_convert_", str, "all"),)
            ),
            "hub_model": derived_schema(HubModel, "magicoder.models.HubModel"),
        },
        "data": {
            "base": DataConfig,
            "jsonl": JsonlDataConfig,
            "comment_pairs": CommentPairsDataConfig,
            "mixture": _make(
                "MixtureDataConfig",
                [("mixture", mixture, field(default_factory=mixture))],
                bases=(DataConfig,),
            ),
        },
        "sources": {
            "hub": pair("HubSourcesConfig", hub),
            "embedded": pair("EmbeddedSourcesConfig", stdlib),
        },
        "optimizer": {"adamw": AdamWConfig, "adafactor": AdafactorConfig},
        "scheduler": {"linear_warmup": LinearWarmupConfig, "cosine": CosineConfig},
        "strategy": {
            "auto": AutoStrategyConfig,
            "ddp": DDPStrategyConfig,
            "deepspeed": DeepSpeedStrategyConfig,
            "fsdp": FSDPStrategyConfig,
        },
        "trainer": {"lightning": TrainerConfig},
        "finetune": {"finetune": derived_schema(Finetune, "magicoder.training.finetune.Finetune")},
        "eval": {"evalplus": derived_schema(EvalSettings, None)},
        "logger": {"wandb": WandbLoggerConfig, "csv": CSVLoggerConfig},
        "callbacks": {
            "model_checkpoint": ModelCheckpointConfig,
            "early_stopping": EarlyStoppingConfig,
            "train_metrics": TrainMetricsConfig,
            "log_progress": LogProgressConfig,
        },
        "teacher": {
            "openai_compatible": derived_schema(
                TeacherSettings, "magicoder.generation.teacher.TeacherSettings"
            )
        },
        "seeds": {
            "stdlib": derived_schema(StdlibSeeds, "magicoder.generation.seeds.StdlibSeeds"),
            "local": derived_schema(LocalSeeds, "magicoder.generation.seeds.LocalSeeds"),
            "hub": derived_schema(HubSeeds, "magicoder.generation.seeds.HubSeeds"),
        },
    }


PRIMARY_SCHEMAS: dict[str, type] = {
    "train": TrainAppConfig,
    "evaluate": EvaluateAppConfig,
    "generate": GenerateAppConfig,
    "curate": CurateAppConfig,
    "data_report": DataReportAppConfig,
    "chat": ChatAppConfig,
    "demo": DemoAppConfig,
}
"""Primary config → schema, stored as ``schema/<name>``."""


def store_schemas(store: Callable[..., None]) -> None:
    """Hand every schema to ``store`` (``ConfigStore.instance().store``)."""
    for name, schema in PRIMARY_SCHEMAS.items():
        store(group="schema", name=name, node=schema)
    for group, options in group_schemas().items():
        for name, schema in options.items():
            store(group=f"schema/{group}", name=name, node=schema)


def __getattr__(name: str) -> type:
    """The derived schemas by name (``magicoder.schemas.TinyLlamaConfig``), built on first use."""
    if not name.endswith("Config"):
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    derived = [*source_schemas().values()]
    derived += [schema for options in group_schemas().values() for schema in options.values()]
    for schema in derived:
        if schema.__name__ == name:
            return schema
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
