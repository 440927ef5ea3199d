"""Instruct baselines prompted in their own chat template (``eval.prompt=chat-template``), the
way EvalPlus prompts chat models: the prompts, the programs, the protocol record, the configs."""

from __future__ import annotations

import inspect
import json
import shutil
from pathlib import Path

import pytest
from evalplus.provider.utility import _MAGIC_SPLITTER_, make_raw_chat_prompt

from magicoder.evaluation import harness
from magicoder.evaluation.app import run_evaluate
from magicoder.evaluation.benchmarks import load_benchmark
from magicoder.evaluation.harness import EvalSettings, task_prompts
from magicoder.evaluation.protocols import prompt_sha256
from magicoder.evaluation.sanitizers import cut_completion, sanitize_program
from magicoder.models import TinyLlama
from magicoder.prompts import (
    CHAT_SPLITTER,
    EVALPLUS_INSTRUCTION_PREFIX,
    EVALPLUS_RESPONSE_PREFIX,
)
from magicoder.training import app as train_app
from magicoder.training.app import run_train

CHAT_TEMPLATE = (
    "{{ bos_token }}{% for m in messages %}<|{{ m['role'] }}|>\n{{ m['content'] }}"
    "{{ eos_token }}\n{% endfor %}{% if add_generation_prompt %}<|assistant|>\n{% endif %}"
)
"""A small chat template in the shape of ChatML-style ones (roles, end-of-turn tokens)."""
QUICK_EVAL = [
    "eval=humaneval+mbpp",
    "eval.limit=2",
    "eval.max_new_tokens=24",
    "eval.batch_size=2",
    "eval.n_workers=1",
    "logger=none",
]


@pytest.fixture(scope="module")
def chat_tokenizer():
    """The tiny model's tokenizer with :data:`CHAT_TEMPLATE` set."""
    _, tokenizer = TinyLlama(name="tiny").load()
    tokenizer.chat_template = CHAT_TEMPLATE
    return tokenizer


@pytest.fixture(scope="module")
def chat_model_dir(tmp_path_factory: pytest.TempPathFactory, chat_tokenizer) -> Path:
    """The tiny model saved with a tokenizer that has a chat template (a local 'instruct' model)."""
    path = tmp_path_factory.mktemp("chat-model") / "tiny-chat"
    shutil.copytree(TinyLlama(name="tiny").build(), path)
    chat_tokenizer.save_pretrained(path)
    return path


def test_the_instruction_texts_are_evalplus_codegens():
    """The prefixes are locals of evalplus's ``run_codegen``: pinned against its source."""
    from evalplus.codegen import run_codegen

    source = inspect.getsource(run_codegen)
    assert f'    instruction_prefix = "{EVALPLUS_INSTRUCTION_PREFIX}"\n' in source
    assert f'    response_prefix = "{EVALPLUS_RESPONSE_PREFIX}"\n' in source
    assert CHAT_SPLITTER == _MAGIC_SPLITTER_


@pytest.mark.parametrize(
    ("name", "release"),
    [("humaneval", "HumanEvalPlus-v0.1.10"), ("mbpp", "MbppPlus-v0.2.0")],
)
def test_chat_prompts_equal_evalplus_own(name: str, release: str, data_dir: Path, chat_tokenizer):
    benchmark = load_benchmark(name, str(data_dir / f"{release}.jsonl.gz"), limit=20)
    task_ids = list(benchmark.problems)
    prompts = task_prompts(benchmark, task_ids, "chat-template", chat_tokenizer)
    # evalplus.codegen hands each chat model task["prompt"].strip() + "\n".
    expected = [
        make_raw_chat_prompt(
            benchmark.problems[t]["prompt"].strip() + "\n",
            EVALPLUS_INSTRUCTION_PREFIX,
            EVALPLUS_RESPONSE_PREFIX,
            chat_tokenizer,
        )
        for t in task_ids
    ]
    assert prompts == expected
    assert prompts[0].endswith(f"<|assistant|>\n{EVALPLUS_RESPONSE_PREFIX}\n```python\n")
    # The magicoder format is unchanged by the option.
    assert task_prompts(benchmark, task_ids[:1], "magicoder")[0].startswith("You are an")


def test_a_chat_template_run_is_not_labelled_as_the_protocol(data_dir: Path):
    mbpp = load_benchmark("mbpp", str(data_dir / "MbppPlus-v0.1.0.jsonl.gz"), version="v0.1.0")
    paper = EvalSettings(protocol="magicoder-paper").protocol_record(mbpp)
    assert (paper["name"], paper["label"]) == ("magicoder-paper", "magicoder-paper")
    assert paper["fields"]["prompt"] == "magicoder"
    chat = EvalSettings(protocol="magicoder-paper", prompt="chat-template")
    record = chat.protocol_record(mbpp, CHAT_TEMPLATE)
    assert record["name"] == "custom"
    assert record["label"] == "magicoder-paper, prompt=chat-template"
    assert record["fields"]["prompt"] == "chat-template"
    # The hash covers the template actually applied: another template, another id.
    assert record["fields"]["prompt_sha256"] == prompt_sha256("chat-template", CHAT_TEMPLATE)
    assert record["fields"]["prompt_sha256"] != paper["fields"]["prompt_sha256"]
    other = chat.protocol_record(mbpp, CHAT_TEMPLATE.replace("<|", "<"))
    assert other["id"] != record["id"] != paper["id"]


