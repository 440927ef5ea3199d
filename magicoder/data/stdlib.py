"""The embedded code corpus: the Python standard library's own sources.

It serves two offline needs: training the tiny model's tokenizer, and the default training
data, docstring → function pairs (the paper's "comment–function pairs" baseline).
Everything here is deterministic for a given Python installation.
"""

from __future__ import annotations

import ast
import hashlib
import logging
import sysconfig
import textwrap
from collections.abc import Iterator
from pathlib import Path

log = logging.getLogger(__name__)

# Test suites, GUI toolkits and vendored packages are not the code style we want to learn
# from, and the test suites alone would dominate the corpus.
_EXCLUDED_PARTS = frozenset(
    {
        "test",
        "tests",
        "idle_test",
        "site-packages",
        "dist-packages",
        "lib2to3",
        "idlelib",
        "turtledemo",
        "tkinter",
        "ensurepip",
        "__pycache__",
        "pydoc_data",
        "encodings",
    }
)


def stdlib_dir() -> Path:
    """Directory holding the running interpreter's pure-Python standard library."""
    return Path(sysconfig.get_paths()["stdlib"])


def stdlib_files(max_files: int | None = None, root: Path | None = None) -> list[Path]:
    """List standard-library source files in a stable order.

    Args:
        max_files: Keep only the first N files of the sorted list (None keeps all).
        root: Library directory to scan; defaults to the running interpreter's.

    Returns:
        Sorted ``.py`` paths, excluding tests, GUI toolkits and vendored packages.
    """
    root = root or stdlib_dir()
    if not root.is_dir():
        raise FileNotFoundError(f"standard library directory {root} does not exist")
    files = sorted(
        p
        for p in root.rglob("*.py")
        if not _EXCLUDED_PARTS.intersection(p.relative_to(root).parts[:-1])
        and not p.name.startswith("test_")
    )
    return files[:max_files] if max_files is not None else files


def read_source(path: Path) -> str | None:
    """Read a source file as UTF-8, or None when it is not valid UTF-8."""
    try:
        return path.read_text(encoding="utf-8")
    except UnicodeDecodeError:
        return None


def iter_corpus(max_files: int | None = None) -> Iterator[str]:
    """Yield the text of each standard-library source file, in :func:`stdlib_files` order."""
    for path in stdlib_files(max_files):
        text = read_source(path)
        if text is not None:
            yield text


def _strip_docstring(func: ast.FunctionDef | ast.AsyncFunctionDef, lines: list[str]) -> str:
    """Source of ``func`` (decorators included) with its docstring statement removed."""
    first = min([d.lineno for d in func.decorator_list] + [func.lineno]) - 1
    last = func.end_lineno
    assert last is not None
    doc = func.body[0]
    assert doc.end_lineno is not None
    kept = lines[first : doc.lineno - 1] + lines[doc.end_lineno : last]
    # A docstring sharing its line with the signature (`def f(): "doc"`) cannot be cut out
    # by lines; such one-liners are not worth keeping anyway.
    return textwrap.dedent("".join(kept)).rstrip() + "\n"


def extract_pairs(
    source: str,
    module: str,
    *,
    min_doc_words: int = 4,
    min_body_lines: int = 2,
    max_body_lines: int = 60,
) -> list[dict[str, str]]:
    """Extract docstring → function pairs from one module's source.

    The docstring becomes the instruction and the function without its docstring the
    response, as in the paper's comment–function-pair baseline.

    Args:
        source: Python source text.
        module: Dotted module name, recorded as provenance.
        min_doc_words: Skip functions whose docstring has fewer words.
        min_body_lines: Skip functions whose code (docstring removed) is shorter.
        max_body_lines: Skip functions whose code is longer.

    Returns:
        Rows ``{"instruction", "response", "source", "module", "qualname", "lang"}``,
        in source order; empty when the source does not parse.
    """
    try:
        tree = ast.parse(source)
    except (SyntaxError, ValueError):
        return []
    lines = source.splitlines(keepends=True)
    rows: list[dict[str, str]] = []

    def visit(node: ast.AST, prefix: str) -> None:
        for child in ast.iter_child_nodes(node):
            if isinstance(child, ast.ClassDef):
                visit(child, f"{prefix}{child.name}.")
            elif isinstance(child, ast.FunctionDef | ast.AsyncFunctionDef):
                row = _pair(child, prefix)
                if row is not None:
                    rows.append(row)

    def _pair(func: ast.FunctionDef | ast.AsyncFunctionDef, prefix: str) -> dict | None:
        doc = ast.get_docstring(func)
        if not doc or len(doc.split()) < min_doc_words:
            return None
        if func.body[0].lineno == func.lineno:
            return None
        code = _strip_docstring(func, lines)
        n_lines = code.count("\n")
        if not min_body_lines + 1 <= n_lines <= max_body_lines + 1:
            return None
        return {
            "instruction": doc.strip(),
            "response": f"```python\n{code}```",
            "source": "stdlib",
            "module": module,
            "qualname": prefix + func.name,
            "lang": "python",
        }

    visit(tree, "")
    return rows


def stdlib_pairs(max_files: int | None = None, root: Path | None = None) -> list[dict[str, str]]:
    """Docstring → function pairs from the standard library, deduplicated, in a stable order.

    Args:
        max_files: Scan only the first N files (None scans all).
        root: Library directory; defaults to the running interpreter's.

    Returns:
        Instruction rows (see :func:`extract_pairs`), exact duplicates removed.
    """
    root = root or stdlib_dir()
    seen: set[str] = set()
    rows = []
    for path in stdlib_files(max_files, root):
        text = read_source(path)
        if text is None:
            continue
        module = ".".join(path.relative_to(root).with_suffix("").parts)
        for row in extract_pairs(text, module):
            key = hashlib.sha1((row["instruction"] + "\0" + row["response"]).encode()).hexdigest()
            if key not in seen:
                seen.add(key)
                rows.append(row)
    log.info("Extracted %d docstring→function pairs from %s", len(rows), root)
    return rows
