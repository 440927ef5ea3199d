"""Batched greedy generation with a tiny random Llama, and the evaluation loop end to end."""

from __future__ import annotations

import json
import string
from pathlib import Path

import pytest
import torch
from evalplus.data import load_solutions
from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
from transformers import LlamaConfig, LlamaForCausalLM, PreTrainedTokenizerFast

from magicoder.evaluation.generation import generate_completions
from magicoder.evaluation.harness import (
    EvalSettings,
    evaluate_model,
    evaluate_samples,
    load_benchmarks,
)

CORPUS = [
    "def add(a, b):\n    return a + b\n",
    "for i in range(10):\n    total += i * i\n",
    "```python\nprint('hello world')\n```\n",
    "class Stack:\n    def push(self, item):\n        self.items.append(item)\n",
    'def is_even(n: int) -> bool:\n    """Return True if n is even."""\n    return n % 2 == 0\n',
] * 4 + [string.printable]
PROMPTS = [
    "def add(a, b):",
    "x",
    "for i in range(10):\n    total += i * i\n" * 3,
    "print('hello world')",
    "class Stack:\n    def push(self, item):",
    "def is_even(n: int) -> bool:\n",
]


def _tokenizer(pad: bool = True) -> PreTrainedTokenizerFast:
    """A byte-level BPE trained on CORPUS; without the full byte alphabet every token decodes
    to printable ASCII, so stop strings can be picked from outputs."""
    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=160, special_tokens=["<eos>", "<pad>"], show_progress=False
    )
    tok.train_from_iterator(CORPUS, trainer=trainer)
    kwargs = {"pad_token": "<pad>"} if pad else {}
    return PreTrainedTokenizerFast(tokenizer_object=tok, eos_token="<eos>", **kwargs)


def _model(tokenizer: PreTrainedTokenizerFast, seed: int = 0) -> LlamaForCausalLM:
    torch.manual_seed(seed)
    config = LlamaConfig(
        vocab_size=len(tokenizer),
        hidden_size=32,
        intermediate_size=64,
        num_hidden_layers=2,
        num_attention_heads=4,
        num_key_value_heads=4,
        max_position_embeddings=1024,
        eos_token_id=tokenizer.eos_token_id,
    )
    return LlamaForCausalLM(config)


@pytest.fixture(scope="module")
def tokenizer() -> PreTrainedTokenizerFast:
    return _tokenizer()


@pytest.fixture(scope="module")
def model(tokenizer: PreTrainedTokenizerFast) -> LlamaForCausalLM:
    return _model(tokenizer)


def _reference(model, tokenizer, prompt: str, max_new_tokens: int) -> str:
    """Plain unpadded greedy decoding of one prompt, without our wrapper."""
    inputs = tokenizer(prompt, return_tensors="pt")
    with torch.inference_mode():
        out = model.generate(
            **inputs,
            do_sample=False,
            max_new_tokens=max_new_tokens,
            pad_token_id=tokenizer.pad_token_id,
        )
    return tokenizer.decode(out[0, inputs["input_ids"].shape[1] :], skip_special_tokens=True)


@pytest.mark.slow
def test_batched_generation_equals_one_by_one_in_input_order(model, tokenizer) -> None:
    model.train()  # the caller's mode must survive
    batched = generate_completions(
        model, tokenizer, PROMPTS, batch_size=4, max_new_tokens=24, stop=None
    )
    single = [
        generate_completions(
            model, tokenizer, [prompt], batch_size=1, max_new_tokens=24, stop=None
        )[0]
        for prompt in PROMPTS
    ]
    reference = [_reference(model, tokenizer, prompt, 24) for prompt in PROMPTS]
    assert batched == single == reference
    assert len(set(batched)) > 1  # outputs differ by prompt, so the order check means something
    assert model.training
    assert tokenizer.padding_side == "right"


def test_stop_string_cuts_each_sequence_on_its_own(model, tokenizer) -> None:
    full = generate_completions(
        model, tokenizer, PROMPTS, batch_size=3, max_new_tokens=32, stop=None
    )
    # A stop string that one prompt reaches midway through its output.
    target = max(range(len(full)), key=lambda i: len(full[i]))
    stop = full[target][8:11]
    assert len(stop) == 3
    stopped = generate_completions(
        model, tokenizer, PROMPTS, batch_size=3, max_new_tokens=32, stop=stop
    )
    longest_token = max(len(token) for token in tokenizer.get_vocab())
    for before, after in zip(full, stopped, strict=True):
        assert before.startswith(after)
        if stop in before:
            # Stopped at the token completing the first occurrence (it may overhang the stop).
            end = before.index(stop) + len(stop)
            assert end <= len(after) < end + longest_token
        else:
            assert after == before
    assert len(stopped[target]) < len(full[target])


