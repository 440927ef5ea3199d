"""Seed code snippets for OSS-Instruct, from the standard library, a directory or a dataset.

Snippet selection follows Magicoder's ``generate_data.py`` exactly, so the same documents give
the same seeds as the paper's data:

* the first ``max_considered_docs`` documents are considered (``split="train[:N]"`` there);
* documents are processed in chunks of ``chunk_size`` (1000); at the start of each chunk the
  random generator is seeded with ``seed + <index of the chunk's first document>``, then for
  each document a start line is drawn with ``random.choice(range(n_lines))`` and a length with
  ``random.randint(min_lines, max_lines)``; the snippet is those consecutive lines;
* the snippets are shuffled as ``datasets.Dataset.shuffle(seed=seed)`` does (a NumPy
  ``default_rng(seed).permutation``), and a snippet's position after the shuffle is its
  ``index``; the position of its document in the source is its ``raw_index``.

So each snippet is reproducible from the seed and its document's index (and, as in the paper,
the line counts of the earlier documents of its chunk; ``chunk_size=1`` makes every document
independent). Empty and undecodable documents get no snippet (the paper's code would fail on
them) but keep their place in ``raw_index``.
"""

from __future__ import annotations

import hashlib
import itertools
import json
import logging
import platform
import random
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

log = logging.getLogger(__name__)

EXTENSION_LANGS: dict[str, str] = {
    "py": "python",
    "ts": "typescript",
    "tsx": "typescript",
    "cs": "csharp",
    "rs": "rust",
    "swift": "swift",
    "php": "php",
    "java": "java",
    "cpp": "cpp",
    "cc": "cpp",
    "cxx": "cpp",
    "hpp": "cpp",
    "hh": "cpp",
    "h": "c",
    "c": "c",
    "sh": "shell",
    "bash": "shell",
    "js": "javascript",
    "go": "go",
    "rb": "ruby",
    "kt": "kotlin",
    "scala": "scala",
    "lua": "lua",
    "r": "r",
    "jl": "julia",
    "sql": "sql",
}
"""File extension (lower case, no dot) → language tag; the paper's nine languages and more."""


@dataclass(frozen=True)
class Document:
    """One source document.

    Attributes:
        raw_index: Position of the document in its source (its dataset row index).
        text: The document's text, or None when it could not be decoded.
        lang: Language tag.
    """

    raw_index: int
    text: str | None
    lang: str


def extract_snippet(document: str, rng: random.Random, min_lines: int, max_lines: int) -> str:
    """Pick ``randint(min_lines, max_lines)`` consecutive lines from a random start line.

    The draws are the paper's, in the paper's order: ``rng.choice(range(n_lines))`` for the
    start line, then ``rng.randint(min_lines, max_lines)`` for the length (cut at the end of
    the document). Line endings are kept.

    Args:
        document: Source text with at least one line.
        rng: The random generator (advanced by two draws).
        min_lines: Fewest lines to take.
        max_lines: Most lines to take.

    Returns:
        The snippet.

    Raises:
        ValueError: When the document is empty.
    """
    lines = document.splitlines(keepends=True)
    if not lines:
        raise ValueError("cannot take a snippet from an empty document")
    start = rng.choice(range(len(lines)))
    n_lines = rng.randint(min_lines, max_lines)
    return "".join(lines[start : start + n_lines])


def extract_snippets(
    documents: Iterable[Document],
    seed: int,
    min_lines: int = 1,
    max_lines: int = 15,
    chunk_size: int = 1000,
) -> Iterator[dict[str, Any]]:
    """Yield one snippet row per non-empty document, seeded per chunk as the paper does.

    Args:
        documents: Documents in source order; their ``raw_index`` must count up from 0.
        seed: Base seed.
        min_lines: Fewest lines per snippet.
        max_lines: Most lines per snippet.
        chunk_size: Documents per reseeding of the generator.

    Yields:
        ``{"raw_index", "lang", "seed"}`` where ``seed`` is the snippet text.
    """
    rng = random.Random()
    for doc in documents:
        if doc.raw_index % chunk_size == 0:
            rng.seed(seed + doc.raw_index)
        if not doc.text:
            continue
        snippet = extract_snippet(doc.text, rng, min_lines, max_lines)
        yield {"raw_index": doc.raw_index, "lang": doc.lang, "seed": snippet}


