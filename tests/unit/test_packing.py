"""Packing and length-grouped batching: pure functions, no model."""

from __future__ import annotations

import random
import types

import pytest
import torch

from magicoder.data.batching import (
    length_grouped_batch_count,
    length_grouped_batches,
    padding_fraction,
)
from magicoder.data.datamodule import LengthGroupedBatchSampler, ResumableSampler
from magicoder.data.packing import (
    PACKED_SDPA,
    best_fit_decreasing,
    block_causal_mask,
    collate_packed,
    pack_dataset,
    pack_examples,
    packed_model_inputs,
    packed_sdpa_attention,
    varlen_inputs,
)
from magicoder.data.sft import IGNORE_INDEX

PAD = 0


def _example(n: int, n_prompt: int, start: int = 1) -> dict[str, list[int]]:
    ids = list(range(start, start + n))
    return {"input_ids": ids, "labels": [IGNORE_INDEX] * n_prompt + ids[n_prompt:]}


def test_best_fit_decreasing_places_each_item_in_the_tightest_bin():
    # 5→new; 4→new; 3→new; 3→the only bin with room 3; 2→room 2 exactly; 1→room 1.
    assert best_fit_decreasing([5, 4, 3, 3, 2, 1], 6) == [[0, 5], [1, 4], [2, 3]]
    # 7 opens a bin with room 3, 4 + 4 leave another with room 2: the 1 goes to the tighter
    # second bin, where first-fit would put it into the first.
    assert best_fit_decreasing([4, 7, 1, 4], 10) == [[1], [0, 3, 2]]


