"""Packing on the tiny model: a packed batch trains exactly like the same examples unpacked."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from magicoder.data.datamodule import SFTDataModule, encode_rows
from magicoder.data.packing import (
    PACKED_SDPA,
    collate_packed,
    pack_dataset,
    packed_model_inputs,
    use_packed_sdpa,
)
from magicoder.data.sft import IGNORE_INDEX, collate
from magicoder.data.sources import StdlibPairs
from magicoder.data.stdlib import stdlib_pairs
from magicoder.evaluation.generation import generate_completions
from magicoder.models import TinyLlama
from magicoder.training.module import SFTModule, causal_lm_loss


@pytest.fixture(scope="module")
def tiny():
    model, tokenizer = TinyLlama(name="tiny", dtype="float32").load()
    return model, tokenizer


@pytest.fixture(scope="module")
def examples(tiny):
    _, tokenizer = tiny
    encoded, _ = encode_rows(stdlib_pairs(max_files=10)[:7], tokenizer, 256)
    assert len({len(e["input_ids"]) for e in encoded}) > 3  # lengths differ: real padding
    return encoded


def _loss_and_grads(model, batch) -> tuple[float, int, dict[str, torch.Tensor]]:
    module = SFTModule(model, lambda params: torch.optim.SGD(params, lr=0.0))
    model.zero_grad(set_to_none=True)
    loss, n_targets = module._step(batch)
    loss.backward()
    grads = {name: p.grad.detach().clone() for name, p in model.named_parameters()}
    return loss.item(), n_targets, grads


def _direct_loss_and_grads(model, inputs, labels) -> tuple[float, dict[str, torch.Tensor]]:
    model.zero_grad(set_to_none=True)
    loss, _ = causal_lm_loss(model(**inputs, use_cache=False).logits, labels)
    loss.backward()
    return loss.item(), {name: p.grad.detach().clone() for name, p in model.named_parameters()}


def _assert_same(loss, grads, reference_loss, reference_grads) -> None:
    assert loss == pytest.approx(reference_loss, abs=1e-5)
    for name, grad in reference_grads.items():
        torch.testing.assert_close(grads[name], grad, rtol=0, atol=1e-5, msg=name)


@pytest.fixture
def reference(tiny, examples):
    """Loss, target count and gradients of the examples unpacked (padded), with SDPA."""
    model, tokenizer = tiny
    return _loss_and_grads(model, collate(examples, tokenizer.pad_token_id))


@pytest.fixture
def packed(tiny, examples):
    _, tokenizer = tiny
    rows = pack_dataset(examples, max_seq_len=512)
    assert len(rows) < len(examples)  # several examples share a row
    return collate_packed(rows, tokenizer.pad_token_id)


def test_a_model_loaded_for_packing_gets_per_example_sdpa_and_saves_plain(tmp_path: Path):
    """The attention choice is made when the model loads, and is never saved with it."""
    model, _ = TinyLlama(name="tiny", dtype="float32").load(packed=True)
    assert model.config._attn_implementation == PACKED_SDPA
    model.save_pretrained(tmp_path)
    assert PACKED_SDPA not in (tmp_path / "config.json").read_text()
    unpacked, _ = TinyLlama(name="tiny", dtype="float32").load()
    assert unpacked.config._attn_implementation == "sdpa"


@pytest.mark.slow
@pytest.mark.parametrize("attn_implementation", [PACKED_SDPA, "sdpa", "eager"])
def test_packed_batch_has_the_loss_and_gradients_of_the_unpacked_one(
    tiny, packed, reference, attn_implementation
):
    """Through the training step: per-example SDPA, SDPA with a block mask, eager with a mask."""
    model, _ = tiny
    if attn_implementation == PACKED_SDPA:
        assert use_packed_sdpa(model)
    else:
        model.set_attn_implementation(attn_implementation)
    module = SFTModule(model, lambda params: torch.optim.SGD(params, lr=0.0))
    try:
        model.zero_grad(set_to_none=True)
        loss, n_targets = module._step(packed)
        loss.backward()
        assert model.config._attn_implementation == attn_implementation  # the step keeps it
        grads = {name: p.grad.detach().clone() for name, p in model.named_parameters()}
    finally:
        model.set_attn_implementation("sdpa")
    reference_loss, reference_targets, reference_grads = reference
    assert n_targets == reference_targets
    _assert_same(loss.item(), grads, reference_loss, reference_grads)


@pytest.mark.slow
def test_sdpa_with_a_block_diagonal_mask_gives_the_same_loss(tiny, packed, reference):
    model, _ = tiny
    inputs, labels = packed_model_inputs(packed, "sdpa", model.dtype)
    assert inputs["attention_mask"].dim() == 4
    loss, grads = _direct_loss_and_grads(model, inputs, labels)
    _assert_same(loss, grads, reference[0], reference[2])


def test_flattened_varlen_inputs_give_the_same_loss(tiny, packed, reference):
    """The padding-free layout fed to FlashAttention, checked here through plain SDPA:
    transformers recovers the example boundaries from the restarting position ids (there is
    no flash kernel on a CPU)."""
    model, _ = tiny
    inputs, labels = packed_model_inputs(packed, "flash_attention_2", model.dtype)
    assert inputs["input_ids"].shape[0] == 1 and "attention_mask" not in inputs
    loss, grads = _direct_loss_and_grads(model, inputs, labels)
    _assert_same(loss, grads, reference[0], reference[2])


def test_packed_sdpa_leaves_generation_unchanged(tiny):
    model, tokenizer = tiny
    prompts = ["def add(a, b):", "import os\n\nclass Path:\n    def __init__(self"]
    expected = generate_completions(model, tokenizer, prompts, batch_size=2, max_new_tokens=16)
    assert use_packed_sdpa(model)
    try:
        got = generate_completions(model, tokenizer, prompts, batch_size=2, max_new_tokens=16)
    finally:
        model.set_attn_implementation("sdpa")
    assert got == expected


def test_plain_causal_attention_over_packed_rows_would_leak(tiny, packed, reference):
    """The equivalences above are not vacuous: without the block mask, examples see each other."""
    model, _ = tiny
    with torch.no_grad():
        out = model(input_ids=packed["input_ids"], attention_mask=packed["attention_mask"])
    leaky, _ = causal_lm_loss(out.logits, packed["labels"])
    assert abs(leaky.item() - reference[0]) > 1e-4


def test_datamodule_packs_every_example_once(tiny):
    _, tokenizer = tiny
    source = StdlibPairs(name="stdlib", max_files=15)
    plain = SFTDataModule([source], tokenizer, max_seq_len=256, batch_size=4)
    packed = SFTDataModule([source], tokenizer, max_seq_len=256, batch_size=4, packing=True)
    plain.setup()
    packed.setup()
    assert plain.train_set is not None and packed.train_set is not None
    assert max(packed.train_set.lengths()) <= 256
    fill = sum(packed.train_set.lengths()) / (256 * len(packed.train_set))
    assert fill > 0.9, fill
    examples = sorted(tuple(e["input_ids"]) for e in plain.train_set.items)
    from_rows = []
    for row in packed.train_set.items:
        start = 0
        for n in row["seq_lens"]:
            from_rows.append(tuple(row["input_ids"][start : start + n]))
            start += n
    assert sorted(from_rows) == examples
    batch = next(iter(packed.train_dataloader()))
    assert set(batch) >= {"input_ids", "labels", "position_ids", "segment_ids", "attention_mask"}
    assert batch["input_ids"].shape[0] == 4
    targets = int((batch["labels"] != IGNORE_INDEX).sum())
    assert targets > 0
