"""The paper's comment–function baseline data (arXiv 2312.02120 §4.2, Table 6).

The paper took the seed documents that OSS-Instruct-75K was generated from, found every
function in them with tree-sitter (9 languages) together with its comment, and trained
CodeLlama-Python-7B to continue a function from its signature and comment: 75,197 pairs,
first every pair whose function overlaps the row's seed snippet ("covered"), then a seeded
draw from the others. This module reproduces its repository's three scripts rule for rule:

- ``experiments/collect_seed_documents.py`` → :func:`collect_seed_documents` (the documents,
  from bigcode/starcoderdata, or bigcode/the-stack for Swift);
- ``experiments/extract_function_comment_pairs.py`` → :func:`document_functions` (functions,
  their docstrings, covered or not);
- ``experiments/train_comment_code_pairs.py`` → :func:`completion_row` (prompt/completion
  rows) and :func:`select_pairs` (covered pairs, then the seeded draw).

The grammars come from the ``comment-pairs`` extra (``pip install 'magicoder[comment-pairs]'``).
They are newer than the ones the paper built in late 2023; where they parse differently
(Rust doc comments now end with their newline) :func:`comment_spans` restores the old spans.
"""

from __future__ import annotations

import functools
import importlib
import logging
import random
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from magicoder.data.sources import completion_pair
from magicoder.io import JsonlAppender, repair_jsonl

log = logging.getLogger(__name__)

EXTRA = "comment-pairs"
"""The pip extra that installs the tree-sitter grammars."""
N_PAIRS = 75197
"""Pairs the paper trained on (its script's ``n_samples``)."""
DRAW_SEED = 42
"""Seed of the paper's draw: its script seeds with ``TrainingArguments.seed``, whose default
is 42, and its training commands set no ``--seed``."""
MAX_DOCUMENTS = 150000
"""Documents per language the paper loaded (``train[:150000]``): OSS-Instruct's ``raw_index``
points into them."""
METADATA_PREFIXES = ("<reponame>", "<filename>")
"""A first line starting with one of these is starcoderdata's metadata, not code."""

FUNCTION_TYPES: dict[str, tuple[str, ...]] = {
    "bash": ("function_definition",),
    "cpp": ("function_definition",),
    "csharp": ("method_declaration",),
    "java": ("method_declaration",),
    "php": ("method_declaration",),
    "python": ("function_definition",),
    "rust": ("function_item",),
    "swift": ("function_declaration",),
    "typescript": ("function_declaration", "method_definition"),
}
"""Per grammar, the node types the paper counts as functions (PHP: methods only, as there)."""
COMMENT_TYPES: dict[str, tuple[str, ...]] = {
    "bash": ("comment",),
    "cpp": ("comment",),
    "csharp": ("comment",),
    "java": ("comment", "block_comment", "line_comment"),
    "php": ("comment",),
    "python": ("comment",),
    "rust": ("line_comment", "block_comment"),
    "swift": ("comment", "multiline_comment"),
    "typescript": ("comment",),
}
"""Per grammar, the paper's comment node types. Java's ``comment`` no longer exists in
today's grammar (only ``line_comment`` and ``block_comment``); it is skipped."""
GRAMMARS: dict[str, tuple[str, str]] = {
    "bash": ("tree_sitter_bash", "language"),
    "cpp": ("tree_sitter_cpp", "language"),
    "csharp": ("tree_sitter_c_sharp", "language"),
    "java": ("tree_sitter_java", "language"),
    "php": ("tree_sitter_php", "language_php"),
    "python": ("tree_sitter_python", "language"),
    "rust": ("tree_sitter_rust", "language"),
    "swift": ("tree_sitter_swift", "language"),
    "typescript": ("tree_sitter_typescript", "language_typescript"),
}
"""Per grammar, the module and function of its pip package (PHP with its HTML text, and
TypeScript without TSX, as the paper's grammar builds were)."""
LANGS = ("python", "typescript", "csharp", "rust", "swift", "php", "java", "cpp", "shell")
"""OSS-Instruct's ``lang`` values; ``shell`` is parsed with the bash grammar."""


