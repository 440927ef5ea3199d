"""Contamination-free packing: several examples per sequence, each attending only to itself.

A packed row concatenates examples; its ``position_ids`` restart at 0 at each example (so
rotary embeddings see every example exactly as if it were alone) and the first token of each
example carries no label (so no example is ever predicted from the one before it). The
model then needs attention confined to each example:

- FlashAttention-2/3 (``flash_attention_*``): the batch is flattened into one padding-free
  row and the sequence boundaries are handed to the variable-length kernel as
  ``cu_seq_lens_*`` / ``max_length_*`` (what transformers' ``DataCollatorWithFlattening``
  produces); no mask is materialised and no compute is spent on padding.
- SDPA: the same flattened row, with :data:`PACKED_SDPA` as the attention implementation:
  it runs ``scaled_dot_product_attention`` causally on each example's slice, so neither
  padding nor the cross-example blocks of a mask cost anything (calls without sequence
  boundaries, such as generation, go to transformers' own SDPA unchanged). The slices are
  cut at host ints computed once per micro-batch (:data:`PACKED_BOUNDS`), so the GPU is not
  waited on once per layer. Where
  transformers has no attention registry, a block mask is used as for eager.
- Eager (and SDPA given ``attn_implementation="sdpa"`` explicitly here): a 4D block-diagonal
  causal mask of shape (batch, 1, L, L) is passed as ``attention_mask``; transformers uses a
  4D mask as given (boolean for SDPA, additive for eager, whose kernel adds it to the
  scores).

Everything here is a pure function of lists and tensors, so it is unit-tested without a model.
"""

from __future__ import annotations

import bisect
from collections.abc import Sequence
from typing import Any

import torch
import torch.nn.functional as F

from magicoder.data.sft import IGNORE_INDEX

PACKED_SDPA = "magicoder_packed_sdpa"
"""Attention implementation name of :func:`packed_sdpa_attention` (see :func:`use_packed_sdpa`)."""

PACKED_BOUNDS = "packed_seq_bounds"
"""Model keyword carrying the example boundaries to :func:`packed_sdpa_attention` as Python
ints. transformers hands every keyword of the model's forward that it does not know, untouched,
through each decoder layer to the attention function (``**kwargs: TransformersKwargs``), as it
does ``cu_seq_lens_q``; ints already on the host cost no device-to-host copy per layer."""

# Attention implementations that take the block-diagonal mask, and how they read it.
_BOOL_MASK_IMPLEMENTATIONS = ("sdpa",)
_ADDITIVE_MASK_IMPLEMENTATIONS = ("eager",)


def best_fit_decreasing(lengths: Sequence[int], capacity: int) -> list[list[int]]:
    """Pack items into as few bins of ``capacity`` as best-fit decreasing finds.

    Items are placed longest first, each into the open bin it fills most tightly (the one
    with the least room that still fits it), or into a new bin. Ties are broken by item
    index and bin age, so the result is deterministic.

    Args:
        lengths: Size of each item (token count of each example).
        capacity: Room in a bin (``max_seq_len``).

    Returns:
        Bins as lists of item indices, in order of creation; each bin's items in the order
        they were placed (longest first).

    Raises:
        ValueError: When ``capacity`` is not positive or an item does not fit in a bin.
    """
    if capacity < 1:
        raise ValueError(f"packing capacity={capacity} must be >= 1")
    too_long = [i for i, n in enumerate(lengths) if n > capacity or n < 1]
    if too_long:
        i = too_long[0]
        raise ValueError(
            f"example {i} has {lengths[i]} tokens, which does not fit a packed sequence of "
            f"{capacity}; examples must be truncated to max_seq_len (1..{capacity} tokens)"
        )
    order = sorted(range(len(lengths)), key=lambda i: (-lengths[i], i))
    bins: list[list[int]] = []
    # Open bins as (room left, bin index), sorted: bisect finds the tightest fit in O(log n).
    open_bins: list[tuple[int, int]] = []
    for i in order:
        n = lengths[i]
        at = bisect.bisect_left(open_bins, (n, -1))
        if at < len(open_bins):
            room, b = open_bins.pop(at)
        else:
            room, b = capacity, len(bins)
            bins.append([])
        bins[b].append(i)
        if room - n > 0:
            bisect.insort(open_bins, (room - n, b))
    return bins