def test_tokenizer_without_pad_token_pads_with_eos() -> None:
    tokenizer = _tokenizer(pad=False)
    model = _model(tokenizer, seed=1)
    batched = generate_completions(
        model, tokenizer, PROMPTS[:4], batch_size=4, max_new_tokens=12, stop=None
    )
    single = [
        generate_completions(model, tokenizer, [p], batch_size=1, max_new_tokens=12, stop=None)[0]
        for p in PROMPTS[:4]
    ]
    assert batched == single
    assert tokenizer.pad_token is None


def test_generation_rejects_bad_settings(model, tokenizer) -> None:
    with pytest.raises(ValueError, match="eval.batch_size"):
        generate_completions(model, tokenizer, PROMPTS, batch_size=0, max_new_tokens=4)
    assert generate_completions(model, tokenizer, [], batch_size=2, max_new_tokens=4) == []


@pytest.mark.slow
def test_evaluate_model_writes_evalplus_samples_and_results(
    model, tokenizer, data_dir: Path, tmp_path: Path
) -> None:
    settings = EvalSettings(
        humaneval_path=str(data_dir / "HumanEvalPlus-v0.1.10.jsonl.gz"),
        mbpp_path=str(data_dir / "MbppPlus-v0.2.0.jsonl.gz"),
        limit=3,
        batch_size=2,
        max_new_tokens=16,
        n_workers=2,
    )
    results = evaluate_model(model, tokenizer, settings, tmp_path)
    assert [result.benchmark for result in results] == ["humaneval", "mbpp"]
    for result in results:
        bench_dir = tmp_path / result.benchmark
        samples = list(load_solutions(str(bench_dir / "samples.jsonl")))  # evalplus's reader
        assert [sample["task_id"] for sample in samples] == [row["task_id"] for row in result.rows]
        assert len(samples) == result.n_tasks == 3
        assert set(samples[0]) == {"task_id", "solution", "_identifier"}
        if result.benchmark == "humaneval":  # the program starts with the original prompt
            assert samples[0]["solution"].startswith("from typing import List")
        report = json.loads((bench_dir / "results.json").read_text())
        assert report["version"] == result.version
        assert report["limit"] == 3 and report["n_tasks_total"] in (164, 378)
        assert report["generation"]["max_new_tokens"] == 16
        assert report["generation"]["backend"] == "hf"
        assert [task["task_id"] for task in report["tasks"]] == [r["task_id"] for r in result.rows]
        passed = sum(r["base_status"] == "pass" for r in result.rows)
        passed_plus = sum(
            r["base_status"] == "pass" and r["plus_status"] == "pass" for r in result.rows
        )
        assert result.metrics("sft") == {
            f"eval/sft/{result.benchmark}/pass@1": pytest.approx(100.0 * passed / 3),
            f"eval/sft/{result.benchmark}_plus/pass@1": pytest.approx(100.0 * passed_plus / 3),
        }
        assert (bench_dir / "completions.jsonl").is_file()

    # Rescoring the written file gives the same statuses.
    humaneval = results[0]
    again = evaluate_samples(
        load_benchmarks(settings)["humaneval"], humaneval.samples_path, settings
    )
    assert again.rows == humaneval.rows


class _OutOfMemoryAbove:
    """The real model, except that batches larger than ``limit`` raise CUDA's out-of-memory
    error: a CPU cannot be made to run out of memory on purpose, a GPU would do this."""

    def __init__(self, model: LlamaForCausalLM, limit: int):
        self.model, self.limit = model, limit
        self.batch_sizes: list[int] = []

    def __getattr__(self, name: str):
        return getattr(self.model, name)

    def generate(self, **kwargs):
        n = kwargs["input_ids"].shape[0]
        self.batch_sizes.append(n)
        if n > self.limit:
            raise torch.cuda.OutOfMemoryError("CUDA out of memory. Tried to allocate 2.00 GiB")
        return self.model.generate(**kwargs)


def test_auto_batch_size_halves_on_out_of_memory_with_the_same_outputs(model, tokenizer) -> None:
    expected = generate_completions(
        model, tokenizer, PROMPTS, batch_size=1, max_new_tokens=12, stop=None
    )
    flaky = _OutOfMemoryAbove(model, limit=3)
    auto = generate_completions(
        flaky, tokenizer, PROMPTS, batch_size="auto", max_new_tokens=12, stop=None
    )
    assert auto == expected
    assert flaky.batch_sizes == [6, 3, 3]  # all 6 prompts, then halves that fit

    with pytest.raises(torch.cuda.OutOfMemoryError, match=r"eval\.batch_size=4.*auto"):
        generate_completions(
            _OutOfMemoryAbove(model, limit=3), tokenizer, PROMPTS, batch_size=4, max_new_tokens=4
        )
    with pytest.raises(torch.cuda.OutOfMemoryError, match="single prompt"):
        generate_completions(
            _OutOfMemoryAbove(model, limit=0),
            tokenizer,
            PROMPTS,
            batch_size="auto",
            max_new_tokens=4,
        )
    assert tokenizer.padding_side == "right"  # restored after the error too
