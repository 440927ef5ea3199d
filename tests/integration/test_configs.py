"""Every config composes and resolves; schemas and validation refuse bad values at compose
time, naming the key; cheap nodes instantiate; sweep presets expand into jobs that compose."""

from __future__ import annotations

import dataclasses
import functools
import re
import shlex
from pathlib import Path
from typing import Any

import pytest
import torch
import yaml
from hydra import compose as hydra_compose
from hydra import initialize_config_dir
from hydra._internal.core_plugins.basic_sweeper import BasicSweeper
from hydra.core.global_hydra import GlobalHydra
from hydra.core.hydra_config import HydraConfig
from hydra.core.override_parser.overrides_parser import OverridesParser
from hydra.errors import ConfigCompositionException
from hydra.types import RunMode
from hydra.utils import instantiate
from lightning.pytorch.callbacks import EarlyStopping, ModelCheckpoint
from omegaconf import DictConfig, OmegaConf

from magicoder import schemas
from magicoder.config import config_dir, validate_config
from magicoder.data.sources import CommentFunctionPairs, HubDataset, JsonlFile, StdlibPairs
from magicoder.evaluation.harness import EvalSettings
from magicoder.models import HubModel, ModelSpec, TinyLlama
from magicoder.training.app import stage_val_fraction

CONF = config_dir()
ASSETS = Path(__file__).resolve().parents[1] / "assets"

PRIMARY_GROUPS = {  # the cheapest to compose first: a group is tested in the first that has it
    "evaluate": ["paths", "model", "eval", "logger"],
    "generate": ["paths", "seeds", "teacher", "logger"],
    "curate": ["paths", "model", "logger"],
    "data-report": ["paths", "model", "logger"],
    "chat": ["paths", "model"],
    "demo": ["paths", "model"],
    "train": [
        "paths",
        "model",
        "data",
        "sources",
        "optimizer",
        "scheduler",
        "strategy",
        "trainer",
        "finetune",
        "eval",
        "logger",
        "callbacks",
    ],
}
"""Each primary config → the groups of its defaults list."""

FILLS = {
    "curate": ["inputs=[rows.jsonl]"],
    "data-report": ["inputs=[rows.jsonl]"],
    "data=jsonl": ["data.path=/tmp/rows.jsonl"],
    "data=comment-function-75k": ["data.path=/tmp/seed-documents.jsonl"],
    "model=local": ["model.name_or_path=/nonexistent/model"],
    "seeds=local": ["seeds.root=/tmp"],
    "teacher": ["teacher.model=served-model"],
}
"""Values a config leaves mandatory (``???``), filled so that everything resolves."""


def options(group: str) -> list[str]:
    return sorted(p.stem for p in (CONF / group).glob("*.yaml"))


def fills(primary: str, overrides: list[str]) -> list[str]:
    extra = list(FILLS.get(primary, []))
    for override in overrides:
        extra += FILLS.get(override, [])
        if override.startswith("teacher=") and override != "teacher=openai":
            extra += FILLS["teacher"]
    return extra


def resolve_all(cfg: DictConfig) -> dict[str, Any]:
    """Resolve every interpolation; a value left ``???`` fails too."""
    out = OmegaConf.to_container(cfg, resolve=True, throw_on_missing=True)
    assert isinstance(out, dict)
    return out


def compose_hydra(name: str, overrides: list[str]) -> DictConfig:
    """Compose with Hydra's own node, and make ``${hydra:...}`` resolvable as in a job."""
    GlobalHydra.instance().clear()
    with initialize_config_dir(str(CONF), version_base="1.3"):
        cfg = hydra_compose(name, overrides=overrides, return_hydra_config=True)
    HydraConfig.instance().set_config(cfg)
    return cfg


def error_text(err: BaseException) -> str:
    """An exception's message and its causes', as Hydra prints them."""
    parts = []
    while err is not None:
        parts.append(str(err))
        err = err.__cause__
    return "\n".join(parts)


# Every config file composes, resolves and is typed.


@pytest.mark.parametrize("primary", sorted(PRIMARY_GROUPS))
def test_every_primary_config_composes_and_resolves(primary: str, tmp_path: Path, compose):
    cfg = compose(primary, fills(primary, []), tmp_path)
    resolved = resolve_all(cfg)
    assert resolved["paths"]["output_dir"] == str(tmp_path)
    assert dataclasses.is_dataclass(OmegaConf.get_type(cfg))


