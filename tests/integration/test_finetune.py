"""LoRA and QLoRA on the tiny model: what trains, the merged model, saving, evaluation, resume,
two stages, packing, two-process DDP, and the limits refused before anything loads."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
from helpers import run_module
from hydra.errors import ConfigCompositionException
from safetensors.torch import load_file

from magicoder.data.datamodule import encode_rows
from magicoder.data.packing import PACKED_SDPA, collate_packed, pack_dataset
from magicoder.data.sft import collate
from magicoder.data.stdlib import stdlib_pairs
from magicoder.evaluation.app import run_evaluate
from magicoder.models import HubModel, TinyLlama
from magicoder.training.app import run_train
from magicoder.training.finetune import (
    Finetune,
    count_parameters,
    merge_adapter,
    save_adapter,
)
from magicoder.training.module import SFTModule

QUICK = [
    "experiment=smoke",
    "finetune=lora",
    "data.stages.sft.datasets.stdlib.max_files=10",
    "trainer.max_steps=6",
    "callbacks.model_checkpoint.every_n_train_steps=2",
    "trainer.enable_progress_bar=false",
    "optimizer.lr=1e-2",
]
TINY_EVAL = ["eval=humaneval", "eval.limit=2", "eval.max_new_tokens=16", "eval.batch_size=2"]
ROWS = [
    {"instruction": f"Return {n} plus one.", "response": f"def f():\n    return {n} + 1\n"}
    for n in range(4)
]
"""A batch to overfit: four short rows (about 74 tokens each in MAGICODER_PROMPT)."""
LOGITS_TOLERANCE = {"rtol": 1e-4, "atol": 1e-5}
"""Merged vs adapter logits in fp32: (W + s·BA)x and Wx + s·B(Ax) differ by rounding only."""
PROBE = "+callbacks.probe._target_=training_probe.RecordTraining"
"""Records each rank's batches, losses, trainable and optimized parameters (tests/)."""


def _is_adapter(name: str) -> bool:
    return ".lora_A." in name or ".lora_B." in name