def grammar_of(lang: str) -> str:
    """The grammar that parses OSS-Instruct's ``lang`` (``shell`` → ``bash``)."""
    grammar = "bash" if lang == "shell" else lang
    if grammar not in GRAMMARS:
        raise ValueError(f"language {lang!r} has no grammar here; the paper's are {list(LANGS)}")
    return grammar


@functools.cache
def _parser_and_query(grammar: str) -> tuple[Any, Any]:
    """A parser for ``grammar`` and the query that finds its functions and comments."""
    import tree_sitter

    module_name, function = GRAMMARS[grammar]
    try:
        module = importlib.import_module(module_name)
    except ImportError as err:
        package = module_name.replace("_", "-")
        raise ImportError(
            f"parsing {grammar} needs the tree-sitter grammar package {package}: "
            f"pip install 'magicoder[{EXTRA}]'"
        ) from err
    language = tree_sitter.Language(getattr(module, function)())
    # The paper walks every node in Python; a query finds the same nodes in C, 2.5 times as
    # fast on standard-library files (the tests check both find them, in the same order).
    patterns = [f"({kind}) @function" for kind in FUNCTION_TYPES[grammar]]
    patterns += [
        f"({kind}) @comment"
        for kind in COMMENT_TYPES[grammar]
        if language.id_for_node_kind(kind, True) is not None
    ]
    query = tree_sitter.Query(language, " ".join(patterns))
    return tree_sitter.Parser(language), query


# The paper's text rules, written anew with the same behaviour.


def strip_comment_delimiters(comment: str) -> str:
    """Strip C-style comment markers line by line (the paper's
    ``strip_c_style_comment_delimiters``).

    Each line is stripped of whitespace, then of a trailing ``*/``, then of one leading marker,
    the first that matches of ``*``, ``/**``, ``/*``, ``///``, ``//``, and of whitespace again.
    Other markers (``#``) stay.
    """
    cleaned = []
    for line in comment.split("\n"):
        line = line.strip().removesuffix("*/")
        for marker in ("*", "/**", "/*", "///", "//"):
            if line.startswith(marker):
                line = line[len(marker) :]
                break
        cleaned.append(line.strip())
    return "\n".join(cleaned)


def docstring_summary(docstring: str) -> str:
    """The paper's ``get_docstring_summary``: the text before the first blank line; without
    one, the text before the first ``@`` (JavaDoc's ``@param``); otherwise all of it."""
    if "\n\n" in docstring:
        return docstring.split("\n\n")[0]
    if "@" in docstring:
        return docstring[: docstring.index("@")]
    return docstring


def drop_metadata_line(text: str) -> str:
    """Drop a first line that starts with ``<reponame>`` or ``<filename>`` (a text that is
    only such a line, with no newline, becomes empty)."""
    if text.startswith(METADATA_PREFIXES):
        return text.partition("\n")[2]
    return text


def seed_lines(content: str, seed: str) -> range:
    """The 1-based lines of ``content`` that the seed snippet is, at its first occurrence.

    Lines are split with ``str.splitlines(keepends=True)`` on both sides, as the paper does;
    an empty seed is found at line 1 and covers no line.

    Raises:
        ValueError: When the seed is not a run of whole lines of the content.
    """
    lines = content.splitlines(keepends=True)
    wanted = seed.splitlines(keepends=True)
    for i in range(len(lines) - len(wanted) + 1):
        if lines[i : i + len(wanted)] == wanted:
            return range(i + 1, i + len(wanted) + 1)
    raise ValueError(
        "the seed snippet is not a run of whole lines of its document; seed documents come "
        "from collect_seed_documents, which keeps each OSS-Instruct seed with its document"
    )


# Spans of the parse tree, in the paper's terms: bytes, and 1-based first and last lines.


