"""Find benchmark strings in training rows: substring match (the paper) and n-gram overlap.

The paper checks, case-insensitively, whether any benchmark string occurs in a row's text,
one string at a time. :class:`SubstringMatcher` finds all of them in one pass over the row with
an Aho–Corasick automaton (pyahocorasick), so the cost per row no longer grows with the number
of benchmark strings. ``decontaminate.normalize`` picks the rule:

* ``whitespace`` (the default): both sides are lowercased and stripped of all whitespace, so
  re-indented, re-wrapped or CRLF copies (MBPP's solutions have CRLF line ends) are caught
  too; every match the paper's rule finds is still found (removing whitespace keeps
  substrings substrings). A row is reported with the string that ends first in it.
* ``lower``: lowercase only, on the same stripped benchmark strings.
* ``paper``: the original's rule exactly. Lowercase only; the benchmark strings as the
  original took them (``load_benchmark_strings(..., as_original=True)``: MBPP and DS-1000
  unstripped, its generic-solution list as written); and a row is reported with the first
  string in the original's scan order, benchmark by benchmark, so the per-benchmark counts
  are the original's too.

:class:`NgramMatcher` also catches edited copies: a row is contaminated by a benchmark string
when at least ``threshold`` of the string's token n-grams occur in the row.
"""

from __future__ import annotations

import re
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass

import ahocorasick

from magicoder.curation.benchmarks import BenchmarkString

NORMALIZATIONS = ("lower", "whitespace", "paper")
PAPER = "paper"
"""The ``normalize`` value that is the original's whole rule (see the module docstring)."""
_TOKEN_RE = re.compile(r"\w+|[^\w\s]")


def normalize(text: str, mode: str) -> str:
    """Text as the matcher compares it.

    Args:
        text: Any text.
        mode: ``lower`` or ``paper`` (lowercase) or ``whitespace`` (lowercase, all whitespace
            removed).
    """
    if mode in ("lower", PAPER):
        return text.lower()
    if mode == "whitespace":
        return "".join(text.lower().split())
    raise ValueError(f"decontaminate.normalize={mode!r} is unknown; use one of {NORMALIZATIONS}")


# The matchers take a `normalize` argument (the config key's name) that shadows the function.
_normalize = normalize


def row_text(row: dict, columns: Sequence[str]) -> str:
    """The text of a row that is searched: its ``columns`` joined by blank lines."""
    return "\n\n".join(str(row.get(c) or "") for c in columns)


@dataclass(frozen=True)
class Match:
    """A benchmark string found in a row.

    Attributes:
        string: The benchmark string.
        method: ``substring`` or ``ngram``.
        overlap: Fraction of the string's n-grams found (1.0 for substring matches).
    """

    string: BenchmarkString
    method: str
    overlap: float = 1.0

    def describe(self) -> dict[str, object]:
        """The ``matched`` record of a rejected row."""
        return {**self.string.describe(), "method": self.method, "overlap": round(self.overlap, 4)}


class SubstringMatcher:
    """All benchmark strings in one Aho–Corasick automaton.

    Args:
        strings: Benchmark strings, in the order :func:`naive_find` would try them.
        normalize: ``whitespace`` (default), ``lower`` or ``paper`` (see the module docstring).
    """

    def __init__(self, strings: Sequence[BenchmarkString], normalize: str = "whitespace"):
        self.mode = normalize
        self.automaton = ahocorasick.Automaton()
        self.by_key: dict[str, list[BenchmarkString]] = {}
        for s in strings:
            key = _normalize(s.text, normalize)
            if key:
                self.by_key.setdefault(key, []).append(s)
        # A key's rank is the position of its first string in `strings`: the paper's loop tries
        # strings in that order and stops at the first one the row contains.
        self.rank = {key: rank for rank, key in enumerate(self.by_key)}
        for key in self.by_key:
            self.automaton.add_word(key, key)
        self.n_patterns = len(self.by_key)
        if self.by_key:
            self.automaton.make_automaton()

    def find(self, text: str) -> Match | None:
        """The benchmark string found in ``text``: the one that ends first in ``text``, or with
        ``normalize="paper"`` the first in the order of ``strings`` (as :func:`naive_find`)."""
        if not self.by_key:
            return None
        found = (key for _, key in self.automaton.iter(_normalize(text, self.mode)))
        if self.mode == PAPER:
            key = min(found, key=self.rank.__getitem__, default=None)
        else:
            key = next(found, None)
        return None if key is None else Match(self.by_key[key][0], "substring")

    def find_all(self, text: str) -> list[BenchmarkString]:
        """Every benchmark string found in ``text`` (each once)."""
        if not self.by_key:
            return []
        keys = dict.fromkeys(key for _, key in self.automaton.iter(_normalize(text, self.mode)))
        return [s for key in keys for s in self.by_key[key]]