def _adapter_parameter_count(model: torch.nn.Module, r: int) -> int:
    """What rank-``r`` adapters on every linear layer but ``lm_head`` add to a tiny Llama."""
    config = model.config
    h, m, n = config.hidden_size, config.intermediate_size, config.num_hidden_layers
    kv = config.num_key_value_heads * (h // config.num_attention_heads)
    # q, k, v, o, gate, up, down in each layer: (fan in, fan out).
    shapes = [(h, h), (h, kv), (h, kv), (h, h), (h, m), (h, m), (m, h)]
    return n * sum(r * (fan_in + fan_out) for fan_in, fan_out in shapes)


@pytest.fixture(scope="module")
def trained_lora() -> dict:
    """A LoRA-wrapped tiny model after 20 AdamW steps on one batch, with its losses."""
    torch.manual_seed(0)
    model, tokenizer = TinyLlama(name="tiny").load()
    base = {k: v.clone() for k, v in model.state_dict().items()}
    peft_model = Finetune(mode="lora", r=8, alpha=16, dropout=0.0).wrap(model)
    encoded, _ = encode_rows(ROWS, tokenizer, 256)
    batch = collate(encoded, tokenizer.pad_token_id)
    module = SFTModule(peft_model, lambda params: torch.optim.AdamW(params, lr=3e-3))
    optimizer = module.configure_optimizers()
    losses = []
    for _ in range(20):
        loss = module._step(batch)[0]
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        losses.append(loss.item())
    return {
        "model": peft_model,
        "tokenizer": tokenizer,
        "base": base,
        "batch": batch,
        "losses": losses,
        "optimizer": optimizer,
    }


def test_lora_trains_only_the_adapters_and_the_loss_falls(trained_lora):
    model = trained_lora["model"]
    # all-linear: q, k, v, o, gate, up, down in each layer, never lm_head; rank 8 each.
    trainable, total = count_parameters(model)
    assert trainable == _adapter_parameter_count(model.get_base_model(), 8)
    names = [name for name, p in model.named_parameters() if p.requires_grad]
    assert names and all(_is_adapter(name) for name in names)
    assert not any("lm_head" in name or "embed" in name for name in names)
    # The optimizer holds state for the adapters only, and the base weights did not move.
    optimizer = trained_lora["optimizer"]
    assert sum(p.numel() for group in optimizer.param_groups for p in group["params"]) == trainable
    base_now = model.get_base_model().state_dict()
    for key, before in trained_lora["base"].items():
        after_key = key.replace(".weight", ".base_layer.weight")
        after = base_now.get(after_key, base_now.get(key))
        assert torch.equal(before, after), key
    losses = trained_lora["losses"]
    # The base is the randomly initialised tiny model, so rank-8 adapters move it less than
    # full fine-tuning would: from ln(4096) ≈ 8.3 to about 6.3 in 20 steps.
    assert losses[-1] < 0.8 * losses[0], losses


def test_merged_model_gives_the_adapter_models_logits(trained_lora, tmp_path: Path):
    model, batch = trained_lora["model"], trained_lora["batch"]
    assert any(
        p.abs().sum() > 0 for n, p in model.named_parameters() if ".lora_B." in n
    )  # trained: B is no longer zero, so the merge changes the weights
    save_adapter(model, tmp_path / "adapter", model.state_dict())
    merged = merge_adapter(TinyLlama(name="tiny").load()[0], tmp_path / "adapter")
    assert not any("lora" in key for key in merged.state_dict())
    inputs = {"input_ids": batch["input_ids"], "attention_mask": batch["attention_mask"]}
    model.eval()
    with torch.no_grad():
        adapter_logits = model(**inputs).logits
        merged_logits = merged.eval()(**inputs).logits
    torch.testing.assert_close(merged_logits, adapter_logits, **LOGITS_TOLERANCE)
    base_logits = TinyLlama(name="tiny").load()[0].eval()(**inputs).logits.detach()
    assert not torch.allclose(base_logits, adapter_logits, **LOGITS_TOLERANCE)

    # magicoder-evaluate's base + adapter path loads the same model.
    base_dir = TinyLlama(name="tiny").build()
    spec = HubModel(
        name="local", name_or_path=str(base_dir), adapter_path=str(tmp_path / "adapter")
    )
    loaded, _ = spec.load()
    with torch.no_grad():
        torch.testing.assert_close(
            loaded.eval()(**inputs).logits, adapter_logits, **LOGITS_TOLERANCE
        )


def test_gradient_checkpointing_with_lora_gives_the_adapters_gradients():
    model, tokenizer = TinyLlama(name="tiny", gradient_checkpointing=True).load()
    model = Finetune(mode="lora", r=4).wrap(model)
    model.train()
    encoded, _ = encode_rows(ROWS[:2], tokenizer, 256)
    batch = collate(encoded, tokenizer.pad_token_id)
    SFTModule(model, torch.optim.AdamW)._step(batch)[0].backward()
    # B starts at zero (so A's gradient does too); B's gradient reaches every layer only if
    # the checkpointed blocks backpropagate.
    grads = [p.grad for n, p in model.named_parameters() if ".lora_B." in n]
    assert grads and all(g is not None and g.abs().sum() > 0 for g in grads)


def test_qlora_without_cuda_fails_before_loading_anything(tmp_path: Path, compose, monkeypatch):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)

    def no_load(*args, **kwargs):
        raise AssertionError("the model was loaded")

    monkeypatch.setattr(TinyLlama, "load", no_load)
    cfg = compose("train", [*QUICK, "finetune=qlora"], tmp_path)
    with pytest.raises(RuntimeError, match=r"finetune=qlora needs a CUDA GPU.*Use finetune=lora"):
        run_train(cfg)
    assert not (tmp_path / "checkpoints").exists()


@pytest.mark.parametrize("strategy", ["fsdp", "deepspeed"])
def test_qlora_with_a_sharding_strategy_fails_at_compose_time(
    strategy: str, tmp_path: Path, compose
):
    overrides = ["finetune=qlora", f"strategy={strategy}", "optimizer=adamw"]
    with pytest.raises(
        ValueError, match=rf"finetune=qlora with strategy={strategy} is not allowed"
    ):
        compose("train", overrides, tmp_path)
    cfg = compose("train", ["finetune=lora", f"strategy={strategy}"], tmp_path)
    assert cfg.finetune.mode == "lora"