def _group_cases() -> list[tuple[str, str, str]]:
    cases, seen = [], set()
    for primary, groups in PRIMARY_GROUPS.items():
        for group in groups:
            for option in options(group):
                if (group, option) not in seen:
                    seen.add((group, option))
                    cases.append((primary, group, option))
    return cases


@pytest.mark.slow  # a sweep over every group option: about 15 s in all
@pytest.mark.parametrize("primary,group,option", _group_cases())
def test_every_group_option_composes_resolves_and_is_typed(
    primary: str, group: str, option: str, tmp_path: Path, compose
):
    overrides = [f"{group}={option}"]
    cfg = compose(primary, overrides + fills(primary, overrides), tmp_path)
    resolve_all(cfg)
    node = cfg[group]
    if (group, option) == ("logger", "none"):
        assert node is None
    elif group == "callbacks":
        assert len(node) >= 1
        for name in node:
            assert dataclasses.is_dataclass(OmegaConf.get_type(node[name])), name
    else:  # the file extends its schema, so wrong types and unknown keys fail
        assert dataclasses.is_dataclass(OmegaConf.get_type(node)), f"{group}/{option}.yaml"


def _header_commands(path: Path) -> list[str]:
    """The ``magicoder-train ...`` commands in a file's header comment, arguments only."""
    commands = []
    for line in path.read_text().splitlines():
        if not line.startswith("#"):
            break
        match = re.search(r"magicoder-train\b(.*)", line)
        if match:
            commands.append(match.group(1).split("#")[0].strip())
    return commands


def _documented_commands() -> list[str]:
    commands: list[str] = []
    for group in ("experiment", "hparams_search"):
        for path in sorted((CONF / group).glob("*.yaml")):
            commands += [c for c in _header_commands(path) if c not in commands]
    return commands


def sweep_jobs(cfg: DictConfig, arguments: list[str]) -> list[list[str]]:
    """The jobs' overrides, expanded as Hydra's basic sweeper does (presets, then arguments)."""
    params = [f"{key}={value}" for key, value in (cfg.hydra.sweeper.params or {}).items()]
    parser = OverridesParser.create()
    (batch,) = BasicSweeper.split_arguments(parser.parse_overrides(params + arguments), None)
    return batch


def documented_jobs(command: str) -> list[list[str]]:
    """The overrides of each job a documented command runs (one job unless it sweeps)."""
    arguments = shlex.split(command)
    cfg = compose_hydra("train", [a for a in arguments if "," not in a])
    return sweep_jobs(cfg, arguments) if cfg.hydra.mode == RunMode.MULTIRUN else [arguments]


@pytest.mark.slow  # a sweep over every documented command: about 15 s in all
@pytest.mark.parametrize("command", _documented_commands())
def test_every_documented_command_composes_its_first_job(command: str, tmp_path: Path, compose):
    jobs = documented_jobs(command)
    assert ("hparams_search=" in command) == (len(jobs) >= 2)
    resolve_all(compose("train", jobs[0], tmp_path))


@pytest.mark.slow
@pytest.mark.parametrize("command", [c for c in _documented_commands() if "hparams_search" in c])
def test_every_job_of_every_documented_sweep_composes(command: str, tmp_path: Path, compose):
    for job in documented_jobs(command):
        resolve_all(compose("train", job, tmp_path))


def test_every_experiment_and_search_file_has_a_command():
    for group in ("experiment", "hparams_search"):
        for path in sorted((CONF / group).glob("*.yaml")):
            text = path.read_text()
            assert text.startswith("# @package _global_\n"), path.name
            assert any(f"{group}={path.stem}" in c for c in _header_commands(path)), path.name


def test_laptop_scale_holds_out_every_stage_and_presets_hold_out_none():
    """The laptop reports' signal is validation loss, in every stage of every schedule."""
    for data in options("data"):
        if data == "jsonl":
            continue  # needs its file on the command line
        paper = compose_hydra("train", ["experiment=ablate-mixture", f"data={data}"])
        laptop = compose_hydra(
            "train", ["experiment=ablate-mixture", "scale=laptop", f"data={data}"]
        )
        for name, stage in laptop.data.stages.items():
            assert stage_val_fraction(laptop, stage) == 0.05, (data, name)
            own = paper.data.stages[name].val_fraction
            assert stage_val_fraction(paper, paper.data.stages[name]) == own, (data, name)
        if data in ("oss-instruct-75k", "evol-instruct-110k", "oss-then-evol", "evol-then-oss"):
            assert all(s.val_fraction == 0.0 for s in paper.data.stages.values())  # the paper's


