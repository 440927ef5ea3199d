"""Strategies that cannot save the model or keep the paper's optimizer fail at compose time.

Each refusal guards a GPU-only failure that no CPU run reaches: the configs are composed as
the CLI composes them (the helper validates like every app), so the error is what a user
sees before anything loads.
"""

from __future__ import annotations

from pathlib import Path

import pytest
from hydra.utils import instantiate

PAPER = ["experiment=paper-recipe", "model=deepseek-coder-6.7b-base", "data=oss-instruct-75k"]
"""The paper's recipe (Adafactor) on a real base model, as the magicoder-* presets run it."""


@pytest.mark.parametrize(
    "overrides,reason",
    [
        (
            ["strategy=fsdp", "strategy.state_dict_type=sharded"],
            r"strategy\.state_dict_type='sharded' is not allowed: .*only this rank's shard.*"
            r"Use strategy\.state_dict_type=full",
        ),
        (
            ["strategy=deepspeed", "strategy.stage=3"],
            r"strategy\.stage=3 is not allowed: .*ZeRO-3 partitioned parameters.*empty "
            r"placeholders.*Use strategy=fsdp \(full state dict\) or strategy\.stage=1 or 2",
        ),
        (
            ["strategy=deepspeed", "strategy.offload_optimizer=true"],
            r"strategy\.offload_optimizer=True is not allowed: .*zero_force_ds_cpu_optimizer.*"
            r"Use strategy\.offload_optimizer=false",
        ),
        (
            [*PAPER, "strategy=deepspeed"],
            r"strategy=deepspeed with optimizer\._target_='transformers\.optimization\.Adafactor'"
            r" is not allowed: ZeRO flattens .*unfactored.*Use strategy=ddp",
        ),
        (
            ["recipe=paper", "strategy=deepspeed", "strategy.stage=1"],
            r"strategy=deepspeed with optimizer\._target_=.*Adafactor",
        ),
        (
            [*PAPER, "strategy=fsdp"],
            r"strategy\.sharding_strategy='FULL_SHARD' with optimizer\._target_=.*Adafactor.* is "
            r"not allowed: .*1-D slice.*unfactored.*Use strategy=ddp",
        ),
        (
            [*PAPER, "strategy=fsdp", "strategy.sharding_strategy=HYBRID_SHARD"],
            r"strategy\.sharding_strategy='HYBRID_SHARD' with optimizer\._target_=.*Adafactor",
        ),
        (  # README's multi-node example adds strategy=fsdp to a paper preset
            ["experiment=magicoder-s-ds", "strategy=fsdp"],
            r"strategy\.sharding_strategy='FULL_SHARD' with optimizer\._target_=.*Adafactor",
        ),
    ],
    ids=[
        "fsdp-sharded-state-dict",
        "deepspeed-zero3",
        "deepspeed-offload-optimizer",
        "deepspeed-adafactor",
        "deepspeed-stage1-adafactor",
        "fsdp-adafactor",
        "fsdp-hybrid-adafactor",
        "magicoder-s-ds-on-fsdp",
    ],
)
def test_a_strategy_that_cannot_save_or_keep_the_optimizer_fails_at_compose_time(
    overrides: list[str], reason: str, tmp_path: Path, compose
):
    with pytest.raises(ValueError, match=reason):
        compose("train", overrides, tmp_path)


@pytest.mark.parametrize(
    "overrides",
    [
        ["strategy=deepspeed", "optimizer=adamw"],
        ["strategy=deepspeed", "strategy.stage=1"],
        ["strategy=fsdp"],
        ["strategy=fsdp", "strategy.sharding_strategy=SHARD_GRAD_OP"],
        [*PAPER, "strategy=fsdp", "strategy.sharding_strategy=NO_SHARD"],
        [*PAPER, "strategy=fsdp", "optimizer=adamw"],
        [*PAPER, "strategy=deepspeed", "optimizer=adamw"],
        PAPER,  # the paper's own hardware: DDP
    ],
    ids=lambda overrides: " ".join(overrides),
)
def test_strategies_that_save_the_whole_model_still_compose(
    overrides: list[str], tmp_path: Path, compose
):
    cfg = compose("train", overrides, tmp_path)
    assert cfg.strategy._target_


def test_the_refusals_name_what_each_setting_would_break(tmp_path: Path, compose):
    """The reason is in the message, not only the key: a user learns what would go wrong."""
    with pytest.raises(ValueError) as sharded:
        compose("train", ["strategy=fsdp", "strategy.state_dict_type=sharded"], tmp_path)
    assert "lightning_module_state_dict" in str(sharded.value)
    assert "model/<stage>/" in str(sharded.value)
    with pytest.raises(ValueError) as offload:
        compose("train", ["strategy=deepspeed", "strategy.offload_optimizer=true"], tmp_path)
    assert "conf/optimizer" in str(offload.value)


def test_an_unknown_fsdp_state_dict_type_is_refused(tmp_path: Path, compose):
    with pytest.raises(ValueError, match=r"strategy\.state_dict_type='ful' is not allowed: use"):
        compose("train", ["strategy=fsdp", "strategy.state_dict_type=ful"], tmp_path)


def test_the_fsdp_builder_refuses_an_unknown_state_dict_type(tmp_path: Path, compose):
    """The builder no longer turns a typo into a full state dict silently."""
    from magicoder.training.strategies import fsdp

    with pytest.raises(ValueError, match=r"strategy\.state_dict_type='ful'"):
        fsdp(["torch.nn.Linear"], state_dict_type="ful")
    from lightning.pytorch.strategies import FSDPStrategy

    built = instantiate(compose("train", ["strategy=fsdp"], tmp_path).strategy)
    assert isinstance(built, FSDPStrategy) and built._state_dict_type == "full"
