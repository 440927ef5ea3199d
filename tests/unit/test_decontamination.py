"""Decontamination matchers and benchmark string extraction, on small hand-made strings."""

from __future__ import annotations

import ast
import json
import random
from pathlib import Path

import pytest

from magicoder.curation.benchmarks import (
    HUMAN_EVAL_STRINGS_OK,
    HUMAN_EVAL_STRINGS_OK_AS_WRITTEN,
    BenchmarkString,
    apps_strings,
    ds1000_strings,
    extract_docstring,
    humaneval_strings,
    load_benchmark_strings,
    mbpp_plus_description,
    mbpp_strings,
)
from magicoder.curation.decontamination import (
    Decontaminator,
    NgramMatcher,
    SubstringMatcher,
    naive_find,
    ngrams,
    normalize,
    overlap_ratio,
    tokenize,
)

SOLUTION = (
    "    for i in range(len(xs)):\n        if xs[i] < 0:\n            return i\n    return -1\n"
)
STRINGS = [
    BenchmarkString("humaneval", "solution", "HumanEval/1", SOLUTION.strip()),
    BenchmarkString("mbpp", "docstring", "mbpp/11", "Write a function to find the first negative."),
    BenchmarkString("gsm8k", "question", "gsm8k/0", "Janet has 3 apples. How many pears?"),
]


def test_normalize_modes():
    assert normalize("A  b\r\nC", "lower") == "a  b\r\nc"
    assert normalize("A  b\r\nC", "whitespace") == "abc"
    with pytest.raises(ValueError, match="decontaminate.normalize"):
        normalize("x", "fuzzy")


def test_substring_matcher_finds_verbatim_and_reformatted_copies():
    matcher = SubstringMatcher(STRINGS)
    verbatim = "def first_negative(xs):\n" + SOLUTION
    crlf_reindented = (
        "def g(xs):\r\n  for i in range(len(xs)):\r\n     if xs[i]<0:\r\n"
        "        return i\r\n  return -1"
    )
    for text in (verbatim, crlf_reindented, "WRITE A FUNCTION TO FIND THE FIRST\nNEGATIVE."):
        match = matcher.find(text)
        assert match is not None, text
    assert matcher.find(verbatim).string.task_id == "HumanEval/1"
    assert matcher.find("def f(xs):\n    return min(xs)\n") is None
    # The paper's exact rule misses the re-indented copy, but finds the verbatim one.
    paper = SubstringMatcher(STRINGS, normalize="lower")
    assert paper.find(verbatim) is not None and paper.find(crlf_reindented) is None


def test_substring_matcher_agrees_with_the_plain_scan():
    rng = random.Random(0)
    alphabet = "ab c\n"
    strings = [
        BenchmarkString(
            "b", "k", str(i), "".join(rng.choice(alphabet) for _ in range(rng.randint(1, 6)))
        )
        for i in range(40)
    ]
    for mode in ("lower", "whitespace"):
        matcher = SubstringMatcher(strings, normalize=mode)
        for _ in range(300):
            text = "".join(rng.choice(alphabet + "xyz") for _ in range(rng.randint(0, 30)))
            found = {s.task_id for s in matcher.find_all(text)}
            expected = {
                s.task_id
                for s in strings
                if normalize(s.text, mode) and normalize(s.text, mode) in normalize(text, mode)
            }
            assert found == expected
            assert (matcher.find(text) is None) == (naive_find(text, strings, mode) is None)


def test_empty_matcher_finds_nothing():
    assert SubstringMatcher([]).find("anything") is None
    with pytest.raises(ValueError, match="decontaminate.benchmarks"):
        Decontaminator([], ["problem"])


def test_ngram_overlap_catches_renamed_variables():
    edited = SOLUTION.replace("xs", "values")
    assert SubstringMatcher(STRINGS).find(edited) is None
    assert overlap_ratio(SOLUTION, edited, 4) > 0.3
    matcher = NgramMatcher(STRINGS, n=4, threshold=0.3)
    match = matcher.find("def g(values):\n" + edited)
    assert match is not None and match.string.task_id == "HumanEval/1" and match.method == "ngram"
    assert 0.3 <= match.overlap < 1.0
    assert matcher.find("def h(x):\n    return sorted(x)[0]\n") is None


def test_tokens_and_ngrams():
    assert tokenize("if xs[i]<0:") == ["if", "xs", "[", "i", "]", "<", "0", ":"]
    assert ngrams(["a", "b", "c"], 2) == {("a", "b"), ("b", "c")}
    assert ngrams(["a"], 2) == set()
    with pytest.raises(ValueError, match="ngram.threshold"):
        NgramMatcher(STRINGS, n=3, threshold=1.5)


