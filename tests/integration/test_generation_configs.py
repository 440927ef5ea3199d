"""generate.yaml, curate.yaml and data-report.yaml compose with every seeds/teacher option."""

from __future__ import annotations

from pathlib import Path

import pytest
from hydra.utils import instantiate
from omegaconf import OmegaConf

from magicoder.config import config_dir
from magicoder.generation.seeds import SeedSource
from magicoder.generation.teacher import TeacherSettings
from magicoder.prompts import GENERATION_PROMPTS

CONF = config_dir()


def options(group: str) -> list[str]:
    return sorted(p.stem for p in (CONF / group).glob("*.yaml"))


def test_groups_exist():
    assert {"stdlib", "local", "hub"} <= set(options("seeds"))
    assert {"openai", "vllm", "transformers-serve", "ollama", "llamacpp", "tgi"} <= set(
        options("teacher")
    )


@pytest.mark.parametrize("teacher", options("teacher"))
def test_every_teacher_composes_and_instantiates(teacher: str, tmp_path: Path, compose):
    cfg = compose("generate", [f"teacher={teacher}"], tmp_path)
    if OmegaConf.is_missing(cfg.teacher, "model"):
        cfg.teacher.model = "some-model"
    settings = instantiate(cfg.teacher)
    assert isinstance(settings, TeacherSettings) and settings.name == teacher
    assert settings.base_url.startswith("http") and settings.base_url.endswith("/v1")
    # Every preset samples as the paper does unless told otherwise.
    assert (settings.temperature, settings.max_tokens, settings.seed) == (0.0, 2500, 976)


def test_the_default_teacher_is_the_papers(tmp_path: Path, compose):
    cfg = compose("generate", [], tmp_path)
    assert cfg.teacher.model == "gpt-3.5-turbo-1106"
    assert cfg.teacher.api_key_env == "OPENAI_API_KEY"
    assert cfg.prompt in GENERATION_PROMPTS


@pytest.mark.parametrize("seeds", options("seeds"))
def test_every_seed_source_composes_and_instantiates(seeds: str, tmp_path: Path, compose):
    overrides = [f"seeds={seeds}"]
    if seeds == "local":
        overrides.append(f"seeds.root={tmp_path}")
    cfg = compose("generate", overrides, tmp_path)
    source = instantiate(cfg.seeds)
    assert isinstance(source, SeedSource)
    assert (source.seed, source.min_lines, source.max_lines, source.chunk_size) == (
        976,
        1,
        15,
        1000,
    )
    source.check()


def test_hub_seeds_default_to_starcoderdata_python(tmp_path: Path, compose):
    cfg = compose("generate", ["seeds=hub", "seeds.data_dir=rust"], tmp_path)
    assert cfg.seeds.path == "bigcode/starcoderdata" and cfg.seeds.name == "starcoderdata-rust"
    assert cfg.seeds.max_considered_docs == 150000


def test_curate_and_report_compose(tmp_path: Path, compose, data_dir: Path):
    cfg = compose("curate", ["inputs=[a.jsonl]"], tmp_path)
    assert list(cfg.steps) == ["exact_dedup", "copied_code", "decontaminate"]
    assert cfg.shuffle_seed == 666
    for name, path in cfg.decontaminate.benchmarks.items():
        assert path is None or Path(path).exists(), name
    report = compose("data-report", ["inputs=[a.jsonl]"], tmp_path)
    assert Path(report.humaneval_path).is_file()