def test_experiments_say_what_to_run_and_run_once():
    for path in sorted((CONF / "experiment").glob("*.yaml")):
        assert "hydra" not in yaml.safe_load(path.read_text()), path.name
    cfg = compose_hydra("train", ["experiment=ablate-mixture", "scale=laptop"])
    assert cfg.hydra.mode in (None, RunMode.RUN)


@pytest.mark.parametrize("search", options("hparams_search"))
def test_hparams_search_sweeps_in_a_stable_dir_named_by_swept_values(search: str):
    cfg = compose_hydra("train", [f"hparams_search={search}", "paths.log_dir=/runs"])
    assert cfg.hydra.mode == RunMode.MULTIRUN
    assert cfg.hydra.sweep.dir == "/runs/train/sweep"
    assert len(cfg.hydra.sweeper.params) == 1
    resolve_all(cfg.hydra.sweep)
    assert len(sweep_jobs(cfg, [])) >= 2


def test_hparams_search_lr_sweeps_the_default_jobs_learning_rates():
    cfg = compose_hydra("train", ["hparams_search=lr"])
    jobs = sweep_jobs(cfg, [])
    assert jobs == [["optimizer.lr=0.0005"], ["optimizer.lr=0.001"], ["optimizer.lr=0.002"]]
    # A command-line list replaces the preset's, as the file's header says.
    assert sweep_jobs(cfg, ["optimizer.lr=1e-4,3e-4"]) == [
        ["optimizer.lr=0.0001"],
        ["optimizer.lr=0.0003"],
    ]


# The directory of a sweep's job carries only the swept values.


def test_override_dirname_leaves_out_paths_loggers_and_launcher_settings():
    cfg = compose_hydra(
        "train",
        [
            "paths.log_dir=/some/dir",
            "logger.mode=offline",
            "optimizer.lr=1e-3",
            "experiment=smoke",
            "hparams_search=lr",
            "paths.cache_dir=/cache",
            "logger.tags=[a]",
            "ckpt_path=last",
            "skip_if_complete=false",
            "trainer.enable_progress_bar=false",
            "hydra/launcher=local",
            "hydra.launcher.timeout_min=5",
        ],
    )
    assert cfg.hydra.job.override_dirname == "optimizer.lr=1e-3"
    cfg = compose_hydra("train", ["logger=csv", "optimizer.lr=1e-3"])
    assert cfg.hydra.job.override_dirname == "optimizer.lr=1e-3"


def test_override_dirname_keeps_every_value_that_changes_the_run():
    cfg = compose_hydra("train", ["scale=laptop", "data=mixture", "optimizer.lr=1e-3"])
    assert cfg.hydra.job.override_dirname == "data=mixture,optimizer.lr=1e-3,scale=laptop"


def test_submitit_local_launcher_composes_and_instantiates():
    from hydra_plugins.hydra_submitit_launcher.submitit_launcher import LocalLauncher

    cfg = compose_hydra("train", ["hparams_search=lr", "hydra/launcher=local"])
    launcher = cfg.hydra.launcher
    assert launcher._target_.endswith("LocalLauncher")
    assert (launcher.tasks_per_node, launcher.nodes, launcher.gpus_per_node) == (1, 1, 0)
    assert launcher.submitit_folder == f"{cfg.hydra.sweep.dir}/.submitit/%j"
    params = {k: v for k, v in launcher.items() if k != "_target_"}
    assert isinstance(LocalLauncher(**params), LocalLauncher)


# Bad values fail at compose time, naming the key.


def test_a_wrong_type_fails_naming_the_key(tmp_path: Path, compose):
    with pytest.raises(ConfigCompositionException) as err:
        compose("train", ["optimizer.lr=abc"], tmp_path)
    text = error_text(err.value)
    assert "optimizer.lr" in text and "'abc'" in text and "Float" in text


def test_an_unknown_key_fails_naming_the_key(tmp_path: Path, compose):
    with pytest.raises(ConfigCompositionException) as err:
        compose("train", ["trainer.max_step=5"], tmp_path)
    text = error_text(err.value)
    assert "trainer.max_step" in text and "TrainerConfig" in text


def test_an_unknown_key_added_with_plus_fails_naming_the_key(tmp_path: Path, compose):
    with pytest.raises(ValueError, match=r"trainer\.max_step=5 is not allowed.*max_steps"):
        compose("train", ["+trainer.max_step=5"], tmp_path)