def test_decontaminator_searches_the_configured_columns():
    d = Decontaminator(STRINGS, ["problem", "solution"], ngram_n=4, ngram_threshold=0.5)
    assert d.find({"problem": "Janet has 3 apples.  How many pears?", "solution": "7"}) is not None
    assert d.find({"problem": "clean", "solution": "clean", "seed": SOLUTION}) is None
    match = d.find({"problem": "p", "solution": SOLUTION})
    assert match is not None and match.describe()["benchmark"] == "humaneval"


def test_docstring_extraction_as_the_paper():
    assert (
        extract_docstring('def f():\n    """ Doc.\n    >>> f()\n    """\n') == "Doc.\n    >>> f()"
    )
    two = 'import x\n"""module"""\ndef f():\n    """Second."""\n'
    assert extract_docstring(two) == "Second."
    assert extract_docstring("def f():\n    '''Single.'''\n") == "Single."
    desc = '"""\nWrite a function to add.\nassert add(1, 2) == 3\n"""\n'
    assert mbpp_plus_description(desc) == "Write a function to add."


def test_ds1000_and_apps_loaders(tmp_path: Path):
    q = tmp_path / "ds1000_data" / "Pandas" / "Insertion" / "q0"
    q.mkdir(parents=True)
    (q / "prompt.txt").write_text("Problem: sort a frame.\nA:\n<code>\nBEGIN SOLUTION\nfoo\n")
    (dir_strings,) = ds1000_strings(tmp_path / "ds1000_data")
    assert dir_strings.text == "Problem: sort a frame.\nA:\n<code>"
    jsonl = tmp_path / "ds1000.jsonl"
    jsonl.write_text(
        json.dumps({"prompt": "Q1 # SOLUTION START\nx", "metadata": {"problem_id": 7}}) + "\n"
    )
    assert [(s.task_id, s.text) for s in ds1000_strings(jsonl)] == [("7", "Q1 #")]
    apps = tmp_path / "apps.jsonl"
    apps.write_text(json.dumps({"problem_id": 3, "question": " Count the cows. "}) + "\n")
    assert [(s.benchmark, s.text) for s in apps_strings(apps)] == [("apps", "Count the cows.")]


def test_configured_benchmark_files_must_exist(tmp_path: Path):
    with pytest.raises(FileNotFoundError, match=r"decontaminate.benchmarks.humaneval"):
        load_benchmark_strings({"humaneval": str(tmp_path / "missing.jsonl.gz")})
    with pytest.raises(ValueError, match="decontaminate.benchmarks.codecontests"):
        load_benchmark_strings({"codecontests": None})
    assert load_benchmark_strings({"apps": None}) == []


# The paper's exact rule (normalize="paper", strings as_original) against the default.


def test_paper_rule_ignores_case_but_not_whitespace():
    paper, default = SubstringMatcher(STRINGS, "paper"), SubstringMatcher(STRINGS)
    upper = "Task: WRITE A FUNCTION TO FIND THE FIRST NEGATIVE."
    assert paper.find(upper).string.task_id == default.find(upper).string.task_id == "mbpp/11"
    rewrapped = "Write a function to find\nthe first negative."  # one space became a line break
    assert paper.find(rewrapped) is None
    assert default.find(rewrapped).string.task_id == "mbpp/11"
    assert normalize("A  b\r\nC", "paper") == "a  b\r\nc"


def test_paper_rule_reports_the_first_string_in_scan_order():
    # The original tries benchmark by benchmark, string by string, and names the first hit;
    # the default names the string that ends first in the row.
    strings = [STRINGS[1], STRINGS[0]]  # MBPP before HumanEval, as the original scans
    text = "def first_negative(xs):\n" + SOLUTION + "# Write a function to find the first negative."
    assert SubstringMatcher(strings, "paper").find(text).string.benchmark == "mbpp"
    assert SubstringMatcher(strings).find(text).string.benchmark == "humaneval"
    assert naive_find(text, strings, "paper").benchmark == "mbpp"


def test_paper_matcher_names_the_same_string_as_the_plain_scan():
    rng = random.Random(1)
    alphabet = "aB c\n"
    strings = [
        BenchmarkString(
            "b", "k", str(i), "".join(rng.choice(alphabet) for _ in range(rng.randint(1, 5)))
        )
        for i in range(40)
    ]
    matcher = SubstringMatcher(strings, normalize="paper")
    for _ in range(300):
        text = "".join(rng.choice(alphabet + "Xyz") for _ in range(rng.randint(0, 30)))
        match, expected = matcher.find(text), naive_find(text, strings, "paper")
        assert (match.string if match else None) is expected, text