def pack_examples(examples: Sequence[dict[str, list[int]]]) -> dict[str, list[int]]:
    """Concatenate encoded examples into one packed row.

    Args:
        examples: Dicts with ``input_ids`` and ``labels`` of equal length (not empty).

    Returns:
        ``input_ids``, ``labels`` (the first token of each example set to ``IGNORE_INDEX``,
        so no target crosses an example boundary after the causal shift), ``position_ids``
        (restarting at 0 for each example) and ``seq_lens`` (tokens per example).
    """
    input_ids: list[int] = []
    labels: list[int] = []
    position_ids: list[int] = []
    seq_lens: list[int] = []
    for ex in examples:
        n = len(ex["input_ids"])
        assert n == len(ex["labels"]) and n > 0, "encoded examples have aligned, non-empty ids"
        input_ids.extend(ex["input_ids"])
        # In an unpacked batch the first token is never a target either (nothing precedes it),
        # so this keeps the set of target tokens identical to training without packing.
        labels.append(IGNORE_INDEX)
        labels.extend(ex["labels"][1:])
        position_ids.extend(range(n))
        seq_lens.append(n)
    return {
        "input_ids": input_ids,
        "labels": labels,
        "position_ids": position_ids,
        "seq_lens": seq_lens,
    }


def pack_dataset(
    examples: Sequence[dict[str, list[int]]], max_seq_len: int
) -> list[dict[str, list[int]]]:
    """Pack a split with :func:`best_fit_decreasing` into rows of at most ``max_seq_len``.

    Args:
        examples: Encoded examples, each at most ``max_seq_len`` tokens.
        max_seq_len: Room in a packed row.

    Returns:
        The packed rows (see :func:`pack_examples`).
    """
    bins = best_fit_decreasing([len(e["input_ids"]) for e in examples], max_seq_len)
    return [pack_examples([examples[i] for i in b]) for b in bins]


def collate_packed(rows: Sequence[dict[str, list[int]]], pad_token_id: int) -> dict[str, Any]:
    """Right-pad packed rows into a micro-batch.

    The padding after the last example of a row is a segment of its own (it attends only to
    itself, so no attention row is empty and no real token sees it) with no labels.

    Args:
        rows: Packed rows from :func:`pack_examples`.
        pad_token_id: Id written at padded positions.

    Returns:
        ``input_ids``, ``labels``, ``position_ids``, ``segment_ids`` (example index within
        the row; padding gets the next index) and ``attention_mask`` (1 on real tokens, used
        to count tokens and to drop padding for variable-length attention), all of shape
        (batch, longest row).
    """
    longest = max(len(r["input_ids"]) for r in rows)
    shape = (len(rows), longest)
    input_ids = torch.full(shape, pad_token_id, dtype=torch.long)
    labels = torch.full(shape, IGNORE_INDEX, dtype=torch.long)
    position_ids = torch.zeros(shape, dtype=torch.long)
    segment_ids = torch.zeros(shape, dtype=torch.long)
    attention_mask = torch.zeros(shape, dtype=torch.long)
    for i, r in enumerate(rows):
        n = len(r["input_ids"])
        input_ids[i, :n] = torch.tensor(r["input_ids"])
        labels[i, :n] = torch.tensor(r["labels"])
        position_ids[i, :n] = torch.tensor(r["position_ids"])
        lens = torch.tensor(r["seq_lens"])
        segment_ids[i, :n] = torch.repeat_interleave(torch.arange(len(lens)), lens)
        attention_mask[i, :n] = 1
        if n < longest:
            position_ids[i, n:] = torch.arange(longest - n)
            segment_ids[i, n:] = len(lens)
    return {
        "input_ids": input_ids,
        "labels": labels,
        "position_ids": position_ids,
        "segment_ids": segment_ids,
        "attention_mask": attention_mask,
    }


def block_causal_mask(segment_ids: torch.Tensor) -> torch.Tensor:
    """Boolean (batch, 1, L, L) mask: query ``q`` may attend key ``k`` iff ``k <= q`` and both
    belong to the same segment.

    Args:
        segment_ids: (batch, L) segment index of each token.

    Returns:
        True where attention is allowed.
    """
    length = segment_ids.shape[-1]
    causal = torch.ones(length, length, dtype=torch.bool, device=segment_ids.device).tril()
    same = segment_ids[:, :, None] == segment_ids[:, None, :]
    return (same & causal)[:, None]