def test_an_unknown_key_in_a_yaml_file_fails_naming_the_key(tmp_path: Path, compose):
    (tmp_path / "optimizer").mkdir()
    (tmp_path / "optimizer" / "typo.yaml").write_text(
        "defaults:\n  - /schema/optimizer/adamw@_here_\n  - _self_\n\nlrr: 1e-3  # a typo\n"
    )
    with pytest.raises(ConfigCompositionException) as err:
        compose("train", [f"hydra.searchpath=[file://{tmp_path}]", "optimizer=typo"], tmp_path)
    text = error_text(err.value)
    assert "Key 'lrr' not in 'AdamWConfig'" in text and "optimizer.lrr" in text


def test_an_unknown_key_in_a_data_source_fails_naming_the_key(tmp_path: Path, compose):
    with pytest.raises(ValueError) as err:
        compose("train", ["+data.stages.sft.datasets.stdlib.max_file=3"], tmp_path)
    message = str(err.value)
    assert message.startswith("data.stages.sft.datasets.stdlib.max_file:")
    assert "max_files" in message  # what is allowed


def test_a_negative_max_steps_below_minus_one_fails_at_compose_time(tmp_path: Path, compose):
    with pytest.raises(ValueError) as err:
        compose("train", ["trainer.max_steps=-2"], tmp_path)
    assert str(err.value) == (
        "trainer.max_steps=-2 is not allowed: use an integer >= -1 (-1: no limit)"
    )


@pytest.fixture(scope="module")
def train_cfg(tmp_path_factory: pytest.TempPathFactory) -> DictConfig:
    from conftest import compose_config

    return compose_config("train", [], tmp_path_factory.mktemp("run"))


@pytest.mark.parametrize(
    "key,value,message",
    [
        ("trainer.max_epochs", 0, "trainer.max_epochs=0 is not allowed: use an integer >= 1"),
        ("trainer.accumulate_grad_batches", 0, "trainer.accumulate_grad_batches=0 is not"),
        ("optimizer.lr", 0, "optimizer.lr=0.0 is not allowed: use a number > 0"),
        ("optimizer.lr", -1e-3, "optimizer.lr=-0.001 is not allowed: use a number > 0"),
        ("scheduler.num_warmup_steps", -1, "scheduler.num_warmup_steps=-1 is not allowed"),
        ("data.stages.sft.max_seq_len", 0, "data.stages.sft.max_seq_len=0 is not allowed"),
        ("data.stages.sft.val_fraction", 1.0, "data.stages.sft.val_fraction=1.0 is not"),
        ("data.val_fraction", 1.0, "data.val_fraction=1.0 is not allowed: use a number in [0, 1)"),
        ("data.global_batch_size", 0, "data.global_batch_size=0 is not allowed"),
        ("eval.limit", 0, "eval.limit=0 is not allowed: use an integer >= 1, or null"),
        ("eval.batch_size", "fast", "eval.batch_size='fast' is not allowed"),
        (
            "callbacks.model_checkpoint.every_n_train_steps",
            0,
            "callbacks.model_checkpoint.every_n_train_steps=0 is not allowed",
        ),
    ],
)
def test_out_of_range_values_fail_naming_key_value_and_what_is_allowed(
    key: str, value: Any, message: str, train_cfg: DictConfig
):
    cfg = train_cfg.copy()
    OmegaConf.update(cfg, key, value)
    with pytest.raises(ValueError) as err:
        validate_config(cfg)
    assert str(err.value).startswith(message)


def test_seed_lines_must_be_consistent(tmp_path: Path, compose):
    with pytest.raises(ValueError, match=r"seeds\.max_lines=2 is not allowed.*min_lines \(5\)"):
        compose("generate", ["seeds.min_lines=5", "seeds.max_lines=2"], tmp_path)


def test_edge_values_are_allowed(tmp_path: Path, compose):
    cfg = compose(
        "train",
        [
            "trainer.max_steps=-1",
            "eval.limit=null",
            "eval.batch_size=auto",
            "data.global_batch_size=64",
            "data.stages.sft.val_fraction=0.0",
            "callbacks.model_checkpoint.every_n_train_steps=null",
        ],
        tmp_path,
    )
    assert (cfg.trainer.max_steps, cfg.eval.limit, cfg.eval.batch_size) == (-1, None, "auto")
    assert cfg.data.global_batch_size == 64


# Schemas follow the classes they configure, and the YAML shows every key.


