"""Data mixtures: named sources combined with weights, by examples or by tokens.

A :class:`Mixture` is itself a :class:`~magicoder.data.sources.Source`, so a stage's
``datasets:`` can hold one (a joint mix) beside or instead of plain sources, and sequential
schedules are simply stages in any order.
"""

from __future__ import annotations

import logging
import random
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from magicoder.data.sft import row_parts
from magicoder.data.sources import Source

log = logging.getLogger(__name__)

UNITS = ("examples", "tokens")


def row_size(row: Mapping[str, Any], count_tokens: Callable[[str], int] | None) -> int:
    """Size of a row in tokens (prompt + target); characters/4 without a tokenizer."""
    prompt, target, _ = row_parts(dict(row))
    text = prompt + target
    return count_tokens(text) if count_tokens else max(1, len(text) // 4)


def sample_to_budget(
    rows: list[dict[str, Any]], budget: float, sizes: list[int], rng: random.Random
) -> list[dict[str, Any]]:
    """Draw rows whose total size reaches ``budget``: whole passes, then a random remainder.

    Up-sampling repeats every row ``budget // total`` times before drawing the rest without
    replacement, so a weight of 2.5× a source's size means each row at least twice.

    Args:
        rows: The source's rows.
        budget: Target total size (examples: 1 per row; tokens: ``sizes``).
        sizes: Size of each row, aligned with ``rows``.
        rng: Seeded generator.

    Returns:
        The drawn rows, in a seeded random order.
    """
    total = sum(sizes)
    if total == 0 or budget <= 0:
        return []
    passes = int(budget // total)
    chosen = [i for _ in range(passes) for i in range(len(rows))]
    left = budget - passes * total
    order = list(range(len(rows)))
    rng.shuffle(order)
    for i in order:
        if left <= 0:
            break
        # Take a row when it fits, or when it lands closer to the budget than skipping would.
        if sizes[i] <= left or sizes[i] - left < left:
            chosen.append(i)
            left -= sizes[i]
    rng.shuffle(chosen)
    return [rows[i] for i in chosen]


@dataclass
class Mixture(Source):
    """A weighted mix of named sources.

    Attributes:
        sources: Name → source.
        weights: Name → share of the mix (normalised; missing names weigh 0). Empty keeps
            every source whole: the natural proportions of a plain joint mix.
        by: ``examples`` or ``tokens``: what the weights apportion.
        size: Total size of the mix in ``by`` units; None keeps the natural total of all
            sources (so weights re-balance without changing the amount of data).
        seed: Sampling seed: the same seed gives the same rows.
    """

    sources: dict[str, Source] = field(default_factory=dict)
    weights: dict[str, float] = field(default_factory=dict)
    by: str = "examples"
    size: int | None = None
    seed: int = 0
    count_tokens: Callable[[str], int] | None = None
    stats: dict[str, dict[str, int]] = field(default_factory=dict)

    def connect(self, tokenizer: Any) -> None:
        """Count tokens with the model's tokenizer (``by: tokens``), and bind the sources."""
        self.count_tokens = lambda text: len(tokenizer(text, add_special_tokens=False)["input_ids"])
        for source in self.sources.values():
            source.connect(tokenizer)

    def check(self) -> None:
        if self.by not in UNITS:
            raise ValueError(f"mixture by={self.by!r} is unknown; use one of {UNITS}")
        unknown = sorted(set(self.weights) - set(self.sources))
        if unknown:
            raise ValueError(
                f"mixture {self.name}: weights name unknown sources {unknown}; "
                f"sources are {sorted(self.sources)}"
            )
        if self.weights and (
            any(w < 0 for w in self.weights.values()) or not sum(self.weights.values()) > 0
        ):
            raise ValueError(
                f"mixture {self.name}: weights {dict(self.weights)} must be >= 0 and not all 0"
            )
        for source in self.sources.values():
            source.check()

    def load(self) -> list[dict[str, Any]]:
        self.check()
        loaded: dict[str, tuple[list[dict[str, Any]], list[int]]] = {}
        for name, source in self.sources.items():
            if self.weights and self.weights.get(name, 0) <= 0:
                continue
            rows = [{**row, "mixture_source": name} for row in source.load()]
            sizes = [row_size(row, self.count_tokens) if self.by == "tokens" else 1 for row in rows]
            loaded[name] = (rows, sizes)
        natural = {name: sum(sizes) for name, (_, sizes) in loaded.items()}
        weights = dict(self.weights) or natural
        total = self.size if self.size is not None else sum(natural.values())
        weight_sum = sum(weights.get(name, 0) for name in loaded)
        rng = random.Random(self.seed)
        mixed: list[dict[str, Any]] = []
        self.stats = {}
        for name, (rows, sizes) in loaded.items():
            budget = total * weights[name] / weight_sum
            drawn = sample_to_budget(rows, budget, sizes, rng)
            self.stats[name] = {
                "available_examples": len(rows),
                "examples": len(drawn),
                "tokens": sum(row_size(r, self.count_tokens) for r in drawn),
            }
            log.info(
                "mixture %s: %s → %d of %d examples (%d tokens%s), weight %.3g",
                self.name,
                name,
                len(drawn),
                len(rows),
                self.stats[name]["tokens"],
                "" if self.count_tokens else ", chars/4",
                weights[name] / weight_sum,
            )
            mixed.extend(drawn)
        rng.shuffle(mixed)
        return mixed