def varlen_inputs(batch: dict[str, torch.Tensor]) -> dict[str, Any]:
    """Flatten a packed micro-batch into one padding-free row for variable-length kernels.

    Args:
        batch: From :func:`collate_packed`.

    Returns:
        ``input_ids``, ``labels`` and ``position_ids`` of shape (1, real tokens), and the
        FlashAttention boundaries ``cu_seq_lens_q``/``cu_seq_lens_k`` (int32 cumulative
        lengths, starting at 0) and ``max_length_q``/``max_length_k`` (longest example).
    """
    return _flatten(batch)[0]


def _flatten(batch: dict[str, torch.Tensor]) -> tuple[dict[str, Any], list[int]]:
    """:func:`varlen_inputs`, and its boundaries as Python ints.

    Three device-to-host waits per micro-batch, whatever the model's depth: the kept
    positions (one ``nonzero`` serves every field, where a boolean index would wait once
    per field), the example starts, and the boundaries (``max_length`` derives from them).
    """
    keep = torch.nonzero(batch["attention_mask"].flatten()).flatten()
    position_ids = batch["position_ids"].flatten()[keep]
    starts = torch.nonzero(position_ids == 0).flatten()
    # new_full fills on the device; torch.tensor(..., device=...) would copy, and wait.
    cu_seq_lens = torch.cat([starts, starts.new_full((1,), position_ids.numel())])
    cu_seq_lens = cu_seq_lens.to(torch.int32)
    bounds = cu_seq_lens.tolist()
    max_length = max(end - start for start, end in zip(bounds[:-1], bounds[1:], strict=True))
    inputs = {
        "input_ids": batch["input_ids"].flatten()[keep][None],
        "labels": batch["labels"].flatten()[keep][None],
        "position_ids": position_ids[None],
        "cu_seq_lens_q": cu_seq_lens,
        "cu_seq_lens_k": cu_seq_lens,
        "max_length_q": max_length,
        "max_length_k": max_length,
    }
    return inputs, bounds


def is_varlen_implementation(attn_implementation: str) -> bool:
    """Whether an attention implementation takes flattened rows with sequence boundaries."""
    return "flash" in attn_implementation or attn_implementation == PACKED_SDPA


def packed_sdpa_attention(
    module: torch.nn.Module,
    query: torch.Tensor,
    key: torch.Tensor,
    value: torch.Tensor,
    attention_mask: torch.Tensor | None,
    dropout: float = 0.0,
    scaling: float | None = None,
    cu_seq_lens_q: torch.Tensor | None = None,
    packed_seq_bounds: Sequence[int] | None = None,
    **kwargs: Any,
) -> tuple[torch.Tensor, None]:
    """SDPA per packed example; transformers' SDPA for everything else.

    With ``cu_seq_lens_q`` (a flattened packed batch of size 1, see :func:`varlen_inputs`)
    each example's slice attends causally to itself only, through the fused kernels that
    ``is_causal`` enables; ``attention_mask`` is then unused. Without it, the call is
    transformers' ``sdpa_attention_forward`` with the mask it was given.

    The slices are cut at ``packed_seq_bounds`` (:data:`PACKED_BOUNDS`, which
    :func:`packed_model_inputs` passes), host ints computed once per micro-batch; only a
    caller that gives ``cu_seq_lens_q`` alone pays a device-to-host copy, in every layer.

    Args:
        module: The attention layer (for its key/value head grouping).
        query: (batch, heads, length, head dim).
        key: (batch, key/value heads, length, head dim).
        value: Like ``key``.
        attention_mask: The mask transformers prepared (used only without boundaries).
        dropout: Attention dropout probability.
        scaling: Score scale (None: 1/sqrt(head dim)).
        cu_seq_lens_q: Cumulative example lengths, starting at 0.
        packed_seq_bounds: The same boundaries as Python ints.
        **kwargs: Passed on to transformers' SDPA.

    Returns:
        The attention output, (batch, length, heads, head dim), and no weights.
    """
    from transformers.integrations.sdpa_attention import repeat_kv, sdpa_attention_forward

    if cu_seq_lens_q is None:
        return sdpa_attention_forward(
            module, query, key, value, attention_mask, dropout=dropout, scaling=scaling, **kwargs
        )
    assert query.shape[0] == 1, "packed inputs are flattened into one row"
    groups = getattr(module, "num_key_value_groups", 1)
    key, value = repeat_kv(key, groups), repeat_kv(value, groups)
    bounds = cu_seq_lens_q.tolist() if packed_seq_bounds is None else packed_seq_bounds
    parts = [
        F.scaled_dot_product_attention(
            query[:, :, start:end],
            key[:, :, start:end],
            value[:, :, start:end],
            dropout_p=dropout,
            is_causal=True,
            scale=scaling,
        )
        for start, end in zip(bounds[:-1], bounds[1:], strict=True)
    ]
    return torch.cat(parts, dim=2).transpose(1, 2).contiguous(), None