@pytest.mark.parametrize(
    "schema_name,cls,hydra_keys",
    [
        ("TinyLlamaConfig", TinyLlama, {"_target_", "_convert_"}),
        ("HubModelConfig", HubModel, {"_target_"}),
        ("JsonlFileConfig", JsonlFile, {"_target_"}),
        ("HubDatasetConfig", HubDataset, {"_target_"}),
        ("StdlibPairsConfig", StdlibPairs, {"_target_"}),
        ("CommentFunctionPairsConfig", CommentFunctionPairs, {"_target_"}),
    ],
)
def test_derived_schemas_have_exactly_the_dataclass_fields(
    schema_name: str, cls: type, hydra_keys: set[str]
):
    schema = getattr(schemas, schema_name)
    assert schema.__module__ == "magicoder.schemas"  # so configs holding it pickle
    expected = {f.name for f in dataclasses.fields(cls)} | hydra_keys
    assert {f.name for f in dataclasses.fields(schema)} == expected


def _schema_extending_files() -> list[tuple[Path, str, str]]:
    cases = []
    for path in sorted(p for p in CONF.rglob("*.yaml") if p.parent != CONF):
        for default in yaml.safe_load(path.read_text()).get("defaults", []):
            if isinstance(default, str) and default.startswith("/schema/"):
                schema_path, _, package = default.removeprefix("/").partition("@")
                cases.append((path, schema_path, package))
    return cases


@pytest.mark.parametrize(
    "path,schema_path,package",
    _schema_extending_files(),
    ids=lambda v: str(v.relative_to(CONF)) if isinstance(v, Path) else None,
)
def test_every_group_file_shows_every_key_of_its_schema(path: Path, schema_path: str, package: str):
    group, name = schema_path.removeprefix("schema/").rsplit("/", 1)
    schema = schemas.group_schemas()[group][name]
    content = yaml.safe_load(path.read_text())
    node = content if package == "_here_" else content[package]
    assert set(node) - {"defaults"} == {f.name for f in dataclasses.fields(schema)}


@pytest.mark.parametrize("primary", sorted(PRIMARY_GROUPS))
def test_every_primary_file_shows_every_key_of_its_schema(primary: str):
    schema = schemas.PRIMARY_SCHEMAS[primary.replace("-", "_")]
    keys = set(yaml.safe_load((CONF / f"{primary}.yaml").read_text())) - {"defaults"}
    fields = {f.name for f in dataclasses.fields(schema)}
    groups = set(PRIMARY_GROUPS[primary])
    assert fields == groups | (keys - groups)  # groups may also be overridden in the file


def test_every_key_in_a_group_file_has_one_comment():
    key_line = re.compile(r"^\s*([A-Za-z][\w.+-]*):\s*(\S.*)$")
    missing = []
    for path in sorted(CONF.rglob("*.yaml")):
        if path.parent.name in ("experiment", "hparams_search", "scale") or path.parent == CONF:
            continue
        for number, line in enumerate(path.read_text().splitlines(), 1):
            match = key_line.match(line)
            if match and line.count(" # ") != 1:
                missing.append(f"{path.relative_to(CONF)}:{number}: {line.strip()}")
    assert not missing, "\n".join(missing)


def test_primary_defaults_lists_end_with_experiment_then_local():
    for path in sorted(CONF.glob("*.yaml")):
        defaults = yaml.safe_load(path.read_text())["defaults"]
        schema_name = path.stem.replace("-", "_")
        assert defaults[0] == f"/schema/{schema_name}@_here_", path.name
        tail = defaults[defaults.index("_self_") :]
        searches = [{"hparams_search": None}, {"scale": None}] if path.stem == "train" else []
        # Settings that follow the model come right after the file's own keys.
        model_settings = {
            "train": [{"recipe": "tiny-from-scratch"}],
            "evaluate": [{"optional released": "${model}"}],
        }.get(path.stem, [])
        expected = [
            "_self_",
            *model_settings,
            {"experiment": None},
            *searches,
            {"optional local": "default"},
        ]
        assert tail == expected, path.name


# Settings the runner reads.


def test_optimized_metric_names_the_last_stage(tmp_path: Path, compose):
    cases = {
        ("train", "data=stdlib-pairs"): "eval/sft/humaneval_plus/pass@1",
        ("train", "data=oss-then-evol"): "eval/evol-instruct/humaneval_plus/pass@1",
        ("train", "data=evol-then-oss"): "eval/oss-instruct/humaneval_plus/pass@1",
        ("evaluate", "model=tiny-deep"): "eval/tiny-deep/humaneval_plus/pass@1",
    }
    for (primary, override), metric in cases.items():
        assert compose(primary, [override], tmp_path).optimized_metric == metric
    others = {
        "generate": "generate/accepted",
        "curate": "curate/rows_out",
        "data-report": "report/humaneval_similarity_mean",
    }
    for primary, metric in others.items():
        assert compose(primary, fills(primary, []), tmp_path).optimized_metric == metric