def test_an_unknown_prompt_format_fails_naming_the_choices():
    with pytest.raises(
        ValueError, match=r"eval\.prompt='chat' is unknown; use magicoder .* or chat-template"
    ):
        EvalSettings(prompt="chat")


def test_a_tokenizer_without_a_chat_template_fails_before_generating(
    tmp_path: Path, compose, monkeypatch
):
    def no_generation(*args, **kwargs):
        raise AssertionError("generation started")

    monkeypatch.setattr(harness, "completion_generator", no_generation)
    cfg = compose("evaluate", [*QUICK_EVAL, "eval.prompt=chat-template"], tmp_path)
    with pytest.raises(
        ValueError,
        match=r"eval\.prompt=chat-template needs a tokenizer with a chat template.*"
        r"Use eval\.prompt=magicoder",
    ):
        run_evaluate(cfg)
    assert not list(tmp_path.glob("eval/**/completions.jsonl"))


def test_training_refuses_a_chat_template_prompt_before_it_trains(
    tmp_path: Path, compose, monkeypatch
):
    def no_training(*args, **kwargs):
        raise AssertionError("training started")

    monkeypatch.setattr(train_app, "fit_and_save", no_training)
    cfg = compose("train", [*QUICK_EVAL, "eval.prompt=chat-template"], tmp_path)
    with pytest.raises(ValueError, match=r"eval\.prompt=chat-template needs a tokenizer"):
        run_train(cfg)
    assert not (tmp_path / "model").exists()


@pytest.mark.slow
def test_a_chat_model_is_generated_for_and_scored_in_its_template(
    tmp_path: Path, compose, chat_model_dir: Path
):
    overrides = [
        *QUICK_EVAL,
        "model=local",
        f"model.name_or_path={chat_model_dir}",
        "eval.prompt=chat-template",
    ]
    metrics = run_evaluate(compose("evaluate", overrides, tmp_path))
    for name in ("humaneval", "mbpp"):
        bench_dir = tmp_path / "eval" / "local" / name
        results = json.loads((bench_dir / "results.json").read_text())
        assert len(results["tasks"]) == 2
        assert (
            metrics[f"eval/local/{name}_plus/pass@1"] == results["pass@1_percent"][f"{name}_plus"]
        )
        # The record says how the model was prompted, and hashes the template it was given.
        protocol = results["protocol"]
        assert protocol["name"] == "custom" and "prompt=chat-template" in protocol["label"]
        assert protocol["fields"]["prompt"] == "chat-template"
        assert protocol["fields"]["prompt_sha256"] == prompt_sha256("chat-template", CHAT_TEMPLATE)
        assert results["generation"]["prompt"] == "chat-template"
        provenance = json.loads((tmp_path / "metrics.json").read_text())["provenance"]
        assert provenance["protocols"][f"eval/local/{name}"] == protocol
        # The model wrote the whole program: it is scored as written, never after the prompt.
        completions = [json.loads(line) for line in (bench_dir / "completions.jsonl").open()]
        samples = [json.loads(line) for line in (bench_dir / "samples.jsonl").open()]
        problems = load_benchmark(name, results["dataset_path"], limit=2).problems
        sanitizer = "tree-sitter"  # evalplus-current's, on both benchmarks
        for completion, sample in zip(completions, samples, strict=True):
            problem = problems[sample["task_id"]]
            code = cut_completion(completion["completion"])
            assert sample["solution"] == sanitize_program(name, problem, code, sanitizer)


def test_instruct_baselines_compose_with_their_chat_template(tmp_path: Path, compose):
    from magicoder.config import to_dict

    for model in ("qwen2.5-coder-7b-instruct", "deepseek-coder-6.7b-instruct"):
        cfg = compose("evaluate", [f"model={model}"], tmp_path)
        assert (cfg.eval.protocol, cfg.eval.prompt) == ("magicoder-paper", "chat-template")
        assert EvalSettings(**to_dict(cfg.eval)).prompt == "chat-template"
        overridden = compose("evaluate", [f"model={model}", "eval.prompt=magicoder"], tmp_path)
        assert overridden.eval.prompt == "magicoder"
    assert compose("evaluate", [], tmp_path).eval.prompt == "magicoder"
    assert compose("evaluate", ["model=magicoder-s-ds-6.7b"], tmp_path).eval.prompt == "magicoder"