def _packed_sdpa_mask(**kwargs: Any) -> Any:
    """SDPA's mask when there is a padding mask; none for flattened packed rows, whose
    boundaries reach :func:`packed_sdpa_attention` directly (an (N, N) mask is never built).
    transformers passes every argument by keyword."""
    from transformers.masking_utils import sdpa_mask

    if kwargs.get("attention_mask") is None:
        return None
    return sdpa_mask(**kwargs)


def use_packed_sdpa(model: Any) -> bool:
    """Switch an SDPA model to :data:`PACKED_SDPA` (registering it with transformers once).

    The switch changes no result: calls without sequence boundaries still run transformers'
    SDPA, and the implementation name is not saved with the model. Call
    ``model.set_attn_implementation("sdpa")`` to switch back.

    Returns:
        False when this transformers has no attention registry or cannot switch a loaded
        model's implementation (the caller then keeps SDPA with a block mask).
    """
    try:
        from transformers import AttentionInterface, AttentionMaskInterface
    except ImportError:
        return False
    if not hasattr(model, "set_attn_implementation"):
        return False
    if PACKED_SDPA not in AttentionInterface._global_mapping:
        AttentionInterface.register(PACKED_SDPA, packed_sdpa_attention)
        AttentionMaskInterface.register(PACKED_SDPA, _packed_sdpa_mask)
    model.set_attn_implementation(PACKED_SDPA)
    return True


def packed_model_inputs(
    batch: dict[str, torch.Tensor], attn_implementation: str, dtype: torch.dtype
) -> tuple[dict[str, Any], torch.Tensor]:
    """Model keyword arguments and aligned labels for a packed micro-batch.

    Args:
        batch: From :func:`collate_packed`.
        attn_implementation: The model's ``config._attn_implementation``.
        dtype: The model's dtype (for an additive mask).

    Returns:
        The keyword arguments for the model's forward (without labels) and the labels,
        shaped like the ``input_ids`` passed. For :data:`PACKED_SDPA` the keywords also
        hold the boundaries as host ints (:data:`PACKED_BOUNDS`), so no layer copies them.

    Raises:
        ValueError: For an attention implementation that can keep packed examples apart
            neither by a 4D mask nor by sequence boundaries.
    """
    if is_varlen_implementation(attn_implementation):
        flat, bounds = _flatten(batch)
        labels = flat.pop("labels")
        if attn_implementation == PACKED_SDPA:  # FlashAttention gets exactly its own keywords
            flat[PACKED_BOUNDS] = bounds
        return flat, labels
    common = {"input_ids": batch["input_ids"], "position_ids": batch["position_ids"]}
    allowed = block_causal_mask(batch["segment_ids"])
    if attn_implementation in _BOOL_MASK_IMPLEMENTATIONS:
        return {**common, "attention_mask": allowed}, batch["labels"]
    if attn_implementation in _ADDITIVE_MASK_IMPLEMENTATIONS:
        additive = torch.zeros(allowed.shape, dtype=dtype, device=allowed.device)
        additive.masked_fill_(~allowed, torch.finfo(dtype).min)
        return {**common, "attention_mask": additive}, batch["labels"]
    raise ValueError(
        f"data.packing=true cannot keep examples apart with model.attn_implementation="
        f"{attn_implementation!r}; use sdpa, eager or flash_attention_2, or set data.packing=false"
    )
