"""Mixture sampling: weights hold, seeds reproduce, up/down-sampling, by tokens."""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass

import pytest

from magicoder.data.mixture import Mixture, sample_to_budget
from magicoder.data.sources import Source


@dataclass
class Fixed(Source):
    """A source of ``n`` rows whose responses are ``length`` characters long."""

    n: int = 0
    length: int = 4

    def load(self) -> list[dict]:
        return [
            {"instruction": f"{self.name} {i}", "response": "x" * self.length, "lang": "python"}
            for i in range(self.n)
        ]


def mixture(**kwargs) -> Mixture:
    sources = {"a": Fixed(name="a", n=3000), "b": Fixed(name="b", n=1000)}
    return Mixture(name="mix", sources=sources, **kwargs)


def test_weights_hold_over_a_large_draw():
    rows = mixture(weights={"a": 0.25, "b": 0.75}, size=20_000, seed=1).load()
    counts = Counter(r["mixture_source"] for r in rows)
    assert len(rows) == 20_000
    assert counts["a"] / len(rows) == pytest.approx(0.25, abs=0.01)
    assert counts["b"] / len(rows) == pytest.approx(0.75, abs=0.01)


def test_same_seed_same_rows_other_seed_other_rows():
    kwargs = {"weights": {"a": 1, "b": 1}, "size": 1000}
    first = [r["instruction"] for r in mixture(seed=7, **kwargs).load()]
    assert first == [r["instruction"] for r in mixture(seed=7, **kwargs).load()]
    assert first != [r["instruction"] for r in mixture(seed=8, **kwargs).load()]


def test_upsampling_repeats_every_row_before_the_remainder():
    mix = mixture(weights={"a": 1, "b": 1}, size=6000, seed=0)
    rows = mix.load()
    b_rows = Counter(r["instruction"] for r in rows if r["mixture_source"] == "b")
    assert len(b_rows) == 1000  # every row of b appears
    assert set(b_rows.values()) == {3}  # 3000 of 1000 rows: exactly three passes
    assert mix.stats["b"]["available_examples"] == 1000
    assert mix.stats["b"]["examples"] == 3000


def test_empty_weights_keep_natural_proportions():
    rows = mixture().load()
    counts = Counter(r["mixture_source"] for r in rows)
    assert counts == {"a": 3000, "b": 1000}


def test_by_tokens_apportions_tokens_not_examples():
    sources = {
        "short": Fixed(name="short", n=2000, length=4),
        "long": Fixed(name="long", n=2000, length=36),
    }
    mix = Mixture(
        name="mix",
        sources=sources,
        weights={"short": 1, "long": 1},
        by="tokens",
        size=40_000,
        count_tokens=len,  # one token per character
    )
    mix.load()
    short, long = mix.stats["short"]["tokens"], mix.stats["long"]["tokens"]
    assert short == pytest.approx(20_000, rel=0.01)
    assert long == pytest.approx(20_000, rel=0.01)
    assert mix.stats["short"]["examples"] > 3 * mix.stats["long"]["examples"]


def test_zero_weight_drops_a_source():
    rows = mixture(weights={"a": 1, "b": 0}).load()
    assert {r["mixture_source"] for r in rows} == {"a"}


@pytest.mark.parametrize(
    "kwargs,match",
    [
        ({"weights": {"c": 1}}, "unknown sources"),
        ({"weights": {"a": -1, "b": 1}}, "must be >= 0"),
        ({"by": "bytes"}, "by='bytes'"),
    ],
)
def test_bad_mixture_settings_name_the_value(kwargs, match):
    with pytest.raises(ValueError, match=match):
        mixture(**kwargs).load()


def test_sample_to_budget_downsamples_without_repeats():
    import random

    rows = [{"i": i} for i in range(100)]
    drawn = sample_to_budget(rows, 40, [1] * 100, random.Random(0))
    assert len(drawn) == 40 and len({r["i"] for r in drawn}) == 40