def shuffle_permutation(n: int, seed: int) -> np.ndarray:
    """The order ``datasets.Dataset.shuffle(seed=seed)`` gives ``n`` rows."""
    return np.random.default_rng(seed).permutation(n)


def config_fingerprint(obj: Any) -> str:
    """Short hash of a JSON-able description (file names carry it)."""
    return hashlib.sha256(json.dumps(obj, sort_keys=True, default=str).encode()).hexdigest()[:10]


@dataclass
class SeedSource:
    """Where seed documents come from, and how snippets are cut from them.

    Attributes:
        name: Short name, used in file names.
        seed: Base seed (the paper's 976).
        min_lines: Fewest lines per snippet.
        max_lines: Most lines per snippet.
        max_considered_docs: Consider only the first N documents (None: all).
        chunk_size: Documents per reseeding (the paper's 1000).
        shuffle: Shuffle snippets as the paper does before numbering them.
    """

    name: str
    seed: int = 976
    min_lines: int = 1
    max_lines: int = 15
    max_considered_docs: int | None = None
    chunk_size: int = 1000
    shuffle: bool = True

    def documents(self) -> Iterator[Document]:
        """Yield the source's documents in a stable order, ``raw_index`` counting from 0."""
        raise NotImplementedError

    def identity(self) -> dict[str, Any]:
        """What determines the documents (beyond the snippet settings)."""
        raise NotImplementedError

    def check(self) -> None:
        """Raise on bad settings before anything is read."""
        if not 1 <= self.min_lines <= self.max_lines:
            raise ValueError(
                f"seeds.min_lines={self.min_lines}, seeds.max_lines={self.max_lines}: need "
                "1 <= min_lines <= max_lines"
            )
        if self.chunk_size < 1:
            raise ValueError(f"seeds.chunk_size={self.chunk_size} must be at least 1")
        if self.max_considered_docs is not None and self.max_considered_docs < 1:
            raise ValueError(
                f"seeds.max_considered_docs={self.max_considered_docs} must be positive or null"
            )

    def fingerprint(self) -> str:
        """Hash of everything that determines the snippets and their order."""
        settings = {key: getattr(self, key) for key in _SNIPPET_KEYS}
        return config_fingerprint({"kind": type(self).__name__, **self.identity(), **settings})

    def snippets(self) -> list[dict[str, Any]]:
        """All seed rows ``{"index", "raw_index", "lang", "seed"}``, ordered by ``index``."""
        self.check()
        docs = itertools.islice(self.documents(), self.max_considered_docs)
        rows = list(
            extract_snippets(docs, self.seed, self.min_lines, self.max_lines, self.chunk_size)
        )
        if not rows:
            raise ValueError(
                f"seed source {self.name!r} ({self.identity()}) yielded no documents; check "
                "its path, glob or dataset settings"
            )
        order = shuffle_permutation(len(rows), self.seed) if self.shuffle else range(len(rows))
        log.info("Seeds %s: %d snippets", self.name, len(rows))
        return [{"index": i, **rows[int(j)]} for i, j in enumerate(order)]


_SNIPPET_KEYS = ("seed", "min_lines", "max_lines", "max_considered_docs", "chunk_size", "shuffle")


@dataclass
class StdlibSeeds(SeedSource):
    """The Python standard library's sources (offline, the default).

    Attributes:
        lang: Language tag of every snippet.
    """

    lang: str = "python"

    def identity(self) -> dict[str, Any]:
        # The library's contents follow the interpreter's version, not where it is installed.
        return {"stdlib": platform.python_version(), "lang": self.lang}

    def documents(self) -> Iterator[Document]:
        from magicoder.data.stdlib import read_source, stdlib_files

        for raw_index, path in enumerate(stdlib_files()):
            yield Document(raw_index, read_source(path), self.lang)


