"""Every config composes; cheap nodes instantiate; bad choices fail with Hydra's message."""

from __future__ import annotations

import functools
from pathlib import Path

import pytest
import torch
from hydra.errors import ConfigCompositionException
from hydra.utils import instantiate

from magicoder.config import config_dir
from magicoder.models import ModelSpec

CONF = config_dir()


def options(group: str) -> list[str]:
    return sorted(p.stem for p in (CONF / group).glob("*.yaml"))


@pytest.mark.parametrize("experiment", options("experiment"))
def test_every_experiment_composes(experiment: str, tmp_path: Path, compose):
    cfg = compose("train", [f"experiment={experiment}"], tmp_path)
    assert cfg.data.stages
    assert cfg.task_name


@pytest.mark.parametrize(
    "group,option",
    [
        (g, o)
        for g in (
            "model",
            "data",
            "optimizer",
            "scheduler",
            "strategy",
            "trainer",
            "eval",
            "logger",
        )
        for o in options(g)
    ],
)
def test_every_group_option_composes_in_train(group: str, option: str, tmp_path: Path, compose):
    overrides = [f"{group}={option}"]
    if option == "jsonl":
        overrides.append("data.path=/tmp/rows.jsonl")
    compose("train", overrides, tmp_path)


@pytest.mark.parametrize("model", options("model"))
def test_models_compose_in_evaluate_and_instantiate_without_loading(
    model: str, tmp_path: Path, compose
):
    overrides = [f"model={model}"]
    if model == "local":
        overrides.append("model.name_or_path=/nonexistent/model")
    cfg = compose("evaluate", overrides, tmp_path)
    spec = instantiate(cfg.model)
    assert isinstance(spec, ModelSpec)
    assert spec.name == model


def test_optimizers_and_schedulers_bind_parameters_later(tmp_path: Path, compose):
    param = torch.nn.Parameter(torch.zeros(3))
    for optimizer in options("optimizer"):
        for scheduler in options("scheduler"):
            cfg = compose("train", [f"optimizer={optimizer}", f"scheduler={scheduler}"], tmp_path)
            opt_factory = instantiate(cfg.optimizer)
            assert isinstance(opt_factory, functools.partial)
            opt = opt_factory([param])
            sched = instantiate(cfg.scheduler)(opt, num_training_steps=100)
            assert sched.get_last_lr()[0] >= 0


def test_strategies_instantiate_where_installed(tmp_path: Path, compose):
    for strategy in ("auto", "ddp", "fsdp"):
        cfg = compose("train", [f"strategy={strategy}"], tmp_path)
        assert instantiate(cfg.strategy) is not None


def test_paper_presets_carry_the_papers_hyperparameters(tmp_path: Path, compose):
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
        assert (
            cfg.data.batch_size * cfg.trainer.devices * cfg.trainer.accumulate_grad_batches == 512
        )
        assert cfg.trainer.max_epochs == 2
        assert cfg.trainer.gradient_clip_val is None
        assert cfg.trainer.precision == "bf16-true"
        assert cfg.model.attn_implementation == "flash_attention_2"


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


def test_logger_none_disables_tracking(tmp_path: Path, compose):
    assert compose("train", ["logger=none"], tmp_path).logger is None
