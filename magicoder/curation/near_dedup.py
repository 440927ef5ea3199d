"""Near-duplicate removal with MinHash-LSH (datasketch).

Each row becomes the set of its token ``shingle``-grams; datasketch estimates Jaccard
similarity from MinHash signatures and its LSH index finds candidate pairs. Rows are taken in
order; a row whose estimated similarity to an earlier kept row reaches ``threshold`` is dropped.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from datasketch import MinHash, MinHashLSH

from magicoder.curation.decontamination import tokenize
from magicoder.curation.filters import Row, reject


def shingles(text: str, n: int) -> set[bytes]:
    """Distinct token ``n``-grams of ``text`` as bytes (the whole text when shorter)."""
    tokens = tokenize(text)
    if len(tokens) < n:
        return {" ".join(tokens).encode()} if tokens else set()
    return {" ".join(tokens[i : i + n]).encode() for i in range(len(tokens) - n + 1)}


def near_dedup(
    rows: Sequence[Row],
    fields: Sequence[str],
    threshold: float = 0.7,
    num_perm: int = 128,
    shingle: int = 5,
    seed: int = 1,
    batch_size: int = 2048,
) -> tuple[list[Row], list[Row]]:
    """Drop rows whose text is a near copy of an earlier kept row.

    Args:
        rows: Rows in order.
        fields: Fields whose text (joined) is compared.
        threshold: Estimated Jaccard similarity at which a row is a near duplicate.
        num_perm: MinHash permutations (more: better estimates, slower).
        shingle: Tokens per shingle.
        seed: MinHash seed.
        batch_size: Rows hashed per batch.

    Returns:
        ``(kept, rejected)``; reason ``"near duplicate (Jaccard ≈ 0.83)"`` with
        ``duplicate_of`` = the kept row's ``index``.
    """
    if not 0 < threshold <= 1:
        raise ValueError(f"near_dedup.threshold={threshold} must be in (0, 1]")
    lsh = MinHashLSH(threshold=threshold, num_perm=num_perm)
    signatures: dict[int, MinHash] = {}
    kept: list[Row] = []
    rejected: list[Row] = []
    for start in range(0, len(rows), batch_size):
        batch = rows[start : start + batch_size]
        sets = [shingles("\n".join(str(r.get(f) or "") for f in fields), shingle) for r in batch]
        hashes = MinHash.bulk(sets, num_perm=num_perm, seed=seed)
        for offset, (row, minhash) in enumerate(zip(batch, hashes, strict=True)):
            position = start + offset
            best: tuple[float, int] | None = None
            for candidate in lsh.query(minhash):
                similarity = float(minhash.jaccard(signatures[candidate]))
                if similarity >= threshold and (best is None or similarity > best[0]):
                    best = (similarity, candidate)
            if best is not None:
                first: Any = rows[best[1]].get("index", best[1])
                rejected.append(
                    reject(
                        row,
                        "near_dedup",
                        f"near duplicate (Jaccard ≈ {best[0]:.2f})",
                        duplicate_of=first,
                    )
                )
                continue
            lsh.insert(position, minhash)
            signatures[position] = minhash
            kept.append(row)
    return kept, rejected
