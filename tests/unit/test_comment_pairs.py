"""The paper's comment–function baseline data: extraction per language, covered split, rows,
the seeded draw, the seed-document builder and the source that reads its file."""

from __future__ import annotations

import json
import random
import sys
from pathlib import Path

import pytest

from magicoder.data import comment_pairs as cp
from magicoder.data.comment_pairs import (
    FunctionDoc,
    collect_seed_documents,
    completion_row,
    document_functions,
    document_pairs,
    select_pairs,
)
from magicoder.data.sources import CommentFunctionPairs


def functions(lang: str, content: str, seed: str = "") -> list[FunctionDoc]:
    return document_functions({"lang": lang, "content": content, "seed": seed})


def pairs(lang: str, content: str, seed: str = "") -> list[dict[str, str]]:
    covered, rest = document_pairs({"lang": lang, "content": content, "seed": seed})
    return covered + rest


# The grammars: the paper's node types, checked against the installed packages.


@pytest.mark.parametrize("grammar", sorted(cp.GRAMMARS))
def test_the_papers_node_types_exist_in_the_installed_grammars(grammar: str):
    import tree_sitter

    module, function = cp.GRAMMARS[grammar]
    language = tree_sitter.Language(getattr(__import__(module), function)())
    for kind in cp.FUNCTION_TYPES[grammar]:
        assert language.id_for_node_kind(kind, True) is not None, kind
    missing = [k for k in cp.COMMENT_TYPES[grammar] if language.id_for_node_kind(k, True) is None]
    # Java's grammar split `comment` into line_comment/block_comment before the paper's build.
    assert missing == (["comment"] if grammar == "java" else [])


def test_todays_rust_grammar_ends_doc_comments_with_their_newline():
    """Why comment_spans trims: the paper's late-2023 build ended `///` before the newline."""
    import tree_sitter
    import tree_sitter_rust

    parser = tree_sitter.Parser(tree_sitter.Language(tree_sitter_rust.language()))
    comment = parser.parse(b"/// Doc.\nfn f() {}\n").root_node.children[0]
    assert (comment.type, comment.text, tuple(comment.end_point)) == (
        "line_comment",
        b"/// Doc.\n",
        (1, 0),
    )


def _walk(node, kinds: tuple[str, ...]) -> list:
    """The paper's recursive walk: every node of these types below ``node``, depth first."""
    out = []
    for child in node.children:
        if child.type in kinds:
            out.append(child)
        out += _walk(child, kinds)
    return out


NESTED = {
    "python": (
        "def a():\n    # c\n    def b():  # d\n        pass\n    return b\n"
        "class C:\n    def d(self): (\n"
    ),
    "java": (
        "class A {\n  // c\n  int f() { class B { /* d */ void g() {} } return 1; }\n"
        "  void h( {}\n}\n"
    ),
    "typescript": "function f() {\n  // c\n  function g() {}\n}\nclass K {\n  /* d */ m() {}\n}\n",
    "cpp": "// c\nint f() { return 1; }\nstruct S { /* d */ int g() { return 2; } };\n",
    "csharp": "class A {\n  // c\n  int F() { return 1; }\n  class B { /* d */ void G() {} }\n}\n",
    "php": "<?php\nclass A {\n  # c\n  function f() { /* d */ }\n  function g() {}\n}\n",
    "rust": "/// c\nfn f() {\n    // d\n    fn g() {}\n}\nimpl S { /* e */ fn h() {} }\n",
    "swift": "// c\nfunc f() {\n  /* d */\n  func g() {}\n}\nclass K { func h() {} }\n",
    "bash": "# c\nf() {\n  # d\n  g() { :; }\n}\nh() { :; }\n",
}


@pytest.mark.parametrize("grammar", sorted(NESTED))
def test_the_query_finds_what_the_papers_walk_finds_in_its_order(grammar: str):
    import tree_sitter

    content = NESTED[grammar]
    code = content.encode()
    parser, query = cp._parser_and_query(grammar)
    root = parser.parse(code).root_node
    walked = [n.text.decode() for n in _walk(root, cp.FUNCTION_TYPES[grammar])]
    assert len(walked) >= 2
    assert [f.function for f in functions(grammar, content)] == walked
    comments = tree_sitter.QueryCursor(query).captures(root)["comment"]
    walked_comments = []
    for node in _walk(root, cp.COMMENT_TYPES[grammar]):
        text = node.text.decode().removesuffix("\n")  # as comment_spans cuts Rust's newline
        if text not in walked_comments:
            walked_comments.append(text)
    assert [s.text for s in cp.comment_spans(comments, code)] == walked_comments
    assert len(walked_comments) >= 2