def test_paper_presets_carry_the_papers_hyperparameters(tmp_path: Path, compose):
    from magicoder.training.global_batch import gradient_accumulation

    for name, model, stages in [
        ("magicoder-ds", "deepseek-ai/deepseek-coder-6.7b-base", {"oss-instruct": 1216}),
        ("magicoder-cl", "codellama/CodeLlama-7b-Python-hf", {"oss-instruct": 1216}),
        (
            "magicoder-s-ds",
            "deepseek-ai/deepseek-coder-6.7b-base",
            {"oss-instruct": 1216, "evol-instruct": 1024},
        ),
        (
            "magicoder-s-cl",
            "codellama/CodeLlama-7b-Python-hf",
            {"oss-instruct": 1216, "evol-instruct": 1024},
        ),
    ]:
        cfg = compose("train", [f"experiment={name}"], tmp_path)
        assert cfg.model.name_or_path == model
        assert {k: v.max_seq_len for k, v in cfg.data.stages.items()} == stages
        assert cfg.optimizer._target_.endswith("Adafactor")
        assert cfg.optimizer.lr == 5e-5
        assert cfg.scheduler.num_warmup_steps == 15
        assert cfg.data.global_batch_size == 512
        assert cfg.trainer.accumulate_grad_batches == 1  # derived from the global batch
        accumulation = gradient_accumulation(
            cfg.data.global_batch_size,
            cfg.data.batch_size,
            cfg.trainer.devices,
            cfg.trainer.num_nodes,
        )
        assert (cfg.data.batch_size, cfg.trainer.devices, accumulation) == (2, 2, 128)
        assert cfg.trainer.max_epochs == 2
        assert cfg.trainer.gradient_clip_val is None
        assert cfg.trainer.precision == "bf16-true"
        assert cfg.model.attn_implementation == "flash_attention_2"
        # The HF Trainer's Adafactor flags (optim=adafactor) and its linear schedule.
        flags = (cfg.optimizer.scale_parameter, cfg.optimizer.relative_step)
        assert flags + (cfg.optimizer.warmup_init,) == (False, False, False)
        assert cfg.scheduler._target_.endswith("linear_warmup")
        assert cfg.scheduler.warmup_ratio == 0.0
        assert cfg.recipe_name == "paper"
        settings = EvalSettings(**OmegaConf.to_container(cfg.eval, resolve=True))
        assert settings.protocol == "magicoder-paper" and settings.new_tokens == 512
        assert settings.sanitizers == {"humaneval": "none", "mbpp": "legacy"}


def test_a_pretrained_model_never_inherits_the_tiny_recipe(tmp_path: Path, compose):
    overrides = ["model=deepseek-coder-6.7b-base", "data=oss-instruct-75k"]
    with pytest.raises(ValueError, match="recipe=tiny-from-scratch.*Add recipe=paper"):
        compose("train", overrides, tmp_path)
    cfg = compose("train", [*overrides, "recipe=paper"], tmp_path)
    assert cfg.optimizer._target_.endswith("Adafactor") and cfg.optimizer.lr == 5e-5
    assert cfg.scheduler.num_warmup_steps == 15 and cfg.trainer.max_epochs == 2
    assert (cfg.data.global_batch_size, cfg.trainer.precision) == (512, "bf16-true")
    assert cfg.eval.protocol == "magicoder-paper"
    # The tiny model keeps its from-scratch recipe; the default job is that.
    tiny = compose("train", [], tmp_path)
    assert (tiny.recipe_name, tiny.optimizer.lr, tiny.scheduler.num_warmup_steps) == (
        "tiny-from-scratch",
        2e-3,
        20,
    )
    assert tiny.optimizer._target_ == "torch.optim.AdamW"


def test_released_checkpoints_are_evaluated_under_the_papers_protocol(tmp_path: Path, compose):
    for model in (
        "magicoder-cl-7b",
        "magicoder-s-cl-7b",
        "magicoder-ds-6.7b",
        "magicoder-s-ds-6.7b",
    ):
        assert compose("evaluate", [f"model={model}"], tmp_path).eval.protocol == "magicoder-paper"
    assert compose("evaluate", [], tmp_path).eval.protocol == "evalplus-current"
    overridden = compose(
        "evaluate", ["model=magicoder-ds-6.7b", "eval.protocol=evalplus-current"], tmp_path
    )
    assert overridden.eval.protocol == "evalplus-current"