def naive_find(
    text: str, strings: Sequence[BenchmarkString], normalize: str = "whitespace"
) -> BenchmarkString | None:
    """The plain scan: for each benchmark string, ``in``. Reference for tests and benchmarks.

    With ``normalize="paper"`` and the strings in the original's order this is the original's
    search loop.

    Args:
        text: Row text.
        strings: Benchmark strings.
        normalize: As :class:`SubstringMatcher`.
    """
    haystack = _normalize(text, normalize)
    for s in strings:
        key = _normalize(s.text, normalize)
        if key and key in haystack:
            return s
    return None


def tokenize(text: str) -> list[str]:
    """Lowercased word and punctuation tokens (whitespace and layout ignored)."""
    return _TOKEN_RE.findall(text.lower())


def ngrams(tokens: Sequence[str], n: int) -> set[tuple[str, ...]]:
    """The distinct ``n``-grams of ``tokens`` (empty when there are fewer than ``n``)."""
    return {tuple(tokens[i : i + n]) for i in range(len(tokens) - n + 1)}


class NgramMatcher:
    """Flag rows that share most of a benchmark string's token n-grams.

    Args:
        strings: Benchmark strings; those shorter than ``n`` tokens are left to the substring
            matcher.
        n: n-gram length in tokens.
        threshold: Fraction of a string's distinct n-grams that must occur in the row.
    """

    def __init__(self, strings: Sequence[BenchmarkString], n: int = 10, threshold: float = 0.5):
        if n < 1:
            raise ValueError(f"decontaminate.ngram.n={n} must be at least 1")
        if not 0 < threshold <= 1:
            raise ValueError(f"decontaminate.ngram.threshold={threshold} must be in (0, 1]")
        self.n = n
        self.threshold = threshold
        self.strings: list[BenchmarkString] = []
        self.sizes: list[int] = []
        self.index: dict[tuple[str, ...], list[int]] = {}
        for s in strings:
            grams = ngrams(tokenize(s.text), n)
            if not grams:
                continue
            sid = len(self.strings)
            self.strings.append(s)
            self.sizes.append(len(grams))
            for gram in grams:
                self.index.setdefault(gram, []).append(sid)

    def find(self, text: str) -> Match | None:
        """The benchmark string with the largest overlap at or above the threshold, if any."""
        hits: Counter[int] = Counter()
        for gram in ngrams(tokenize(text), self.n):
            for sid in self.index.get(gram, ()):
                hits[sid] += 1
        best: Match | None = None
        for sid, count in hits.items():
            overlap = count / self.sizes[sid]
            if overlap >= self.threshold and (best is None or overlap > best.overlap):
                best = Match(self.strings[sid], "ngram", overlap)
        return best


def overlap_ratio(benchmark: str, text: str, n: int) -> float:
    """Fraction of ``benchmark``'s distinct token n-grams that occur in ``text``."""
    grams = ngrams(tokenize(benchmark), n)
    if not grams:
        return 0.0
    return len(grams & ngrams(tokenize(text), n)) / len(grams)


class Decontaminator:
    """Substring matching, then (optionally) n-gram overlap, over a row's ``columns``.

    Args:
        strings: Benchmark strings.
        columns: Row fields searched (joined by blank lines).
        normalize: Substring normalization (see :func:`normalize`).
        ngram_n: n-gram length, or None to skip n-gram matching.
        ngram_threshold: n-gram overlap threshold.
    """

    def __init__(
        self,
        strings: Sequence[BenchmarkString],
        columns: Sequence[str],
        normalize: str = "whitespace",
        ngram_n: int | None = None,
        ngram_threshold: float = 0.5,
    ):
        if not strings:
            raise ValueError(
                "no benchmark strings to decontaminate against; configure "
                "decontaminate.benchmarks or drop the decontaminate step"
            )
        self.columns = list(columns)
        self.substring = SubstringMatcher(strings, normalize)
        self.ngram = NgramMatcher(strings, ngram_n, ngram_threshold) if ngram_n else None

    def find(self, row: dict) -> Match | None:
        """The benchmark string a row contains, or None when the row is clean."""
        text = row_text(row, self.columns)
        match = self.substring.find(text)
        if match is None and self.ngram is not None:
            match = self.ngram.find(text)
        return match
