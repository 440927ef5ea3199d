"""The vLLM backend's arguments and wiring, without vLLM (it needs a GPU machine).

The argument builders are pure. ``VllmGenerator`` is exercised against a stand-in ``vllm``
module that records what it is given: vLLM itself cannot be installed or run on the CPU-only
machines these tests run on.
"""

from __future__ import annotations

import importlib.machinery
import sys
import types
from typing import Any

import pytest
import torch
from tokenizers import Tokenizer, models, pre_tokenizers
from transformers import PreTrainedTokenizerFast

from magicoder.evaluation import generation
from magicoder.evaluation.generation import (
    VllmGenerator,
    check_backend,
    check_free_gpu_memory,
    completion_generator,
    vllm_engine_args,
    vllm_sampling_args,
)
from magicoder.evaluation.harness import EvalSettings
from magicoder.prompts import CODE_FENCE


@pytest.fixture(scope="module")
def tokenizer() -> PreTrainedTokenizerFast:
    """One token per byte, so token ids are predictable."""
    alphabet = pre_tokenizers.ByteLevel.alphabet()
    tok = Tokenizer(models.BPE(vocab={c: i for i, c in enumerate(sorted(alphabet))}, merges=[]))
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.add_special_tokens(["<eos>"])
    return PreTrainedTokenizerFast(tokenizer_object=tok, eos_token="<eos>")


def test_engine_args_load_the_saved_weights_and_let_config_override():
    args = vllm_engine_args("/runs/x/model/sft", dtype="bfloat16")
    assert args == {
        "model": "/runs/x/model/sft",
        "tokenizer": "/runs/x/model/sft",
        "dtype": "bfloat16",
        "seed": 0,
    }
    extra = {"tensor_parallel_size": 2, "dtype": "float16", "gpu_memory_utilization": 0.5}
    args = vllm_engine_args("m", extra=extra)
    assert args["tensor_parallel_size"] == 2 and args["dtype"] == "float16"
    assert args["gpu_memory_utilization"] == 0.5


def test_sampling_args_are_greedy_with_the_fence_as_stop():
    args = vllm_sampling_args(512, CODE_FENCE)
    assert args["temperature"] == 0.0 and args["top_p"] == 1.0 and args["n"] == 1
    assert args["max_tokens"] == 512
    assert args["stop"] == [CODE_FENCE]
    # Kept in the text, as the hf backend keeps it, so the same cut applies to both.
    assert args["include_stop_str_in_output"] is True
    assert vllm_sampling_args(8, None)["stop"] is None
    with pytest.raises(ValueError, match="eval.max_new_tokens=0"):
        vllm_sampling_args(0, CODE_FENCE)


def test_missing_vllm_is_a_clear_error_before_anything_runs(monkeypatch, tokenizer):
    monkeypatch.setitem(sys.modules, "vllm", None)  # makes `import vllm` fail
    message = r"eval\.backend=vllm needs the vllm package.*backend=hf"
    with pytest.raises(ImportError, match=message):
        VllmGenerator("m", tokenizer, max_new_tokens=8)
    with pytest.raises(ImportError, match=message):
        check_backend("vllm")
    with pytest.raises(ImportError, match=message):  # settings are checked before training
        EvalSettings(backend="vllm")
    assert EvalSettings(backend="vllm", benchmarks=[]).backend == "vllm"  # nothing generated
    check_backend("hf")


def _fake_vllm(calls: dict[str, list[Any]]) -> types.ModuleType:
    module = types.ModuleType("vllm")
    module.__spec__ = importlib.machinery.ModuleSpec("vllm", None)

    class SamplingParams:
        def __init__(self, **kwargs: Any):
            self.kwargs = kwargs

    class LLM:
        def __init__(self, **kwargs: Any):
            calls["engines"].append(kwargs)

        def generate(
            self, prompts: list[dict], params: SamplingParams, use_tqdm: Any = True
        ) -> list[Any]:
            calls["generate"].append((prompts, params.kwargs))
            return [
                types.SimpleNamespace(
                    outputs=[
                        types.SimpleNamespace(text=f"completion of {len(p['prompt_token_ids'])}")
                    ]
                )
                for p in prompts
            ]

    module.LLM = LLM  # type: ignore[attr-defined]
    module.SamplingParams = SamplingParams  # type: ignore[attr-defined]
    return module