def test_laptop_scale_states_no_global_batch(tmp_path: Path, compose):
    cfg = compose("train", ["experiment=magicoder-s-ds", "scale=laptop"], tmp_path)
    assert cfg.data.global_batch_size is None
    assert (cfg.trainer.devices, cfg.trainer.accumulate_grad_batches) == (1, 1)
    assert cfg.model.name == "tiny"


def test_every_data_config_documents_global_batch_and_cap():
    for name in options("data"):
        content = yaml.safe_load((CONF / "data" / f"{name}.yaml").read_text())
        inherited = any(not str(d).startswith(("/schema/", "_self_")) for d in content["defaults"])
        if not inherited:
            assert content["global_batch_size"] is None, name
            assert content["max_seq_len_cap"] is None, name


def test_callbacks_default_checkpoints_and_logs_progress(tmp_path: Path, compose):
    cfg = compose("train", [], tmp_path)
    assert list(cfg.callbacks) == ["model_checkpoint", "train_metrics", "log_progress"]
    checkpoint = instantiate(cfg.callbacks.model_checkpoint)
    assert isinstance(checkpoint, ModelCheckpoint)
    assert checkpoint.dirpath is None and checkpoint.save_last is True
    assert checkpoint.format_checkpoint_name({"step": torch.tensor(50)}).endswith("step50.ckpt")
    assert cfg.callbacks.log_progress.every_n_seconds == 30.0
    assert cfg.callbacks.log_progress.every_n_steps is None
    smoke = compose("train", ["experiment=smoke"], tmp_path)
    assert smoke.callbacks.model_checkpoint.every_n_train_steps == 10


def test_callbacks_instantiate_including_early_stopping(tmp_path: Path, compose):
    cfg = compose("train", ["callbacks=[default,early_stopping]"], tmp_path)
    built = {name: instantiate(node) for name, node in cfg.callbacks.items()}
    assert type(built["train_metrics"]).__name__ == "TrainMetrics"
    assert type(built["log_progress"]).__name__ == "LogProgress"
    assert isinstance(built["early_stopping"], EarlyStopping)
    assert built["early_stopping"].monitor == "val/loss"


# Cheap nodes instantiate.


@pytest.mark.parametrize("model", options("model"))
def test_models_instantiate_without_loading(model: str, tmp_path: Path, compose):
    overrides = [f"model={model}"]
    cfg = compose("evaluate", overrides + fills("evaluate", overrides), tmp_path)
    spec = instantiate(cfg.model)
    assert isinstance(spec, ModelSpec)
    assert spec.name == model
    if isinstance(spec, TinyLlama):  # its settings, extra_config included, hash into a cache key
        assert spec.path.name == f"tiny-llama-{spec.fingerprint()}"


def test_optimizers_and_schedulers_bind_parameters_later(tmp_path: Path, compose):
    param = torch.nn.Parameter(torch.zeros(3))
    for optimizer in options("optimizer"):
        for scheduler in options("scheduler"):
            cfg = compose("train", [f"optimizer={optimizer}", f"scheduler={scheduler}"], tmp_path)
            opt_factory = instantiate(cfg.optimizer)
            assert isinstance(opt_factory, functools.partial)
            opt = opt_factory([param])
            assert opt.param_groups[0]["lr"] == cfg.optimizer.lr
            sched = instantiate(cfg.scheduler)(opt, num_training_steps=100)
            assert sched.get_last_lr()[0] == 0.0  # warmup starts from zero


def test_strategies_instantiate_where_installed(tmp_path: Path, compose):
    from lightning.pytorch.strategies import DDPStrategy, FSDPStrategy

    built = {
        strategy: instantiate(compose("train", [f"strategy={strategy}"], tmp_path).strategy)
        for strategy in ("auto", "ddp", "fsdp")
    }
    assert built["auto"] == "auto"
    assert isinstance(built["ddp"], DDPStrategy) and isinstance(built["fsdp"], FSDPStrategy)


def test_teachers_seeds_and_eval_settings_instantiate(tmp_path: Path, compose):
    from magicoder.evaluation.harness import EvalSettings
    from magicoder.generation.seeds import SeedSource
    from magicoder.generation.teacher import TeacherSettings

    for teacher in options("teacher"):
        overrides = [f"teacher={teacher}"]
        cfg = compose("generate", overrides + fills("generate", overrides), tmp_path)
        settings = instantiate(cfg.teacher)
        assert isinstance(settings, TeacherSettings) and settings.name == teacher
    for seeds in options("seeds"):
        overrides = [f"seeds={seeds}"]
        cfg = compose("generate", overrides + fills("generate", overrides), tmp_path)
        assert isinstance(instantiate(cfg.seeds), SeedSource)
    for eval_option in options("eval"):
        cfg = compose("evaluate", [f"eval={eval_option}"], tmp_path)
        settings = EvalSettings(**OmegaConf.to_container(cfg.eval, resolve=True))
        assert settings.benchmarks == list(cfg.eval.benchmarks)


