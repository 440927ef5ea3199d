"""Packed SDPA waits on the device a fixed number of times per micro-batch, not per layer.

A CPU has nothing to wait for, so the waits are counted where a GPU would have them: the
operators whose result size or value the host needs (``nonzero``, ``item`` and the like,
seen through a dispatch mode) and the Python calls that copy a tensor to the host
(``tolist``, ``numpy``, ``cpu``). The models are Llamas built from a config (a few
thousand parameters, no tokenizer), deep and shallow.
"""

from __future__ import annotations

import collections
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import pytest
import torch
from torch.utils._python_dispatch import TorchDispatchMode
from transformers import LlamaConfig, LlamaForCausalLM

from magicoder.data.packing import (
    PACKED_BOUNDS,
    PACKED_SDPA,
    collate_packed,
    pack_examples,
    packed_model_inputs,
    packed_sdpa_attention,
    use_packed_sdpa,
)
from magicoder.data.sft import IGNORE_INDEX, collate
from magicoder.training.module import causal_lm_loss

_WAITING_OPS = {"nonzero", "_local_scalar_dense", "masked_select", "unique_consecutive"}
_HOST_COPIES = ("tolist", "numpy", "cpu")


class _CountWaits(TorchDispatchMode):
    def __init__(self, counts: collections.Counter) -> None:
        super().__init__()
        self.counts = counts

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        name = func.overloadpacket.__name__
        boolean_index = name == "index" and any(
            isinstance(i, torch.Tensor) and i.dtype == torch.bool for i in args[1] or ()
        )
        if name in _WAITING_OPS or boolean_index:
            self.counts[name] += 1
        return func(*args, **(kwargs or {}))


@contextmanager
def count_host_waits(monkeypatch: pytest.MonkeyPatch) -> Iterator[collections.Counter]:
    """Count what would make the host wait for the GPU while the block runs."""
    counts: collections.Counter = collections.Counter()
    for method in _HOST_COPIES:
        original = getattr(torch.Tensor, method)

        def counted(self, *args: Any, _name: str = method, _original: Any = original, **kw: Any):
            counts[_name] += 1
            return _original(self, *args, **kw)

        monkeypatch.setattr(torch.Tensor, method, counted)
    with _CountWaits(counts):
        yield counts
    monkeypatch.undo()


def _model(layers: int) -> LlamaForCausalLM:
    torch.manual_seed(0)
    config = LlamaConfig(
        vocab_size=64,
        hidden_size=32,
        intermediate_size=64,
        num_hidden_layers=layers,
        num_attention_heads=4,
        num_key_value_heads=2,  # grouped heads, as the packed path must handle
        max_position_embeddings=64,
        attn_implementation="sdpa",
    )
    model = LlamaForCausalLM(config)
    assert use_packed_sdpa(model)
    return model


def _examples() -> list[dict[str, list[int]]]:
    lengths = (3, 7, 5, 4, 6)
    return [
        {"input_ids": [1 + (i * 7 + j) % 60 for j in range(n)], "labels": [-100] + [5] * (n - 1)}
        for i, n in enumerate(lengths)
    ]


def _packed_batch() -> dict[str, torch.Tensor]:
    examples = _examples()
    rows = [pack_examples(examples[:3]), pack_examples(examples[3:])]  # rows of 15 and 10
    return collate_packed(rows, pad_token_id=0)


def _forward_waits(model: LlamaForCausalLM, monkeypatch, bounds: bool = True) -> int:
    batch = _packed_batch()
    with count_host_waits(monkeypatch) as counts:
        inputs, _ = packed_model_inputs(batch, PACKED_SDPA, model.dtype)
        if not bounds:
            inputs.pop(PACKED_BOUNDS)
        model(**inputs, use_cache=False)
    return sum(counts.values())


def test_host_waits_per_forward_do_not_grow_with_depth(monkeypatch):
    shallow, deep = _forward_waits(_model(2), monkeypatch), _forward_waits(_model(6), monkeypatch)
    assert shallow == deep
    # Flattening waits 3 times (kept positions, example starts, boundaries); transformers'
    # mask preparation once (find_packed_sequence_indices). None of them per layer.
    assert deep <= 4


def test_the_counter_sees_a_wait_per_layer_when_the_boundaries_are_tensors(monkeypatch):
    """Without the host boundaries each layer copies ``cu_seq_lens_q`` to the host, as it
    did before: the count the test above pins is not blind to per-layer waits."""
    shallow = _forward_waits(_model(2), monkeypatch, bounds=False)
    deep = _forward_waits(_model(6), monkeypatch, bounds=False)
    assert deep - shallow == 4


def test_training_with_checkpointed_layers_keeps_the_waits_per_micro_batch(monkeypatch):
    """Recomputed layers (gradient checkpointing) get the host boundaries too."""
    totals = []
    for layers in (2, 6):
        model = _model(layers)
        model.activation_checkpointing_enable()
        model.train()
        batch = _packed_batch()
        with count_host_waits(monkeypatch) as counts:
            inputs, labels = packed_model_inputs(batch, PACKED_SDPA, model.dtype)
            loss, _ = causal_lm_loss(model(**inputs, use_cache=False).logits, labels)
            loss.backward()
        totals.append(counts["tolist"])
    assert totals[0] == totals[1]


def test_the_attention_itself_never_waits_given_host_boundaries(monkeypatch):
    torch.manual_seed(0)
    query, key, value = torch.randn(1, 4, 10, 8), torch.randn(1, 2, 10, 8), torch.randn(1, 2, 10, 8)
    layer = torch.nn.Module()
    layer.num_key_value_groups = 2
    cu = torch.tensor([0, 3, 10], dtype=torch.int32)
    with count_host_waits(monkeypatch) as counts:
        out, _ = packed_sdpa_attention(
            layer, query, key, value, None, cu_seq_lens_q=cu, **{PACKED_BOUNDS: [0, 3, 10]}
        )
    assert not counts
    reference, _ = packed_sdpa_attention(layer, query, key, value, None, cu_seq_lens_q=cu)
    torch.testing.assert_close(out, reference)


def test_only_packed_sdpa_gets_the_host_boundaries():
    batch = _packed_batch()
    packed, _ = packed_model_inputs(batch, PACKED_SDPA, torch.float32)
    assert packed[PACKED_BOUNDS] == packed["cu_seq_lens_q"].tolist() == [0, 3, 10, 15, 19, 25]
    assert packed["max_length_q"] == packed["max_length_k"] == 7
    flash, _ = packed_model_inputs(batch, "flash_attention_2", torch.float32)
    assert PACKED_BOUNDS not in flash  # FlashAttention gets exactly its own keywords
    assert set(flash) == {
        "input_ids",
        "position_ids",
        "cu_seq_lens_q",
        "cu_seq_lens_k",
        "max_length_q",
        "max_length_k",
    }


def test_packed_loss_equals_the_unpacked_loss():
    model = _model(3)
    inputs, labels = packed_model_inputs(_packed_batch(), PACKED_SDPA, model.dtype)
    packed, n_packed = causal_lm_loss(model(**inputs, use_cache=False).logits, labels)
    model.set_attn_implementation("sdpa")
    batch = collate(_examples(), pad_token_id=0)
    out = model(input_ids=batch["input_ids"], attention_mask=batch["attention_mask"])
    unpacked, n_unpacked = causal_lm_loss(out.logits, batch["labels"])
    assert n_packed == n_unpacked
    assert packed.item() == pytest.approx(unpacked.item(), abs=1e-6)
    assert (labels != IGNORE_INDEX).sum() == n_packed