@dataclass(frozen=True)
class Span:
    """A node's (or a comment group's) text and position.

    Attributes:
        text: Its source text.
        start_byte: Offset of its first byte in the encoded document.
        end_byte: Offset just after its last byte.
        first_line: 1-based line it starts on.
        last_line: 1-based line it ends on.
    """

    text: str
    start_byte: int
    end_byte: int
    first_line: int
    last_line: int


def _span(node: Any, code: bytes) -> Span:
    return Span(
        code[node.start_byte : node.end_byte].decode("utf-8"),
        node.start_byte,
        node.end_byte,
        node.start_point[0] + 1,
        node.end_point[0] + 1,
    )


def comment_spans(nodes: Iterable[Any], code: bytes) -> list[Span]:
    """Comment nodes as spans, each once, in document order.

    A comment that ends with its line break (today's Rust grammar ends ``///`` doc comments
    so; its late-2023 version, which the paper built, ended them before it, as every other
    grammar here does) is cut before the break, so it groups and attaches as the paper's did.
    """
    spans: dict[tuple[int, int], Span] = {}
    for node in nodes:
        span = _span(node, code)
        if span.text.endswith("\n"):
            span = Span(
                span.text[:-1],
                span.start_byte,
                span.end_byte - 1,
                span.first_line,
                span.last_line - 1,
            )
        spans.setdefault((span.start_byte, span.end_byte), span)
    return sorted(spans.values(), key=lambda s: s.start_byte)


def _only_whitespace(text: str) -> bool:
    # The paper removes exactly these four characters, not every str.isspace() one.
    return not text.replace("\n", "").replace(" ", "").replace("\r", "").replace("\t", "")


def group_comments(comments: Sequence[Span], code: bytes) -> list[Span]:
    """Merge comments on consecutive lines into groups, as the paper does.

    Comments are ordered by their last line (ties keep document order); a comment joins the
    previous one's group when only spaces, tabs and line breaks, exactly one ``\\n`` among them,
    lie between. A group's text is its comments' texts joined by ``\\n``.
    """
    groups: list[list[Span]] = []
    ordered = sorted(comments, key=lambda s: s.last_line)
    for previous, comment in zip([None, *ordered], ordered, strict=False):
        if previous is not None:
            between = code[previous.end_byte : comment.start_byte].decode("utf-8")
            if _only_whitespace(between) and between.count("\n") == 1:
                groups[-1].append(comment)
                continue
        groups.append([comment])
    return [
        Span(
            "\n".join(c.text for c in group),
            group[0].start_byte,
            group[-1].end_byte,
            group[0].first_line,
            group[-1].last_line,
        )
        for group in groups
    ]


def python_docstring(function: Any, code: bytes) -> str:
    """The paper's Python docstring of a ``function_definition`` node: the first expression
    statement of its block that is a string (whichever statement it is), its quotes stripped
    with ``strip('"').strip("'")`` (string prefixes such as ``r`` stay), then
    :func:`strip_comment_delimiters` and :func:`docstring_summary`. ``""`` without one."""
    docstring = ""
    for block in function.children:
        if block.type != "block":
            continue
        strings = [
            statement
            for statement in block.children
            if statement.type == "expression_statement" and statement.children[0].type == "string"
        ]
        if strings:
            text = _span(strings[0], code).text
            quoted = text.strip().strip('"').strip("'")
            docstring = docstring_summary(strip_comment_delimiters(quoted)).strip()
    return docstring


def comment_docstring(function: Span, groups: Sequence[Span], code: bytes) -> str:
    """The paper's docstring of a function in the other languages: the comment group that
    ends closest above the function's first line, when only whitespace (blank lines
    included) separates them; ``""`` otherwise."""
    above = [group for group in groups if group.last_line < function.first_line]
    if not above:
        return ""
    closest = above[-1]
    if not _only_whitespace(code[closest.end_byte : function.start_byte].decode("utf-8")):
        return ""
    return docstring_summary(strip_comment_delimiters(closest.text)).strip()