def test_sources_instantiate_with_their_columns(tmp_path: Path, compose):
    cfg = compose("train", ["data=evol-codealpaca-v1"], tmp_path)
    source = instantiate(cfg.data.stages["evol-codealpaca"].datasets.evol)
    assert isinstance(source, HubDataset)
    assert source.path == "theblackcat102/evol-codealpaca-v1"
    assert source.columns == {"response": "output"}
    source.check()
    overrides = ["data=jsonl", "data.path=/tmp/x.jsonl", "+data.columns={response: output}"]
    jsonl = compose("train", overrides, tmp_path)
    assert instantiate(jsonl.data.stages.sft.datasets.file).columns == {"response": "output"}


def test_a_dataset_with_other_field_names_is_a_yaml_file(tmp_path: Path, compose):
    searchpath = f"hydra.searchpath=[file://{ASSETS / 'conf'}]"
    cfg = compose("train", [searchpath, "data=prompt-completion"], tmp_path)
    (source,) = [instantiate(node) for node in cfg.data.stages.sft.datasets.values()]
    rows = source.load()
    assert [(r["instruction"], r["response"], r["lang"]) for r in rows] == [
        ("Write a function that adds two numbers.", "def add(a, b):\n    return a + b\n", "python"),
        (
            "Write a function that reverses a string.",
            "def reverse(s):\n    return s[::-1]\n",
            "python",
        ),
        (
            "Write a function that squares a number.",
            "fn square(x: i64) -> i64 {\n    x * x\n}\n",
            "rust",
        ),
    ]  # the row without a completion is skipped
    assert [r["id"] for r in rows] == [1, 2, 3]  # other fields stay as provenance
    assert not {"prompt", "completion", "language"} & set(rows[0])
    overrides = [searchpath, "data=prompt-completion", "data.langs=[python]"]
    python_only = compose("train", overrides, tmp_path)
    (source,) = [instantiate(node) for node in python_only.data.stages.sft.datasets.values()]
    assert [r["id"] for r in source.load()] == [1, 2]


def test_sources_interpolate_into_data_configs(tmp_path: Path, compose):
    cfg = compose("train", ["data=evol-then-oss", "sources=embedded"], tmp_path)
    assert list(cfg.data.stages) == ["evol-instruct", "oss-instruct"]
    evol = instantiate(cfg.data.stages["evol-instruct"].datasets.evol)
    assert evol.kind == "methods"


def test_common_overrides_apply(tmp_path: Path, compose):
    cfg = compose(
        "train",
        ["optimizer.lr=1e-5", "trainer.max_epochs=3", "data.stages.sft.max_seq_len=256"],
        tmp_path,
    )
    assert cfg.optimizer.lr == 1e-5
    assert cfg.trainer.max_epochs == 3
    assert cfg.data.stages.sft.max_seq_len == 256


def test_unknown_option_lists_the_choices(tmp_path: Path, compose):
    with pytest.raises(ConfigCompositionException) as err:
        compose("train", ["optimizer=sgd"], tmp_path)
    message = str(err.value)
    assert "sgd" in message and "adafactor" in message and "adamw" in message


def test_loggers_instantiate_into_the_run_dir_the_code_gives(tmp_path: Path, compose):
    from lightning.pytorch.loggers import CSVLogger, WandbLogger

    csv = instantiate(compose("train", ["logger=csv"], tmp_path).logger, save_dir=str(tmp_path))
    assert isinstance(csv, CSVLogger) and Path(csv.log_dir).parent == tmp_path / "csv"
    wandb = instantiate(compose("train", [], tmp_path).logger, save_dir=str(tmp_path))
    assert isinstance(wandb, WandbLogger) and wandb.save_dir == str(tmp_path)


def test_composed_configs_pickle_as_submitit_launchers_need(tmp_path: Path, compose):
    import pickle

    cfg = compose("train", ["data=mixture", "sources=embedded"], tmp_path)
    again = pickle.loads(pickle.dumps(cfg))
    assert OmegaConf.get_type(again.data.mixture) is schemas.MixtureConfig
    assert resolve_all(again) == resolve_all(cfg)