def test_vllm_generator_feeds_our_token_ids_and_reuses_its_engine(monkeypatch, tokenizer):
    calls: dict[str, list[Any]] = {"engines": [], "generate": []}
    monkeypatch.setitem(sys.modules, "vllm", _fake_vllm(calls))
    model = types.SimpleNamespace(name_or_path="/cache/tiny", dtype="torch.float32")
    generate = completion_generator(
        "vllm",
        model,
        tokenizer,
        batch_size="auto",
        max_new_tokens=16,
        model_path="/runs/x/model/sft",
        engine_args={"enforce_eager": True},
    )
    assert calls["engines"] == []  # the engine starts on first use
    assert generate(["abc", "a"]) == ["completion of 3", "completion of 1"]
    assert generate(["abcd"]) == ["completion of 4"]
    assert generate([]) == []
    assert len(calls["engines"]) == 1
    engine = calls["engines"][0]
    assert engine["model"] == "/runs/x/model/sft" and engine["enforce_eager"] is True
    prompts, params = calls["generate"][0]
    assert prompts == [{"prompt_token_ids": tokenizer(p)["input_ids"]} for p in ("abc", "a")]
    assert params == vllm_sampling_args(16, CODE_FENCE)
    assert EvalSettings(backend="vllm").backend == "vllm"  # installed: accepted


def test_completion_generator_rejects_bad_backends(monkeypatch, tokenizer):
    with pytest.raises(ValueError, match="eval.backend='tgi'"):
        completion_generator("tgi", None, tokenizer, batch_size=1, max_new_tokens=4)
    with pytest.raises(ValueError, match="eval.batch_size=0"):
        completion_generator("hf", None, tokenizer, batch_size=0, max_new_tokens=4)
    calls: dict[str, list[Any]] = {"engines": [], "generate": []}
    monkeypatch.setitem(sys.modules, "vllm", _fake_vllm(calls))
    nameless = types.SimpleNamespace(name_or_path="", dtype="torch.float32")
    with pytest.raises(ValueError, match="save_pretrained"):
        completion_generator("vllm", nameless, tokenizer, batch_size=1, max_new_tokens=4)


def _gpus(monkeypatch, free_per_look: list[float], total: float = 100.0, count: int = 1):
    """Pretend CUDA is there; GPU memory reads return ``free_per_look`` in turn (GiB)."""
    looks = iter(free_per_look)
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "device_count", lambda: count)
    monkeypatch.setattr(
        torch.cuda, "mem_get_info", lambda index: (next(looks) * 2**30, total * 2**30)
    )
    monkeypatch.setattr(generation.time, "sleep", lambda seconds: None)


def test_vllm_waits_for_a_gpu_that_another_rank_is_still_freeing(monkeypatch):
    _gpus(monkeypatch, [10.0, 30.0, 95.0])
    check_free_gpu_memory(0.9, wait_seconds=60)  # free at the third look


def test_vllm_refuses_a_busy_gpu_with_the_setting_that_fits(monkeypatch):
    _gpus(monkeypatch, [40.0] * 3)
    with pytest.raises(RuntimeError, match=r"gpu_memory_utilization=0\.35"):
        check_free_gpu_memory(0.9, wait_seconds=0)


def test_vllm_tensor_parallel_needs_that_many_visible_gpus(monkeypatch):
    _gpus(monkeypatch, [100.0], count=1)
    with pytest.raises(RuntimeError, match="tensor_parallel_size=2 but 1 GPU"):
        check_free_gpu_memory(0.9, n_gpus=2)


def test_vllm_engine_is_shut_down_when_evaluation_closes_it(monkeypatch, tokenizer):
    calls: dict[str, list[Any]] = {"engines": [], "generate": []}
    fake = _fake_vllm(calls)
    shutdowns: list[str] = []
    fake.LLM.shutdown = lambda self: shutdowns.append("engine")  # type: ignore[attr-defined]
    monkeypatch.setitem(sys.modules, "vllm", fake)
    model = types.SimpleNamespace(name_or_path="/cache/tiny", dtype="torch.float32")
    generate = completion_generator("vllm", model, tokenizer, batch_size=1, max_new_tokens=4)
    generate.close()  # never started: nothing to shut down
    assert shutdowns == []
    generate(["abc"])
    generate.close()
    assert shutdowns == ["engine"] and generate._llm is None
