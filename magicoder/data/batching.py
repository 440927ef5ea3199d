"""Length-grouped batching: micro-batches of similar-length examples, in shuffled order.

Padding every micro-batch to its longest example wastes about half the tokens on the
standard-library pairs; grouping examples of similar length first cuts that waste without
changing what an example looks like (the non-packing alternative to
:mod:`magicoder.data.packing`). The scheme is the one Hugging Face's ``LengthGroupedSampler``
uses (shuffle, sort within "megabatches", then batch), rewritten here because that sampler
neither shards a global batch over ranks nor starts mid-epoch.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch

MEGABATCH_FACTOR = 50
"""Global batches per megabatch: larger groups lengths more tightly but shuffles less."""


def length_grouped_batches(
    lengths: Sequence[int],
    batch_size: int,
    seed: int,
    epoch: int = 0,
    rank: int = 0,
    world_size: int = 1,
    megabatch_factor: int = MEGABATCH_FACTOR,
) -> list[list[int]]:
    """This rank's micro-batches for one epoch, grouped by length.

    The epoch's seeded permutation is cut into megabatches of ``megabatch_factor`` global
    batches; each megabatch is sorted by length (longest first) and cut into global batches
    of ``batch_size * world_size`` examples; the order of all global batches is then shuffled
    with the same generator. Rank ``r`` takes examples ``r, r + world_size, ...`` of each
    global batch, so every rank gets the same number of batches of similar length, and the
    global batches do not depend on how many ranks share them. The last, partial global batch
    is trimmed to a multiple of ``world_size``: like the plain sampler, an epoch leaves out
    ``len(lengths) % world_size`` examples.

    Args:
        lengths: Token count of each example.
        batch_size: Examples per micro-batch and rank.
        seed: Shuffle seed; ``seed + epoch`` seeds the epoch.
        epoch: Epoch number.
        rank: This process's rank.
        world_size: Number of ranks.
        megabatch_factor: Global batches per sorted group.

    Returns:
        Lists of example indices, one per micro-batch, in training order.
    """
    if batch_size < 1 or world_size < 1 or megabatch_factor < 1:
        raise ValueError(
            f"batch_size={batch_size}, world_size={world_size} and megabatch_factor="
            f"{megabatch_factor} must all be >= 1"
        )
    if not 0 <= rank < world_size:
        raise ValueError(f"rank={rank} must be in [0, world_size={world_size})")
    g = torch.Generator().manual_seed(seed + epoch)
    n = len(lengths)
    order = torch.randperm(n, generator=g).tolist()
    global_batch = batch_size * world_size
    megabatch = global_batch * megabatch_factor
    global_batches: list[list[int]] = []
    for start in range(0, n, megabatch):
        # sorted() is stable, so equal lengths keep their random order.
        group = sorted(order[start : start + megabatch], key=lambda i: -lengths[i])
        global_batches.extend(
            group[b : b + global_batch] for b in range(0, len(group), global_batch)
        )
    shuffled = torch.randperm(len(global_batches), generator=g).tolist()
    batches = []
    for b in shuffled:
        usable = len(global_batches[b]) - len(global_batches[b]) % world_size
        if usable:
            batches.append(global_batches[b][rank:usable:world_size])
    return batches


def length_grouped_batch_count(n: int, batch_size: int, world_size: int = 1) -> int:
    """How many micro-batches :func:`length_grouped_batches` gives each rank per epoch."""
    global_batch = batch_size * world_size
    return n // global_batch + (n % global_batch >= world_size)


def padding_fraction(batches: Sequence[Sequence[int]], lengths: Sequence[int]) -> float:
    """Share of token slots that are padding when each batch is padded to its longest item.

    Args:
        batches: Index lists (micro-batches).
        lengths: Token count of each item.

    Returns:
        Padded slots over all slots (0 when there are none).
    """
    slots = sum(max(lengths[i] for i in b) * len(b) for b in batches if b)
    tokens = sum(lengths[i] for b in batches for i in b)
    return 1.0 - tokens / slots if slots else 0.0