@dataclass(frozen=True)
class FunctionDoc:
    """One function of a seed document and its docstring.

    Attributes:
        function: The function's source text.
        docstring: Its summary (``""`` when it has none).
        covered: Whether its lines overlap the seed snippet's.
    """

    function: str
    docstring: str
    covered: bool


def document_functions(document: Mapping[str, Any]) -> list[FunctionDoc]:
    """Every function of one seed document, its docstring and whether the seed covers it.

    Functions come in the paper's order (depth first, outer before nested). The paper ran its
    extraction twice, once keeping covered functions and once the rest; ``covered`` tells
    the two apart in one pass.

    Args:
        document: A seed-document record: ``content``, ``seed`` and ``lang``.

    Raises:
        ValueError: For a language without a grammar, or a seed not found in the content.
        ImportError: When the language's grammar package is not installed.
    """
    import tree_sitter

    grammar = grammar_of(document["lang"])
    parser, query = _parser_and_query(grammar)
    content = document["content"]
    code = content.encode("utf-8")
    captures = tree_sitter.QueryCursor(query).captures(parser.parse(code).root_node)
    # Depth-first order, as the paper's recursive walk visits them.
    nodes = sorted(captures.get("function", []), key=lambda n: (n.start_byte, -n.end_byte))
    groups = group_comments(comment_spans(captures.get("comment", []), code), code)
    seed = seed_lines(content, drop_metadata_line(document["seed"]))
    functions = []
    for node in nodes:
        span = _span(node, code)
        covered = bool(seed) and span.first_line <= seed[-1] and seed[0] <= span.last_line
        if grammar == "python":
            docstring = python_docstring(node, code)
        else:
            docstring = comment_docstring(span, groups, code)
        functions.append(FunctionDoc(span.text, docstring, covered))
    return functions


def completion_row(function: str, docstring: str, lang: str) -> dict[str, str] | None:
    """The paper's training row of one function (its ``process_data``), or None.

    Empty docstrings and docstrings of one repeated character give None. Python: the code
    up to and including the closing quotes of its first triple-quoted string is the prompt
    (None without one). Other languages: the docstring's lines, each behind ``/// `` (``### ``
    for shell), a line break and the function's first line are the prompt; the rest of the
    function is the completion.
    """
    if lang == "python":
        return completion_pair(function, docstring)
    docstring = docstring.strip()
    if not docstring or docstring.count(docstring[0]) == len(docstring):
        return None
    prefix = "### " if lang == "shell" else "/// "
    first, *rest = function.strip().splitlines(keepends=True)
    comment = "".join(prefix + line for line in docstring.splitlines(keepends=True))
    return {"prompt": f"{comment}\n{first}", "completion": "".join(rest)}


def document_pairs(
    document: Mapping[str, Any],
) -> tuple[list[dict[str, str]], list[dict[str, str]]]:
    """The covered and the other training rows of one seed document, in function order."""
    covered: list[dict[str, str]] = []
    rest: list[dict[str, str]] = []
    for found in document_functions(document):
        row = completion_row(found.function, found.docstring, document["lang"])
        if row is not None:
            (covered if found.covered else rest).append(row)
    return covered, rest


def select_pairs(
    covered: Sequence[dict[str, Any]],
    rest: Sequence[dict[str, Any]],
    n: int | None = N_PAIRS,
    seed: int = DRAW_SEED,
) -> list[dict[str, Any]]:
    """The paper's selection: every covered pair, then ``n - len(covered)`` of the others
    drawn as ``random.seed(seed); random.sample(rest, k)`` draws them.

    The paper then shuffles the 75K once more; training shuffles every epoch here instead.

    Args:
        covered: Pairs whose function overlaps its seed snippet.
        rest: The other pairs, in document order.
        n: Pairs in all (the paper: 75,197); None keeps every pair, unsampled.
        seed: Seed of the draw.

    Raises:
        ValueError: When there are fewer pairs than ``n``, or more covered ones.
    """
    if n is None:
        return [*covered, *rest]
    if len(covered) > n or len(covered) + len(rest) < n:
        raise ValueError(
            f"n={n} comment–function pairs asked, but the seed documents give {len(covered)} "
            f"covered and {len(rest)} other pairs; lower n (null keeps them all) or collect "
            "the documents of every OSS-Instruct row"
        )
    return [*covered, *random.Random(seed).sample(list(rest), k=n - len(covered))]