def test_bad_finetune_values_fail_at_compose_time(tmp_path: Path, compose):
    with pytest.raises(ValueError, match=r"finetune\.stage_init='both' is not allowed"):
        compose("train", ["finetune=lora", "finetune.stage_init=both"], tmp_path)
    with pytest.raises(ValueError, match=r"finetune\.r=0 is not allowed: use an integer >= 1"):
        compose("train", ["finetune=lora", "finetune.r=0"], tmp_path)
    with pytest.raises(ConfigCompositionException):
        compose("train", ["finetune=lora", "finetune.rank=8"], tmp_path)


@pytest.mark.slow
def test_lora_run_saves_an_adapter_and_a_merged_model_that_evaluates_and_loads(
    tmp_path: Path, compose, data_dir
):
    from transformers import pipeline

    run = tmp_path / "run"
    metrics = run_train(compose("train", [*QUICK, *TINY_EVAL, "logger=csv"], run))
    merged = run / "model" / "sft"
    adapter = merged / "adapter"
    assert (adapter / "adapter_config.json").is_file()
    assert (adapter / "adapter_model.safetensors").is_file()
    assert not any("lora" in key for key in load_file(merged / "model.safetensors"))
    assert all("lora" in key for key in load_file(adapter / "adapter_model.safetensors"))
    # The run scored the merged weights through EvalPlus.
    results = json.loads((run / "eval" / "sft" / "humaneval" / "results.json").read_text())
    assert len(results["tasks"]) == 2
    assert metrics["eval/sft/humaneval/pass@1"] == results["pass@1_percent"]["humaneval"]
    # magicoder-evaluate on the merged directory generates what the run did.
    again = tmp_path / "again"
    run_evaluate(
        compose(
            "evaluate",
            [*TINY_EVAL, "model=local", f"model.name_or_path={merged}", "logger=none"],
            again,
        )
    )
    samples = (run / "eval/sft/humaneval/samples.jsonl").read_text()
    assert (again / "eval/local/humaneval/samples.jsonl").read_text() == samples
    # And the quick-start pipeline loads it as it is.
    generator = pipeline("text-generation", model=str(merged), device="cpu")
    out = generator("def add(a, b):", max_new_tokens=8, do_sample=False)
    assert out[0]["generated_text"].startswith("def add(a, b):")


@pytest.mark.slow
def test_lora_resume_after_a_crash_restores_the_adapters_and_the_step(tmp_path: Path, compose):
    # No adapter dropout: Lightning does not restore the RNG state, so dropout masks after a
    # restart differ from an uninterrupted run's.
    base = [*QUICK, "eval=none", "logger=csv", "finetune.dropout=0.0"]
    run_train(compose("train", base, tmp_path / "straight"))
    crash = ["+callbacks.crash._target_=crash_callback.CrashAtStep", "+callbacks.crash.step=3"]
    with pytest.raises(Exception, match="simulated crash"):
        run_train(compose("train", [*base, *crash], tmp_path / "crashed"))
    ckpt = torch.load(tmp_path / "crashed/checkpoints/sft/last.ckpt", weights_only=False)
    assert ckpt["global_step"] == 2
    # The checkpoint holds the adapters (PEFT names) and their optimizer state, not the base.
    keys = list(ckpt["state_dict"])
    assert keys and all(".lora_A." in k or ".lora_B." in k for k in keys)
    assert len(ckpt["optimizer_states"][0]["state"]) == len(keys)
    metrics = run_train(
        compose("train", [*base, f"ckpt_path={tmp_path / 'crashed'}"], tmp_path / "resumed")
    )
    assert metrics["train/sft/global_step"] == 6
    for part in ("adapter/adapter_model.safetensors", "model.safetensors"):
        a = load_file(tmp_path / "straight/model/sft" / part)
        b = load_file(tmp_path / "crashed/model/sft" / part)
        assert a.keys() == b.keys()
        for name in a:
            torch.testing.assert_close(a[name], b[name], rtol=1e-5, atol=1e-6)