def test_a_missing_grammar_names_the_extra_to_install(monkeypatch):
    monkeypatch.setitem(sys.modules, "tree_sitter_rust", None)  # as without the package
    cp._parser_and_query.cache_clear()
    try:
        with pytest.raises(ImportError, match=r"tree-sitter-rust: pip install 'magicoder\[comment"):
            functions("rust", "fn f() {}\n")
    finally:
        cp._parser_and_query.cache_clear()


def test_an_unknown_language_is_refused():
    with pytest.raises(ValueError, match="'go' has no grammar"):
        functions("go", "func f() {}\n")


# Text rules.


def test_comment_delimiters_and_summary_follow_the_paper():
    assert cp.strip_comment_delimiters("/**\n * Doc.\n */") == "\nDoc.\n"
    assert cp.strip_comment_delimiters("/// a\n//  b\n/* c */") == "a\nb\nc"
    assert cp.strip_comment_delimiters("# hash") == "# hash"  # not a C-style marker
    assert cp.docstring_summary("First.\n\nSecond @x") == "First."
    assert cp.docstring_summary("Text.\n@param x") == "Text.\n"
    assert cp.docstring_summary("No cut") == "No cut"


def test_only_the_first_line_is_dropped_as_metadata():
    assert cp.drop_metadata_line("<reponame>a/b\ncode\n") == "code\n"
    assert cp.drop_metadata_line("<filename>x.py\n<reponame>y\n") == "<reponame>y\n"
    assert cp.drop_metadata_line("code\n") == "code\n"


# Python: the first string statement of the block, quotes stripped, summary.

PYTHON = '''def add(a, b):
    """Add two numbers.

    Longer text that the summary drops.
    """
    return a + b


class Box:
    def size(self):
        \'\'\'Number of items.\'\'\'
        return len(self.items)

    def late(self):
        x = 1
        "A string after code."
        return x


def raw():
    r"""Raw docstring."""
    return 0
'''


def test_python_docstrings_as_the_paper_picks_and_strips_them():
    found = functions("python", PYTHON)
    assert [(f.function.split("(")[0], f.docstring) for f in found] == [
        ("def add", "Add two numbers."),
        ("def size", "Number of items."),
        ("def late", "A string after code."),  # the first string statement, wherever it is
        ("def raw", 'r"""Raw docstring.'),  # strip('"') leaves the prefix and the opening quotes
    ]


def test_python_rows_split_after_the_closing_quotes():
    assert pairs("python", PYTHON) == [
        {
            "prompt": 'def add(a, b):\n    """Add two numbers.\n\n    Longer text that the '
            'summary drops.\n    """',
            "completion": "\n    return a + b",
        },
        {
            "prompt": "def size(self):\n        '''Number of items.'''",
            "completion": "\n        return len(self.items)",
        },
        # `late` has no triple-quoted string: no row.
        {"prompt": 'def raw():\n    r"""Raw docstring."""', "completion": "\n    return 0"},
    ]


def test_the_seed_lines_decide_which_functions_are_covered():
    seed = "        return len(self.items)\n\n    def late(self):\n"
    assert [f.covered for f in functions("python", PYTHON, seed)] == [False, True, True, False]
    covered, rest = document_pairs({"lang": "python", "content": PYTHON, "seed": seed})
    assert [r["prompt"].split("(")[0] for r in covered] == ["def size"]
    assert [r["prompt"].split("(")[0] for r in rest] == ["def add", "def raw"]


def test_a_metadata_first_line_is_dropped_from_the_seed_before_matching():
    content = "def f():\n    '''Doc.'''\n    return 1\n"
    seed = "<reponame>me/repo\ndef f():\n"
    assert [f.covered for f in functions("python", content, seed)] == [True]


def test_a_seed_that_is_not_whole_lines_of_the_document_is_an_error():
    with pytest.raises(ValueError, match="not a run of whole lines"):
        functions("python", "def f():\n    pass\n", "def g():\n")


# Other languages: the closest comment group above, with only whitespace between.

JAVA = """class A {
  /**
   * Returns x.
   * @param x the value
   */
  int f(int x) {
    return x;
  }

  // Line one.
  // Line two.

  void g() {
  }

  // Detached by code.
  int y = 1;
  void h() {
  }

  // A.

  // B.
  void k() {}

  // -----
  void dashes() {}
}
"""


def test_java_javadoc_is_cut_at_the_tag_and_line_comments_are_grouped():
    assert [f.docstring for f in functions("java", JAVA)] == [
        "Returns x.",  # cut at '@', the delimiters stripped
        "Line one.\nLine two.",  # grouped; a blank line before the method still attaches
        "",  # code lies between
        "B.",  # a blank line ends a group
        "-----",
    ]
    assert pairs("java", JAVA) == [
        {"prompt": "/// Returns x.\nint f(int x) {\n", "completion": "    return x;\n  }"},
        {"prompt": "/// Line one.\n/// Line two.\nvoid g() {\n", "completion": "  }"},
        {"prompt": "/// B.\nvoid k() {}", "completion": ""},
        # "-----" is one repeated character: dropped
    ]