# Seed documents.


def corpus_location(lang: str) -> tuple[str, str]:
    """The hub dataset and data_dir that hold OSS-Instruct's seed documents of ``lang``."""
    if lang == "swift":
        return "bigcode/the-stack", "data/swift"
    return "bigcode/starcoderdata", "c-sharp" if lang == "csharp" else lang


def hub_documents(lang: str, max_documents: int = MAX_DOCUMENTS) -> Sequence[Mapping[str, Any]]:
    """The first ``max_documents`` documents of ``lang`` on the hub (gated datasets: accept
    their terms and log in with ``huggingface-cli login`` first)."""
    import datasets

    name, data_dir = corpus_location(lang)
    return datasets.load_dataset(name, data_dir=data_dir, split=f"train[:{max_documents}]")


def collect_seed_documents(
    rows: Iterable[Mapping[str, Any]],
    out: Path,
    corpus: Callable[[str], Sequence[Mapping[str, Any]]] = hub_documents,
) -> int:
    """Write the seed document of every OSS-Instruct row, one jsonl line each.

    A line is the corpus row at the row's ``raw_index`` with every field kept, its
    ``content`` without a ``<reponame>``/``<filename>`` first line, and the row's ``seed``
    and ``lang``. Lines are appended and flushed one by one; a rerun continues after the
    lines already written.

    Args:
        rows: OSS-Instruct rows (``lang``, ``raw_index``, ``seed``), in the dataset's order.
        out: The jsonl file.
        corpus: ``lang`` → its documents, indexable by ``raw_index`` (:func:`hub_documents`).

    Returns:
        The number of lines written by this call.

    Raises:
        ValueError: When a row's seed is not in its document.
    """
    repair_jsonl(out)
    done = sum(1 for _ in out.open("rb")) if out.is_file() else 0
    documents: dict[str, Sequence[Mapping[str, Any]]] = {}
    with JsonlAppender(out) as appender:
        for i, row in enumerate(rows):
            if i < done:
                continue
            lang = row["lang"]
            if lang not in documents:
                log.info("Loading the %s seed documents", lang)
                documents[lang] = corpus(lang)
            record = dict(documents[lang][row["raw_index"]])
            if row["seed"] not in record["content"]:
                raise ValueError(
                    f"row {i}: its seed is not in document {row['raw_index']} of {lang}; the "
                    "corpus is not the one OSS-Instruct was generated from"
                )
            record["content"] = drop_metadata_line(record["content"])
            record["seed"], record["lang"] = row["seed"], lang
            appender.write(record)
    if done:
        log.info("%s: %d documents were already there, %d added", out, done, appender.written)
    return appender.written


def comment_function_pairs(
    documents: Iterable[Mapping[str, Any]],
) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """Covered and other completion rows of every seed document, in file order.

    Rows are ``{"prompt", "completion", "lang", "source"}``; ``source`` is the document's
    repository path (``max_stars_repo_path``) or, without one, its line in the file.
    """
    covered: list[dict[str, Any]] = []
    rest: list[dict[str, Any]] = []
    for number, document in enumerate(documents, 1):
        where = str(document.get("max_stars_repo_path") or f"document {number}")
        try:
            found = document_pairs(document)
        except ValueError as err:
            raise ValueError(f"seed document {number} ({where}): {err}") from err
        for rows, into in zip(found, (covered, rest), strict=True):
            into.extend({**row, "lang": document["lang"], "source": where} for row in rows)
    return covered, rest