def test_best_fit_decreasing_keeps_every_item_once_within_capacity():
    rng = random.Random(0)
    lengths = [rng.randint(1, 512) for _ in range(2000)]
    bins = best_fit_decreasing(lengths, 512)
    assert sorted(i for b in bins for i in b) == list(range(len(lengths)))
    assert all(sum(lengths[i] for i in b) <= 512 for b in bins)
    lower_bound = -(-sum(lengths) // 512)
    assert len(bins) <= 1.05 * lower_bound + 1  # near-optimal on uniform lengths
    assert best_fit_decreasing(lengths, 512) == bins  # deterministic


def test_best_fit_decreasing_rejects_items_that_cannot_fit():
    with pytest.raises(ValueError, match="example 1 has 9 tokens.*max_seq_len"):
        best_fit_decreasing([3, 9], 8)
    with pytest.raises(ValueError, match="capacity=0"):
        best_fit_decreasing([1], 0)
    assert best_fit_decreasing([], 8) == []


def test_pack_examples_restarts_positions_and_masks_each_first_token():
    a = _example(4, n_prompt=2, start=10)  # labels: -, -, 12, 13
    b = {"input_ids": [20, 21, 22], "labels": [20, 21, 22]}  # fully labelled example
    row = pack_examples([a, b])
    assert row["input_ids"] == [10, 11, 12, 13, 20, 21, 22]
    assert row["position_ids"] == [0, 1, 2, 3, 0, 1, 2]
    assert row["seq_lens"] == [4, 3]
    # Token 20 follows 13 in the row but must not be predicted from it.
    assert row["labels"] == [IGNORE_INDEX, IGNORE_INDEX, 12, 13, IGNORE_INDEX, 21, 22]


def test_pack_dataset_keeps_every_target_token_once():
    examples = [_example(n, n_prompt=n // 2, start=100 * k) for k, n in enumerate([5, 9, 3, 7, 2])]
    rows = pack_dataset(examples, max_seq_len=10)
    assert all(len(r["input_ids"]) <= 10 for r in rows)
    assert len(rows) == 3  # 26 tokens need at least 3 rows of 10
    packed_targets = sorted(t for r in rows for t in r["labels"] if t != IGNORE_INDEX)
    # Targets that count in an unpacked batch: every label but the (never predicted) first.
    unpacked_targets = sorted(t for e in examples for t in e["labels"][1:] if t != IGNORE_INDEX)
    assert packed_targets == unpacked_targets


def test_collate_packed_pads_with_a_segment_of_its_own():
    rows = [pack_examples([_example(2, 1), _example(3, 1)]), pack_examples([_example(2, 0)])]
    batch = collate_packed(rows, pad_token_id=PAD)
    assert batch["input_ids"].tolist() == [[1, 2, 1, 2, 3], [1, 2, PAD, PAD, PAD]]
    assert batch["position_ids"].tolist() == [[0, 1, 0, 1, 2], [0, 1, 0, 1, 2]]
    assert batch["segment_ids"].tolist() == [[0, 0, 1, 1, 1], [0, 0, 1, 1, 1]]
    assert batch["attention_mask"].tolist() == [[1, 1, 1, 1, 1], [1, 1, 0, 0, 0]]
    assert batch["labels"].tolist() == [
        [IGNORE_INDEX, 2, IGNORE_INDEX, 2, 3],
        [IGNORE_INDEX, 2, IGNORE_INDEX, IGNORE_INDEX, IGNORE_INDEX],
    ]


def test_block_causal_mask_confines_attention_to_each_example():
    mask = block_causal_mask(torch.tensor([[0, 0, 1, 1, 1]]))
    assert mask.shape == (1, 1, 5, 5)
    assert mask[0, 0].int().tolist() == [
        [1, 0, 0, 0, 0],
        [1, 1, 0, 0, 0],
        [0, 0, 1, 0, 0],
        [0, 0, 1, 1, 0],
        [0, 0, 1, 1, 1],
    ]


def test_varlen_inputs_flatten_without_padding_and_give_boundaries():
    rows = [pack_examples([_example(2, 1), _example(3, 1)]), pack_examples([_example(4, 0)])]
    flat = varlen_inputs(collate_packed(rows, pad_token_id=PAD))
    assert flat["input_ids"].tolist() == [[1, 2, 1, 2, 3, 1, 2, 3, 4]]
    assert flat["position_ids"].tolist() == [[0, 1, 0, 1, 2, 0, 1, 2, 3]]
    assert flat["labels"][0, 5].item() == IGNORE_INDEX  # a row boundary is an example boundary
    assert flat["cu_seq_lens_q"].tolist() == [0, 2, 5, 9]
    assert flat["cu_seq_lens_q"].dtype == torch.int32
    assert flat["cu_seq_lens_k"] is flat["cu_seq_lens_q"]
    assert flat["max_length_q"] == flat["max_length_k"] == 4


def test_packed_model_inputs_follow_the_attention_implementation():
    batch = collate_packed([pack_examples([_example(2, 1), _example(2, 1)])], pad_token_id=PAD)
    sdpa, labels = packed_model_inputs(batch, "sdpa", torch.float32)
    assert sdpa["attention_mask"].dtype == torch.bool and sdpa["attention_mask"].shape == (
        1,
        1,
        4,
        4,
    )
    assert torch.equal(labels, batch["labels"])
    eager, _ = packed_model_inputs(batch, "eager", torch.bfloat16)
    additive = eager["attention_mask"]
    assert additive.dtype == torch.bfloat16
    assert torch.equal(additive == 0, sdpa["attention_mask"])
    assert additive.min().item() == torch.finfo(torch.bfloat16).min
    flash, flat_labels = packed_model_inputs(batch, "flash_attention_2", torch.bfloat16)
    assert "attention_mask" not in flash and flash["cu_seq_lens_q"].tolist() == [0, 2, 4]
    assert flat_labels.shape == flash["input_ids"].shape == (1, 4)
    with pytest.raises(ValueError, match=r"flex_attention.*data\.packing=false"):
        packed_model_inputs(batch, "flex_attention", torch.float32)


def _all_indices(batches_by_rank: list[list[list[int]]]) -> list[int]:
    return sorted(i for batches in batches_by_rank for b in batches for i in b)


def test_length_grouped_batches_cover_the_epoch_once_sharded_over_ranks():
    rng = random.Random(1)
    lengths = [rng.randint(10, 500) for _ in range(1003)]
    by_rank = [
        length_grouped_batches(
            lengths, 4, seed=3, epoch=0, rank=r, world_size=2, megabatch_factor=8
        )
        for r in range(2)
    ]
    assert len(by_rank[0]) == len(by_rank[1]) == -(-1002 // 8)
    assert _all_indices(by_rank) == sorted(set(_all_indices(by_rank)))  # no repeats
    assert len(_all_indices(by_rank)) == 1002  # n % world_size left out, like the plain sampler
    # Rank r's k-th batch is half of the same global batch: the lengths match closely.
    for a, b in zip(*by_rank, strict=True):
        assert abs(max(lengths[i] for i in a) - max(lengths[i] for i in b)) < 60
    # The global batches are those of one process with the whole batch (the last one trimmed
    # to a multiple of the world size), so DDP trains on the same examples step by step.
    single = length_grouped_batches(lengths, 8, seed=3, megabatch_factor=8)
    assert len(single) == len(by_rank[0]) == length_grouped_batch_count(1003, 4, world_size=2)
    for k, (a, b) in enumerate(zip(*by_rank, strict=True)):
        whole = single[k][: len(single[k]) - len(single[k]) % 2]
        assert sorted(a + b) == sorted(whole), k


def test_length_grouped_batches_cut_padding_and_stay_shuffled():
    rng = random.Random(2)
    lengths = [rng.randint(10, 500) for _ in range(2000)]
    grouped = length_grouped_batches(lengths, 8, seed=0)
    order = torch.randperm(2000, generator=torch.Generator().manual_seed(0)).tolist()
    plain = [order[i : i + 8] for i in range(0, 2000, 8)]
    assert padding_fraction(grouped, lengths) < 0.1 < 0.3 < padding_fraction(plain, lengths)
    maxima = [max(lengths[i] for i in b) for b in grouped]
    assert maxima != sorted(maxima, reverse=True)  # batch order is shuffled, not sorted
    assert grouped == length_grouped_batches(lengths, 8, seed=0)  # seeded
    assert grouped != length_grouped_batches(lengths, 8, seed=0, epoch=1)  # reshuffled per epoch


def test_length_grouped_sampler_resumes_mid_epoch():
    lengths = list(range(1, 101))
    consumed = 0
    sampler = LengthGroupedBatchSampler(lengths, 8, seed=5, skip_fn=lambda: consumed)
    sampler.set_epoch(2)
    full = list(sampler)
    assert len(full) == len(sampler) == 13
    consumed = 5
    assert list(sampler) == full[5:]
    # Lightning creates the iterator before it restores a resumed run's progress: the skip
    # must be read at the first batch, not when iter() is called.
    batches = iter(sampler)
    consumed = 7
    assert next(batches) == full[7]
    assert sampler.sampler is sampler  # where Lightning looks for set_epoch


def test_resumable_sampler_still_skips_samples():
    sampler = ResumableSampler(10, seed=0, skip_fn=lambda: 4)
    assert list(sampler) == sampler.epoch_indices()[4:]


def test_padding_fraction():
    assert padding_fraction([[0, 1], [2]], [4, 2, 3]) == pytest.approx(1 - 9 / 11)
    assert padding_fraction([], []) == 0.0


def test_packed_sdpa_attention_confines_each_example_with_grouped_heads():
    torch.manual_seed(0)
    query = torch.randn(1, 4, 10, 8)
    key, value = torch.randn(1, 2, 10, 8), torch.randn(1, 2, 10, 8)
    layer = types.SimpleNamespace(num_key_value_groups=2)
    out, weights = packed_sdpa_attention(
        layer, query, key, value, None, scaling=0.5, cu_seq_lens_q=torch.tensor([0, 3, 10])
    )
    assert weights is None and out.shape == (1, 10, 4, 8)
    mask = block_causal_mask(torch.tensor([[0, 0, 0, 1, 1, 1, 1, 1, 1, 1]]))
    expected = torch.nn.functional.scaled_dot_product_attention(
        query, key.repeat_interleave(2, dim=1), value.repeat_interleave(2, dim=1), mask, scale=0.5
    ).transpose(1, 2)
    torch.testing.assert_close(out, expected)
    # Without boundaries it is transformers' SDPA with the mask it is given.
    plain, _ = packed_sdpa_attention(layer, query, key, value, mask, scaling=0.5)
    torch.testing.assert_close(plain, expected)
    flat, _ = packed_model_inputs(
        collate_packed([pack_examples([_example(2, 1), _example(3, 1)])], PAD),
        PACKED_SDPA,
        torch.float32,
    )
    assert flat["cu_seq_lens_q"].tolist() == [0, 2, 5] and "attention_mask" not in flat