@pytest.mark.slow
@pytest.mark.parametrize("stage_init", ["adapters", "merged"])
def test_a_two_stage_lora_run_carries_stage_one_into_stage_two(
    stage_init: str, tmp_path: Path, compose
):
    from helpers import TWO_TINY_STAGES

    run = tmp_path / "run"
    overrides = [
        *TWO_TINY_STAGES,
        "finetune=lora",
        f"finetune.stage_init={stage_init}",
        "trainer.max_steps=3",
        "trainer.enable_progress_bar=false",
        "eval=none",
        "logger=none",
        "optimizer.lr=1e-2",
        "+callbacks.record._target_=record_callback.RecordStart",
        f"+callbacks.record.path={tmp_path / 'starts'}",
    ]
    metrics = run_train(compose("train", overrides, run))
    assert metrics["train/evol-instruct/global_step"] == 3
    first = load_file(run / "model/oss-instruct/adapter/adapter_model.safetensors")
    second_start = torch.load(tmp_path / "starts/evol-instruct.pt")
    lora_b = {k: v for k, v in second_start.items() if ".lora_B." in k}
    if stage_init == "adapters":
        # Stage 2 starts from stage 1's trained adapters, on the same base.
        assert len(second_start) == len(first)
        for key, value in first.items():
            name = key.replace(".weight", ".default.weight")
            torch.testing.assert_close(second_start[name], value)
        assert any(v.abs().sum() > 0 for v in lora_b.values())
    else:
        # Stage 2 starts fresh adapters (B = 0) on stage 1's merged weights.
        assert all(torch.count_nonzero(v) == 0 for v in lora_b.values())
        config = json.loads((run / "model/evol-instruct/adapter/adapter_config.json").read_text())
        assert config["base_model_name_or_path"] == str(run / "model/oss-instruct")
    # Each stage's merged model differs from the last: stage 2 trained on top.
    one = load_file(run / "model/oss-instruct/model.safetensors")
    two = load_file(run / "model/evol-instruct/model.safetensors")
    assert any(not torch.equal(one[k], two[k]) for k in one)


def test_lora_on_a_packed_batch_has_the_loss_and_adapter_gradients_of_the_unpacked_one():
    """The packed inputs (restarting positions, per-example attention) reach the attention
    layers through the PEFT wrapper: packing changes neither the loss nor the adapters'
    gradients. Attention leaking across the packed examples would change both."""
    model, tokenizer = TinyLlama(name="tiny", dtype="float32").load(packed=True)
    peft_model = Finetune(mode="lora", r=4, dropout=0.0).wrap(model)
    assert peft_model.config._attn_implementation == PACKED_SDPA  # what the step reads
    torch.manual_seed(0)
    adapters = {n: p for n, p in peft_model.named_parameters() if p.requires_grad}
    for name, param in adapters.items():
        if ".lora_B." in name:  # B starts at zero: give the adapters an effect on the output
            torch.nn.init.normal_(param, std=0.02)
    encoded, _ = encode_rows(stdlib_pairs(max_files=10)[:7], tokenizer, 256)
    rows = pack_dataset(encoded, max_seq_len=512)
    assert len(rows) < len(encoded)
    module = SFTModule(peft_model, torch.optim.AdamW)
    results = []
    for batch in (
        collate(encoded, tokenizer.pad_token_id),
        collate_packed(rows, tokenizer.pad_token_id),
    ):
        peft_model.zero_grad(set_to_none=True)
        loss, n_targets = module._step(batch)
        loss.backward()
        grads = {n: p.grad.detach().clone() for n, p in adapters.items()}
        results.append((loss.item(), n_targets, grads))
    (plain_loss, plain_targets, plain_grads), (packed_loss, packed_targets, packed_grads) = results
    assert packed_targets == plain_targets
    assert packed_loss == pytest.approx(plain_loss, abs=1e-5)
    assert all(g.abs().sum() > 0 for g in plain_grads.values())
    for name, grad in plain_grads.items():
        torch.testing.assert_close(packed_grads[name], grad, rtol=0, atol=1e-5, msg=name)