def test_cpp_block_and_line_comments_group():
    content = "/* Block. */\n// Line.\nint f() {\n  return 1;\n}\n"
    assert pairs("cpp", content) == [
        {"prompt": "/// Block.\n/// Line.\nint f() {\n", "completion": "  return 1;\n}"}
    ]


def test_shell_rows_prefix_the_comment_with_hashes_and_keep_its_own():
    content = "# Greets.\ngreet() {\n  echo hi\n}\n"
    assert pairs("shell", content) == [
        {"prompt": "### # Greets.\ngreet() {\n", "completion": "  echo hi\n}"}
    ]


def test_rust_doc_comments_group_as_in_the_papers_grammar():
    content = "/// Adds one.\n/// Twice.\nfn add(a: i32) -> i32 {\n    a + 1\n}\n"
    assert pairs("rust", content) == [
        {
            "prompt": "/// Adds one.\n/// Twice.\nfn add(a: i32) -> i32 {\n",
            "completion": "    a + 1\n}",
        }
    ]


def test_csharp_swift_php_and_typescript():
    csharp = "class A {\n  /// <summary>Doc.</summary>\n  public int F() {\n    return 1;\n  }\n}\n"
    assert [f.docstring for f in functions("csharp", csharp)] == ["<summary>Doc.</summary>"]
    swift = "/// Doubles.\nfunc twice(x: Int) -> Int {\n  return 2 * x\n}\n"
    assert pairs("swift", swift) == [
        {"prompt": "/// Doubles.\nfunc twice(x: Int) -> Int {\n", "completion": "  return 2 * x\n}"}
    ]
    # PHP: methods only (the paper's node type); a top-level function is not one.
    php = (
        "<?php\n/** Free. */\nfunction free() {}\n"
        "class A {\n  /** Method. */\n  function m() {}\n}\n"
    )
    assert [(f.function, f.docstring) for f in functions("php", php)] == [
        ("function m() {}", "Method.")
    ]
    # TypeScript: functions and methods; `export` lies between comment and function.
    ts = (
        "// Plain.\nfunction f() {}\n// Exported.\nexport function e() {}\n"
        "class K {\n  // M.\n  m() {}\n}\n"
    )
    assert [(f.function, f.docstring) for f in functions("typescript", ts)] == [
        ("function f() {}", "Plain."),
        ("function e() {}", ""),
        ("m() {}", "M."),
    ]


def test_completion_rows_drop_empty_and_repeated_docstrings():
    assert completion_row("void f() {}", "", "java") is None
    assert completion_row("void f() {}", "====", "java") is None
    assert completion_row("def f():\n    return 1", "Doc.", "python") is None  # no quotes
    assert completion_row("  void f() {\n}\n", " Doc. ", "cpp") == {
        "prompt": "/// Doc.\nvoid f() {\n",
        "completion": "}",
    }


# The selection: covered first, then the paper's seeded draw.


def test_the_draw_is_random_seed_then_random_sample():
    covered = [{"id": f"c{i}"} for i in range(3)]
    rest = [{"id": f"r{i}"} for i in range(50)]
    random.seed(7)
    expected = covered + random.sample(rest, k=20 - len(covered))
    assert select_pairs(covered, rest, n=20, seed=7) == expected
    assert select_pairs(covered, rest, n=None) == covered + rest
    with pytest.raises(ValueError, match="n=60 comment–function pairs asked"):
        select_pairs(covered, rest, n=60)
    with pytest.raises(ValueError, match="3 covered"):
        select_pairs(covered, rest, n=2)


def test_the_papers_selection_numbers():
    assert (cp.N_PAIRS, cp.DRAW_SEED, cp.MAX_DOCUMENTS) == (75197, 42, 150000)
    source = CommentFunctionPairs(name="pairs", path="x")
    assert (source.n, source.seed) == (75197, 42)


# Seed documents and the source that reads them.


