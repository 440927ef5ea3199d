"""What the GPU path decides, checked on the CPU: where evaluation runs and when, RoPE
buffers under bf16-true, directory checkpoints, freeing each stage's trainer."""

from __future__ import annotations

import gc
import weakref
from pathlib import Path

import lightning as L
import pytest
import torch
from helpers import TWO_TINY_STAGES, cpu_trainer
from safetensors.torch import load_file
from torch.utils.data import DataLoader

from magicoder.data.datamodule import encode_rows
from magicoder.data.sft import collate
from magicoder.data.stdlib import stdlib_pairs
from magicoder.evaluation.harness import EvalSettings, resolve_device
from magicoder.models import TinyLlama
from magicoder.training import app
from magicoder.training.app import place_for_generation, run_train
from magicoder.training.module import SFTModule

TWO_STAGES = [
    *TWO_TINY_STAGES,
    "trainer.accelerator=cpu",
    "trainer.max_steps=2",
    "trainer.enable_progress_bar=false",
    "eval=humaneval",
    "eval.limit=1",
    "eval.max_new_tokens=4",
    "eval.n_workers=1",
    "logger=csv",
]


@pytest.mark.parametrize(
    ("name", "accelerator", "devices", "expected"),
    [
        ("auto", "auto", "auto", "cuda:0"),
        ("auto", "gpu", [2, 3], "cuda:2"),
        ("auto", "cpu", "auto", "cpu"),
        ("cuda:1", "cpu", "auto", "cuda:1"),
        ("cpu", "gpu", 2, "cpu"),
    ],
)
def test_auto_eval_device_follows_the_trainer_when_cuda_is_there(
    monkeypatch, name, accelerator, devices, expected
):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    assert resolve_device(name, accelerator, devices) == torch.device(expected)


def test_auto_eval_device_is_the_cpu_without_cuda(monkeypatch):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    assert resolve_device("auto", "gpu", [1]) == torch.device("cpu")


def test_a_bad_eval_device_is_refused_with_its_value():
    with pytest.raises(ValueError, match=r"eval.device='gpu0'"):
        EvalSettings(device="gpu0")


class _Placed:
    """Stands in for a model: records where it is moved."""

    def __init__(self) -> None:
        self.moves: list[str] = []

    def to(self, device):
        self.moves.append(str(device))
        return self

    def cpu(self):
        return self.to("cpu")


def test_hf_evaluation_moves_the_model_to_the_eval_device(monkeypatch):
    # Lightning's teardown leaves the trained model on the CPU; generation must not run there
    # when the trainer trained on a GPU.
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    model = _Placed()
    trainer = {"accelerator": "gpu", "devices": [1]}
    from omegaconf import OmegaConf

    place_for_generation(model, EvalSettings(benchmarks=[]), OmegaConf.create(trainer))
    assert model.moves == ["cuda:1"]


def test_vllm_evaluation_keeps_the_in_memory_model_off_the_gpus(monkeypatch):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    model = _Placed()
    from omegaconf import OmegaConf

    settings = EvalSettings(benchmarks=[], backend="vllm")
    place_for_generation(model, settings, OmegaConf.create({"accelerator": "gpu"}))
    assert model.moves == ["cpu"]


def test_two_stages_train_then_evaluate_each_saved_stage_with_its_trainer_freed(
    tmp_path: Path, compose, monkeypatch
):
    """Every stage trains before any evaluation (no rank waits while rank zero evaluates);
    each stage is scored with its own saved weights on the resolved device; the stage-1
    trainer is gone before stage 2 builds its own."""
    events: list[str] = []
    trainers: list[weakref.ref] = []
    placements: list[tuple] = []

    real_build = app.build_trainer

    def build_trainer(cfg, stage, run, ckpt_dir):
        if trainers:
            assert trainers[-1]() is None, "the previous stage's trainer is still alive"
        trainer = real_build(cfg, stage, run, ckpt_dir)
        trainers.append(weakref.ref(trainer))
        events.append(f"train {ckpt_dir.name}")
        return trainer

    real_resolve = app.resolve_device

    def resolve(name, accelerator, devices):
        placements.append((name, accelerator, devices))
        return real_resolve(name, accelerator, devices)

    def evaluate_model(model, tokenizer, settings, out_dir, benchmarks, model_path):
        stage = Path(out_dir).name
        events.append(f"eval {stage}")
        saved = load_file(Path(model_path) / "model.safetensors")
        for name, tensor in model.state_dict().items():
            if name in saved:
                torch.testing.assert_close(tensor.cpu(), saved[name])
        assert {p.device for p in model.parameters()} == {torch.device("cpu")}
        Path(out_dir).mkdir(parents=True)
        return []

    monkeypatch.setattr(app, "build_trainer", build_trainer)
    monkeypatch.setattr(app, "resolve_device", resolve)
    monkeypatch.setattr(app, "evaluate_model", evaluate_model)
    cfg = compose("train", [*TWO_STAGES, "eval.device=auto"], tmp_path)
    run_train(cfg)

    assert events == [
        "train oss-instruct",
        "train evol-instruct",
        "eval oss-instruct",
        "eval evol-instruct",
    ]
    assert placements == [("auto", "cpu", cfg.trainer.devices)] * 2
    gc.collect()
    assert all(ref() is None for ref in trainers)
    for stage in ("oss-instruct", "evol-instruct"):
        assert (tmp_path / "eval" / stage / app.EVAL_DONE).is_file()


def test_a_directory_checkpoint_is_resumed_not_retrained(tmp_path: Path, compose, monkeypatch):
    """DeepSpeed (and sharded FSDP) save ``last.ckpt`` as a directory; resuming must find it."""
    first = tmp_path / "first"
    last = first / "checkpoints" / "sft" / "last.ckpt"
    (last / "checkpoint").mkdir(parents=True)
    seen: list[str | None] = []

    class Stop(Exception):
        pass

    def fit(self, module, datamodule=None, ckpt_path=None):
        seen.append(ckpt_path)
        raise Stop

    monkeypatch.setattr(L.Trainer, "fit", fit)
    cfg = compose("train", ["experiment=smoke", f"ckpt_path={last}"], tmp_path / "second")
    with pytest.raises(Stop):
        run_train(cfg)
    assert seen == [str(last)]


def _bf16_true_fit(model) -> None:
    _, tokenizer = TinyLlama(name="tiny").load()
    rows, _ = encode_rows(stdlib_pairs(max_files=5)[:8], tokenizer, 64)
    loader = DataLoader(rows, batch_size=4, collate_fn=lambda b: collate(b, tokenizer.pad_token_id))
    module = SFTModule(model, lambda params: torch.optim.AdamW(params, lr=1e-3))
    cpu_trainer(precision="bf16-true", max_steps=2).fit(module, train_dataloaders=loader)


def test_rope_frequencies_stay_float32_after_a_bf16_true_fit():
    model, _ = TinyLlama(name="tiny").load()
    before = {n: b.clone() for n, b in model.named_buffers() if n.endswith("inv_freq")}
    assert before and all(b.dtype == torch.float32 for b in before.values())
    _bf16_true_fit(model)
    # The precision plugin did cast the module: the weights trained in bf16 ...
    assert {p.dtype for p in model.parameters()} == {torch.bfloat16}
    # ... but RoPE's inverse frequencies are the float32 values the model came with.
    after = dict(model.named_buffers())
    for name, original in before.items():
        assert after[name].dtype == torch.float32, name
        torch.testing.assert_close(after[name], original, rtol=0, atol=0)
