"""Chat/demo settings, model sources and example instructions: pure parts, no model."""

from __future__ import annotations

import dataclasses
import io
from pathlib import Path

import pytest
from omegaconf import OmegaConf

from magicoder import schemas
from magicoder.chat.app import read_instructions
from magicoder.chat.examples import EMBEDDED_EXAMPLES, benchmark_examples
from magicoder.chat.models import compare_spec, model_spec, run_stages, stage_dir
from magicoder.chat.settings import ChatSettings


def test_the_generation_schema_has_exactly_the_settings_fields():
    fields = {f.name: f.default for f in dataclasses.fields(ChatSettings)}
    schema = {f.name: f.default for f in dataclasses.fields(schemas.ChatSettingsConfig)}
    assert schema == fields
    assert schemas.ChatAppConfig().generation == schemas.ChatSettingsConfig()


@pytest.mark.parametrize(
    "kwargs,message",
    [
        ({"max_new_tokens": 0}, "generation.max_new_tokens=0"),
        ({"temperature": -0.1}, "generation.temperature=-0.1"),
        ({"top_p": 0.0}, "generation.top_p=0.0"),
        ({"stop": ""}, "generation.stop=''"),
        ({"device": "gpu"}, "generation.device='gpu'"),
    ],
)
def test_bad_settings_name_the_key(kwargs: dict, message: str):
    with pytest.raises(ValueError, match=message.replace(".", r"\.").replace("(", r"\(")):
        ChatSettings(**kwargs)


def test_instructions_continue_after_a_backslash_and_stop_at_exit():
    lines = iter(["def f():\\", "    return 1", "", "second", "exit", "never"])
    got = list(read_instructions(lambda prompt: next(lines), err=io.StringIO()))
    assert got == ["def f():\n    return 1", "second"]


def test_instructions_end_at_end_of_input():
    def read(prompt: str) -> str:
        raise EOFError

    assert list(read_instructions(read, err=io.StringIO())) == []


def _run(root: Path, stages: list[str], order: list[str] | None = None) -> Path:
    for stage in stages:
        (root / "model" / stage).mkdir(parents=True)
        (root / "model" / stage / "config.json").write_text("{}")
    if order is not None:
        (root / ".hydra").mkdir()
        config = {"data": {"stages": {name: {} for name in order}}, "model": {"dtype": "bfloat16"}}
        OmegaConf.save(OmegaConf.create(config), root / ".hydra" / "config.yaml")
    return root


def test_a_run_s_stages_come_in_training_order_and_the_last_is_the_default(tmp_path: Path):
    run = _run(tmp_path, ["oss-instruct", "evol-instruct"], order=["oss-instruct", "evol-instruct"])
    assert run_stages(run) == ["oss-instruct", "evol-instruct"]
    assert stage_dir(str(run), None).name == "evol-instruct"
    spec = model_spec(OmegaConf.create({"run": str(run), "stage": "oss-instruct"}))
    assert spec.name_or_path == str(run / "model" / "oss-instruct")  # type: ignore[attr-defined]
    assert spec.dtype == "bfloat16"


def test_missing_runs_and_stages_say_what_exists(tmp_path: Path):
    with pytest.raises(FileNotFoundError, match="run='.*' is not a training run directory"):
        stage_dir(str(tmp_path / "nowhere"), None)
    run = _run(tmp_path / "run", ["sft"])
    with pytest.raises(FileNotFoundError, match=r"compare_stage='dpo'.*\['sft'\]"):
        stage_dir(str(run), "dpo", key="compare")
    with pytest.raises(ValueError, match="stage='sft' needs run="):
        model_spec(OmegaConf.create({"run": None, "stage": "sft"}))


def test_compare_takes_a_run_a_model_directory_or_a_model_config_name(tmp_path: Path):
    run = _run(tmp_path / "run", ["sft"])
    cfg = {"compare": str(run), "compare_stage": None, "paths": {}}
    assert compare_spec(OmegaConf.create(cfg)).name == "run/sft"  # type: ignore[union-attr]
    cfg["compare"] = str(run / "model" / "sft")
    assert compare_spec(OmegaConf.create(cfg)).name == "sft"  # type: ignore[union-attr]
    cfg["compare"] = "gpt5"
    with pytest.raises(ValueError, match="compare='gpt5' is not a training run.*tiny-deep"):
        compare_spec(OmegaConf.create(cfg))
    assert compare_spec(OmegaConf.create({"compare": None})) is None


def test_examples_are_evaluations_instructions_or_embedded_ones(tmp_path: Path, data_dir: Path):
    examples = benchmark_examples(str(data_dir), 2)
    assert [e.label for e in examples] == ["HumanEval/0", "HumanEval/1", "Mbpp/2", "Mbpp/3"]
    assert examples[0].instruction.startswith("Write a solution to the following problem:\n")
    assert "Your code should satisfy the following assertion" in examples[2].instruction
    assert benchmark_examples(str(tmp_path), 2) == list(EMBEDDED_EXAMPLES)
    assert benchmark_examples(None, 2) == list(EMBEDDED_EXAMPLES)