def test_generic_humaneval_solutions_as_the_original_evaluated_them(data_dir: Path):
    # The original's fourth entry is two adjacent literals, which Python joins into one.
    written = ast.literal_eval('"return " ".join(strings)"')
    assert written == "return .join(strings)"
    assert HUMAN_EVAL_STRINGS_OK_AS_WRITTEN == (
        HUMAN_EVAL_STRINGS_OK - {"return ''.join(strings)"}
    ) | {written}
    path = data_dir / "HumanEval.jsonl.gz"
    all_tasks = {f"HumanEval/{i}" for i in range(164)}

    def spared(as_original: bool) -> set[str]:
        strings = humaneval_strings(path, as_original=as_original)
        return all_tasks - {s.task_id for s in strings if s.kind == "solution"}

    assert spared(as_original=False) == {
        "HumanEval/23",
        "HumanEval/28",
        "HumanEval/41",
        "HumanEval/53",
    }
    assert spared(as_original=True) == {"HumanEval/23", "HumanEval/41", "HumanEval/53"}
    # So a row with HumanEval/28's one-line body goes under the paper's rule and stays under ours.
    row = {
        "problem": "Join the words.",
        "solution": "def glue(strings):\n    return ''.join(strings)",
    }
    paper = Decontaminator(
        humaneval_strings(path, as_original=True), ["problem", "solution"], "paper"
    )
    default = Decontaminator(humaneval_strings(path), ["problem", "solution"])
    assert paper.find(row).string.task_id == "HumanEval/28"
    assert default.find(row) is None
    generic = {"problem": "Add two numbers.", "solution": "def add(x, y):\n    RETURN X + Y"}
    assert paper.find(generic) is None and default.find(generic) is None


def test_mbpp_strings_as_the_original_took_them(data_dir: Path):
    path = data_dir / "mbpp.jsonl"
    original = {(s.kind, s.task_id): s.text for s in mbpp_strings(path, as_original=True)}
    stripped = {(s.kind, s.task_id): s.text for s in mbpp_strings(path)}
    assert original.keys() == stripped.keys() and len(original) == 1000
    # 182 of the 500 solutions end in spaces or a line break; no description does.
    assert sum(original[k] != stripped[k] for k in original) == 182
    code = original["solution", "mbpp/62"]
    assert code == "def smallest_num(xs):\n  return min(xs)\n"
    # A row that ends with the solution lacks its final line break: the original misses it.
    row = {"problem": "Smallest item?", "solution": "Use min:\n" + code.rstrip()}
    paper = Decontaminator(mbpp_strings(path, as_original=True), ["problem", "solution"], "paper")
    lower = Decontaminator(mbpp_strings(path), ["problem", "solution"], "lower")
    assert paper.find(row) is None
    assert lower.find(row).string.task_id == "mbpp/62"
    assert Decontaminator(mbpp_strings(path), ["problem", "solution"]).find(row) is not None


def test_ds1000_prompts_as_the_original_took_them(tmp_path: Path):
    q = tmp_path / "ds1000_data" / "Pandas" / "Insertion" / "q0"
    q.mkdir(parents=True)
    (q / "prompt.txt").write_text("Problem: sort a frame.\nA:\n<code>\nBEGIN SOLUTION\nfoo\n")
    (original,) = ds1000_strings(tmp_path / "ds1000_data", as_original=True)
    assert original.text == "Problem: sort a frame.\nA:\n<code>\n"


def test_original_strings_come_in_the_original_scan_order(data_dir: Path):
    files = {
        "humaneval": data_dir / "HumanEval.jsonl.gz",
        "humaneval_plus": data_dir / "HumanEvalPlus-v0.1.10.jsonl.gz",
        "mbpp": data_dir / "mbpp.jsonl",
        "gsm8k": data_dir / "gsm8k-test.jsonl",
    }
    strings = load_benchmark_strings({k: str(v) for k, v in files.items()}, as_original=True)
    blocks = [(s.benchmark, s.kind) for s in strings]
    assert list(dict.fromkeys(blocks)) == [
        ("mbpp", "docstring"),
        ("mbpp", "solution"),
        ("humaneval", "docstring"),
        ("humaneval", "solution"),
        ("gsm8k", "question"),
        ("humaneval_plus", "docstring"),  # not in the original: after its benchmarks
        ("humaneval_plus", "solution"),
    ]
    assert [s.task_id for s in strings[:2]] == ["mbpp/11", "mbpp/12"]
    default = load_benchmark_strings({k: str(v) for k, v in files.items()})
    assert [s.benchmark for s in default][0] == "humaneval"  # the configured order