def test_seed_documents_keep_every_field_drop_metadata_and_resume(tmp_path: Path):
    corpus = {
        "python": [
            {"content": "x = 0\n", "max_stars_repo_path": "zero.py"},
            {
                "content": "<reponame>me/repo\ndef f():\n    '''Doc.'''\n    return 1\n",
                "max_stars_repo_path": "f.py",
                "id": "7",
            },
        ],
        "shell": [{"content": "# Hi.\nhi() {\n  echo hi\n}\n", "max_stars_repo_path": "hi.sh"}],
    }
    loaded: list[str] = []

    def lookup(lang: str) -> list[dict]:
        loaded.append(lang)
        return corpus[lang]

    rows = [
        {"lang": "python", "raw_index": 1, "seed": "<reponame>me/repo\ndef f():\n"},
        {"lang": "shell", "raw_index": 0, "seed": "hi() {\n"},
        {"lang": "python", "raw_index": 0, "seed": "x = 0\n"},
    ]
    out = tmp_path / "docs.jsonl"
    assert collect_seed_documents(rows[:2], out, lookup) == 2
    assert collect_seed_documents(rows, out, lookup) == 1  # continues after the two lines
    records = [json.loads(line) for line in out.read_text().splitlines()]
    assert records[0] == {
        "content": "def f():\n    '''Doc.'''\n    return 1\n",
        "max_stars_repo_path": "f.py",
        "id": "7",
        "seed": "<reponame>me/repo\ndef f():\n",
        "lang": "python",
    }
    assert [r["lang"] for r in records] == ["python", "shell", "python"]
    assert loaded == ["python", "shell", "python"]  # once per language and call
    bad = [{"lang": "python", "raw_index": 0, "seed": "y = 1\n"}]
    with pytest.raises(ValueError, match="row 0: its seed is not in document 0 of python"):
        collect_seed_documents(bad, tmp_path / "bad.jsonl", lookup)


def test_seed_documents_come_from_where_the_paper_loaded_them(monkeypatch):
    assert cp.corpus_location("python") == ("bigcode/starcoderdata", "python")
    assert cp.corpus_location("csharp") == ("bigcode/starcoderdata", "c-sharp")
    assert cp.corpus_location("shell") == ("bigcode/starcoderdata", "shell")
    assert cp.corpus_location("swift") == ("bigcode/the-stack", "data/swift")
    calls = []
    import datasets

    monkeypatch.setattr(datasets, "load_dataset", lambda *a, **k: calls.append((a, k)) or [])
    cp.hub_documents("csharp")
    assert calls == [
        (("bigcode/starcoderdata",), {"data_dir": "c-sharp", "split": "train[:150000]"})
    ]


def _documents(tmp_path: Path) -> Path:
    docs = [
        {
            "content": "def a():\n    '''A.'''\n    return 1\n\n\n"
            "def b():\n    '''B.'''\n    return 2\n",
            "seed": "def b():\n",
            "lang": "python",
            "max_stars_repo_path": "ab.py",
        },
        {
            "content": "// One.\nint one() {\n  return 1;\n}\n"
            "// Two.\nint two() {\n  return 2;\n}\n",
            "seed": "int one() {\n",
            "lang": "cpp",
            "max_stars_repo_path": "one.cpp",
        },
        {
            "content": "# Three.\nthree() {\n  echo 3\n}\n",
            "seed": "",
            "lang": "shell",
        },
    ]
    path = tmp_path / "seed-documents.jsonl"
    path.write_text("".join(json.dumps(d) + "\n" for d in docs))
    return path


def test_the_source_yields_covered_pairs_then_the_seeded_draw(tmp_path: Path):
    path = _documents(tmp_path)
    rows = CommentFunctionPairs(name="pairs", path=str(path), n=None).load()
    assert [(r["prompt"].splitlines()[0], r["lang"], r["source"]) for r in rows] == [
        ("def b():", "python", "ab.py"),  # covered, in file order
        ("/// One.", "cpp", "one.cpp"),
        ("def a():", "python", "ab.py"),  # then the rest, in file order
        ("/// Two.", "cpp", "one.cpp"),
        ("### # Three.", "shell", "document 3"),
    ]
    assert all(set(r) == {"prompt", "completion", "lang", "source"} for r in rows)
    drawn = CommentFunctionPairs(name="pairs", path=str(path), n=4, seed=3).load()
    random.seed(3)
    assert drawn == rows[:2] + random.sample(rows[2:], k=2)
    only_cpp = CommentFunctionPairs(name="p", path=str(path), n=None, langs=["cpp"]).load()
    assert [r["lang"] for r in only_cpp] == ["cpp", "cpp"]


def test_the_source_names_the_fix_for_a_missing_file_or_too_few_pairs(tmp_path: Path):
    with pytest.raises(FileNotFoundError, match="collect_seed_documents.py.*data.path"):
        CommentFunctionPairs(name="pairs", path=str(tmp_path / "none.jsonl")).load()
    path = _documents(tmp_path)
    with pytest.raises(ValueError, match=r"pairs \(.*\): n=75197 comment–function pairs asked"):
        CommentFunctionPairs(name="pairs", path=str(path)).load()