@dataclass
class LocalSeeds(SeedSource):
    """Source files under a directory, the language read from each file's extension.

    Attributes:
        root: The directory.
        glob: Files to take, relative to ``root`` (sorted by path).
        lang: Force one language tag (None: from the extension; files with an unknown
            extension are left out).
        extensions: Extra or overriding extension → language entries.
    """

    root: str = "???"
    glob: str = "**/*"
    lang: str | None = None
    extensions: dict[str, str] = field(default_factory=dict)

    def _langs(self) -> dict[str, str]:
        return {**EXTENSION_LANGS, **{k.lower().lstrip("."): v for k, v in self.extensions.items()}}

    def check(self) -> None:
        super().check()
        if not Path(self.root).expanduser().is_dir():
            raise FileNotFoundError(
                f"seeds.root={self.root!r} is not a directory; point it at a source tree"
            )

    def identity(self) -> dict[str, Any]:
        root = str(Path(self.root).expanduser().resolve())
        return {"root": root, "glob": self.glob, "lang": self.lang, "extensions": self._langs()}

    def files(self) -> list[tuple[Path, str]]:
        """``(path, language)`` of every matching file with a known language, sorted."""
        root = Path(self.root).expanduser()
        langs = self._langs()
        out = []
        for path in sorted(p for p in root.glob(self.glob) if p.is_file()):
            lang = self.lang or langs.get(path.suffix.lower().lstrip("."))
            if lang is not None:
                out.append((path, lang))
        return out

    def documents(self) -> Iterator[Document]:
        for raw_index, (path, lang) in enumerate(self.files()):
            try:
                text: str | None = path.read_text(encoding="utf-8")
            except (UnicodeDecodeError, OSError):
                text = None
            yield Document(raw_index, text, lang)


@dataclass
class HubSeeds(SeedSource):
    """A ``datasets`` dataset, streamed (the paper: ``bigcode/starcoderdata``, one language
    per ``data_dir``).

    Attributes:
        path: Dataset name or local dataset script/dir (``json`` with ``data_files`` works too).
        data_dir: Subdirectory to load (starcoderdata: the language, e.g. ``python``).
        data_files: Files to load (for local ``json``/``parquet`` datasets).
        split: Split to stream.
        revision: Revision to pin.
        text_field: Column holding the document text.
        lang: Language tag (None: ``data_dir``).
    """

    path: str = "bigcode/starcoderdata"
    data_dir: str | None = "python"
    data_files: str | list[str] | None = None
    split: str = "train"
    revision: str | None = None
    text_field: str = "content"
    lang: str | None = None

    def _lang(self) -> str:
        lang = self.lang or self.data_dir
        if not lang:
            raise ValueError(
                f"seeds for dataset {self.path!r} have no language: set seeds.lang (or data_dir)"
            )
        return lang

    def check(self) -> None:
        super().check()
        self._lang()

    def identity(self) -> dict[str, Any]:
        return {
            "path": self.path,
            "data_dir": self.data_dir,
            "data_files": self.data_files,
            "split": self.split,
            "revision": self.revision,
            "text_field": self.text_field,
            "lang": self._lang(),
        }

    def documents(self) -> Iterator[Document]:
        import datasets

        try:
            ds = datasets.load_dataset(
                self.path,
                data_dir=self.data_dir,
                data_files=self.data_files,
                split=self.split,
                revision=self.revision,
                streaming=True,
            )
        except Exception as err:  # datasets raises many types for offline/missing data
            raise RuntimeError(
                f"could not stream seeds.path={self.path!r} (data_dir={self.data_dir!r}): {err}."
                " Offline, use seeds=local or seeds=stdlib"
            ) from err
        lang = self._lang()
        for raw_index, row in enumerate(ds):
            if self.text_field not in row:
                raise ValueError(
                    f"dataset {self.path!r} has no column seeds.text_field={self.text_field!r}; "
                    f"its columns are {sorted(row)}"
                )
            text = row[self.text_field]
            yield Document(raw_index, text if isinstance(text, str) else None, lang)