def test_lora_trains_only_the_adapters_on_packed_batches(tmp_path: Path, compose):
    probe = tmp_path / "probe"
    overrides = [
        *QUICK,
        "data.packing=true",
        "data.stages.sft.val_fraction=0",
        "scheduler.num_warmup_steps=0",
        "trainer.max_steps=4",
        "eval=none",
        "logger=none",
        PROBE,
        f"+callbacks.probe.path={probe}",
    ]
    run_train(compose("train", overrides, tmp_path / "run"))
    seen = json.loads((probe / "rank0.json").read_text())
    assert seen["model_class"] == "PeftModelForCausalLM"
    assert seen["attn_implementation"] == PACKED_SDPA
    batches = seen["batches"]
    assert len(batches) == 4 and all(b["packed"] for b in batches)
    # Several examples share each packed sequence (4 sequences per micro-batch).
    assert all(b["rows"] == 4 for b in batches)
    assert sum(b["examples"] for b in batches) > 1.5 * sum(b["rows"] for b in batches)
    # Only the adapters train, and the optimizer holds exactly them.
    assert seen["trainable"] == seen["optimized"]
    assert seen["trainable"] and all(_is_adapter(n) for n in seen["trainable"])
    weights = torch.load(probe / "rank0.pt")
    base = TinyLlama(name="tiny").load()[0]
    assert sum(w.numel() for w in weights.values()) == _adapter_parameter_count(base, 16)
    losses = [b["loss"] for b in batches]
    assert losses[-1] < losses[0], losses


@pytest.mark.slow
def test_lora_under_two_process_ddp_keeps_the_ranks_adapters_equal(tmp_path: Path):
    """Real DDP on CPU (gloo), two processes, packed batches: both ranks train the adapters
    only and end with the same adapter weights; rank zero alone saves the adapter and the
    merged model, which loads and gives the base + adapter model's logits."""
    from transformers import AutoModelForCausalLM

    run, probe = tmp_path / "run", tmp_path / "probe"
    args = [
        "finetune=lora",
        "strategy=ddp",
        "trainer.accelerator=cpu",
        "trainer.devices=2",
        "data.packing=true",
        "data.batch_size=2",
        "data.stages.sft.max_seq_len=256",
        "data.stages.sft.datasets.stdlib.max_files=10",
        "data.stages.sft.val_fraction=0",
        "trainer.max_steps=3",
        "trainer.enable_progress_bar=false",
        "optimizer.lr=1e-2",
        "scheduler.num_warmup_steps=0",
        "eval=none",
        "logger=none",
        PROBE,
        f"+callbacks.probe.path={probe}",
        f"hydra.run.dir={run}",
    ]
    result = run_module("magicoder.cli.train", args, tmp_path)
    assert result.returncode == 0, result.stderr[-4000:]
    output = result.stdout + result.stderr
    seen = [json.loads((probe / f"rank{r}.json").read_text()) for r in (0, 1)]
    weights = [torch.load(probe / f"rank{r}.pt") for r in (0, 1)]
    for rank in seen:
        assert rank["world_size"] == 2 and rank["global_step"] == 3
        assert rank["trainable"] == rank["optimized"]
        assert rank["trainable"] and all(_is_adapter(n) for n in rank["trainable"])
        assert all(b["packed"] and b["examples"] > b["rows"] for b in rank["batches"])
    # The ranks trained on different shards of each global batch...
    assert [b["loss"] for b in seen[0]["batches"]] != [b["loss"] for b in seen[1]["batches"]]
    # ...and the averaged gradients kept their adapters identical, and trained.
    assert weights[0].keys() == weights[1].keys()
    for name, value in weights[0].items():
        assert torch.equal(value, weights[1][name]), name
    assert any(v.abs().sum() > 0 for n, v in weights[0].items() if ".lora_B." in n)

    # Both ranks log; only rank zero saves the adapter, which holds the trained weights.
    assert output.count("finetune=lora: ") == 2, output[-4000:]
    assert output.count("Saved the adapter to") == 1, output[-4000:]
    merged_dir = run / "model" / "sft"
    saved = load_file(merged_dir / "adapter" / "adapter_model.safetensors")
    assert len(saved) == len(weights[0])
    for key, value in saved.items():
        torch.testing.assert_close(value, weights[0][key.replace(".weight", ".default.weight")])

    # The merged model loads as a plain model and equals base + adapter.
    merged = AutoModelForCausalLM.from_pretrained(merged_dir).eval()
    assert not any("lora" in key for key in merged.state_dict())
    spec = HubModel(
        name="local",
        name_or_path=str(TinyLlama(name="tiny").build()),
        adapter_path=str(merged_dir / "adapter"),
    )
    with_adapter = spec.load()[0].eval()
    input_ids = torch.tensor([[1, 40, 41, 42, 43, 44]])
    with torch.no_grad():
        torch.testing.assert_close(
            merged(input_ids).logits, with_adapter(input_ids).logits, **LOGITS_TOLERANCE
        )
