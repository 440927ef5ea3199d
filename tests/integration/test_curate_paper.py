"""The paper's exact cleaning (``experiment=curate/paper``) against an independent restatement of
the original's clean_data.py + find_substrings.py, and where the default differs from it.

The benchmark files are the real ones in ``../shared/data``. DS-1000 and APPS are not there, so
a one-task stand-in of each is written in the test's directory (a fake for data that cannot be
had here), enough to exercise their loaders and their place in the scan order.
"""

from __future__ import annotations

import gzip
import json
import random
from collections import Counter
from pathlib import Path

import pytest
from helpers import run_module

from magicoder.curation.app import run_curate

APPS_QUESTION = "Count the cows that stand in the field at noon and print their number."
DS1000_PROMPT = "Problem: sort the frame by its column named x, largest first.\nA:\n<code>\n"


def read(path: Path) -> list[dict]:
    opener = gzip.open if path.suffix == ".gz" else open
    with opener(path, "rt") as f:
        return [json.loads(line) for line in f if line.strip()]


def row(index: int, problem: str, solution: str, seed: str | None = None) -> dict:
    return {
        "index": index,
        "raw_index": index,
        "lang": "python",
        "seed": seed if seed is not None else f"value_{index} = compute({index})\n",
        "problem": problem,
        "solution": solution,
        "teacher_model": "test",
        "teacher_fingerprint": None,
        "finish_reason": "stop",
    }


def raw_rows(data_dir: Path) -> tuple[list[dict], dict[str, int]]:
    """Clean rows and one planted row per rule; returns the rows and the planted indices."""
    he = {r["task_id"]: r for r in read(data_dir / "HumanEval.jsonl.gz")}
    he_plus = {r["task_id"]: r for r in read(data_dir / "HumanEvalPlus-v0.1.10.jsonl.gz")}
    mbpp = {r["task_id"]: r for r in read(data_dir / "mbpp.jsonl")}
    mbpp_plus = {r["task_id"]: r for r in read(data_dir / "MbppPlus-v0.2.0.jsonl.gz")}
    gsm8k = read(data_dir / "gsm8k-test.jsonl")
    rows = [
        row(i, f"Print greeting number {i} in Klingon.", f"```python\nprint('nuqneH {i}')\n```")
        for i in range(12)
    ]
    he42_doc = he["HumanEval/42"]["prompt"].split('"""')[1].strip()
    he12_body = he["HumanEval/12"]["canonical_solution"].replace("    ", "  ")
    mbpp62 = mbpp[62]["code"]
    mbpp554 = mbpp_plus["Mbpp/554"]["prompt"].split('"""')[1].strip().splitlines()[0]
    he0_doc = he["HumanEval/0"]["prompt"].split('"""')[1].strip()
    planted = {
        # same seed as row 3 up to whitespace: exact dedup keeps whichever comes first
        "duplicate": row(
            100, "Print a farewell in Klingon.", "print('Qapla')", seed="value_3 =  compute(3)"
        ),
        # the solution repeats the problem's code block: only our copied_code filter drops it
        "copied": row(
            101,
            "Explain this:\n```python\ntotal = sum(range(10))\n```",
            "It adds 0..9:\n```python\ntotal = sum( range(10) )\n```",
        ),
        # HumanEval/28's body, which the original's generic list meant to spare but did not
        "humaneval28": row(
            102, "Join the words.", "def glue(strings):\n    return ''.join(strings)"
        ),
        # HumanEval/12 re-indented: whitespace differs, so only our rule catches it
        "reindented": row(103, "Longest string?", "def longest(strings):\n" + he12_body),
        # MBPP/62 at the very end of the row: without its final line break the original misses it
        "mbpp_unstripped": row(104, "Smallest item?", "Use min:\n" + mbpp62.rstrip()),
        # HumanEval+'s rewritten solution of HumanEval/2: the original did not search HumanEval+
        "humaneval_plus": row(
            105,
            "Fractional part?",
            "def truncate_number(number):\n    "
            + he_plus["HumanEval/2"]["canonical_solution"].strip(),
        ),
        # MBPP+'s description of Mbpp/554, outside MBPP's test split: only MBPP+ has it
        "mbpp_plus": row(106, mbpp554, "def odd(xs):\n    return [x for x in xs if x % 2]"),
        # a HumanEval docstring in capitals: both rules ignore case
        "case": row(107, "Task: " + he42_doc.upper(), "def incr_list(l):\n    pass"),
        # a GSM8K question verbatim: both drop it
        "gsm8k": row(108, gsm8k[5]["question"], "print(64)"),
        # HumanEval/0's docstring, then MBPP/11's description: both drop it, naming different ones
        "two_benchmarks": row(109, he0_doc + "\n\nAlso: " + mbpp[11]["text"], "pass"),
        # the APPS stand-in's question verbatim: both drop it
        "apps": row(110, APPS_QUESTION, "print(3)"),
        # the DS-1000 stand-in's prompt ending the row, so without its final line break (in the
        # problem the "\n\n" before the solution would supply it): only our rule catches it
        "ds1000_unstripped": row(111, "Sort it.", "Given:\n" + DS1000_PROMPT.rstrip()),
    }
    return rows + list(planted.values()), {name: r["index"] for name, r in planted.items()}


@pytest.fixture
def inputs(tmp_path: Path, data_dir: Path) -> tuple[Path, dict[str, int], dict[str, str]]:
    rows, planted = raw_rows(data_dir)
    raw = tmp_path / "oss-instruct-python.jsonl"
    raw.write_text("".join(json.dumps(r) + "\n" for r in rows))
    apps = tmp_path / "apps-test.jsonl"
    apps.write_text(json.dumps({"problem_id": 0, "question": f"\n{APPS_QUESTION}\n"}) + "\n")
    prompt = tmp_path / "ds1000_data" / "Pandas" / "Insertion" / "q0" / "prompt.txt"
    prompt.parent.mkdir(parents=True)
    prompt.write_text(DS1000_PROMPT + "BEGIN SOLUTION\n<code>\ndf = df.sort_values('x')\n")
    extra = {"apps": str(apps), "ds1000": str(prompt.parents[3])}
    return raw, planted, extra


def original_cleaning(rows: list[dict], data_dir: Path, extra: dict[str, str]):
    """The original's two scripts restated as plain loops, from its rules: shuffle with the
    global ``random`` seeded 666, drop a row whose whitespace-free seed, problem or solution was
    kept before, then search ``problem + "\\n\\n" + solution`` (lowercased) for each benchmark
    string (lowercased) in its order, MBPP first.

    Returns:
        The kept rows in order, and index → (benchmark, matched string) of the dropped ones.
    """
    rows = list(rows)
    state = random.getstate()
    random.seed(666)
    random.shuffle(rows)
    random.setstate(state)
    seen: dict[str, set[str]] = {"seed": set(), "problem": set(), "solution": set()}
    deduped = []
    for r in rows:
        keys = {field: "".join(r[field].split()) for field in seen}
        if all(keys[field] not in seen[field] for field in seen):
            deduped.append(r)
            for field in seen:
                seen[field].add(keys[field])

    def docstring(prompt: str) -> str:
        quote = '"""' if '"""' in prompt else "'''"
        parts = prompt.split(quote)
        return (parts[3] if prompt.count(quote) == 4 else parts[1]).strip()

    mbpp = [r for r in read(data_dir / "mbpp.jsonl") if 11 <= r["task_id"] <= 510]
    he = read(data_dir / "HumanEval.jsonl.gz")
    generic = [
        "return x + y",
        "return len(string)",
        "return n**2",
        "return .join(strings)",
    ]  # as run
    solutions = [r["canonical_solution"].strip() for r in he]
    apps = [r["question"].strip() for r in read(Path(extra["apps"]))]
    ds1000 = [
        p.read_text().split("BEGIN SOLUTION")[0]
        for p in Path(extra["ds1000"]).glob("*/Insertion/q*/prompt.txt")
    ]
    searched = {
        "mbpp": [r["text"] for r in mbpp] + [r["code"] for r in mbpp],
        "humaneval": [docstring(r["prompt"]) for r in he]
        + [s for s in solutions if s not in generic],
        "apps": apps,
        "gsm8k": [r["question"].strip() for r in read(data_dir / "gsm8k-test.jsonl")],
        "ds1000": ds1000,
    }
    kept, dropped = [], {}
    for r in deduped:
        content = r["problem"].lower() + "\n\n" + r["solution"].lower()
        hit = next(
            (
                (name, s)
                for name, strings in searched.items()
                for s in strings
                if s.lower() in content
            ),
            None,
        )
        if hit is None:
            kept.append(r)
        else:
            dropped[r["index"]] = hit
    return kept, dropped


def curate(compose, tmp_path: Path, raw: Path, extra: dict[str, str], *overrides: str) -> dict:
    cfg = compose(
        "curate",
        [
            f"inputs=[{raw}]",
            "logger=none",
            "report.enabled=false",
            f"decontaminate.benchmarks.apps={extra['apps']}",
            f"decontaminate.benchmarks.ds1000={extra['ds1000']}",
            *overrides,
        ],
        tmp_path / "run",
    )
    run_curate(cfg)
    return {name: read(tmp_path / "run" / f"{name}.jsonl") for name in ("curated", "rejects")}


def test_the_preset_sets_the_papers_rules(tmp_path: Path, compose):
    cfg = compose("curate", ["inputs=[a.jsonl]", "experiment=curate/paper"], tmp_path)
    assert cfg.shuffle_seed == 666
    assert list(cfg.steps) == ["exact_dedup", "decontaminate"]
    assert list(cfg.exact_dedup.fields) == ["seed", "problem", "solution"]
    c = cfg.decontaminate
    assert list(c.columns) == ["problem", "solution"] and c.normalize == "paper"
    assert c.mbpp_split == "test" and c.ngram.n is None
    assert c.benchmarks.humaneval.endswith("/HumanEval.jsonl.gz")
    assert c.benchmarks.mbpp.endswith("/mbpp.jsonl")
    assert c.benchmarks.gsm8k.endswith("/gsm8k-test.jsonl")
    assert c.benchmarks.humaneval_plus is None and c.benchmarks.mbpp_plus is None
    # The default stays the stronger one.
    default = compose("curate", ["inputs=[a.jsonl]"], tmp_path)
    assert list(default.steps) == ["exact_dedup", "copied_code", "decontaminate"]
    assert default.decontaminate.normalize == "whitespace"


def test_the_preset_does_what_the_original_did(tmp_path: Path, compose, data_dir: Path, inputs):
    raw, planted, extra = inputs
    curate(compose, tmp_path, raw, extra, "experiment=curate/paper")
    check_against_the_original(tmp_path / "run", raw, planted, extra, data_dir)


@pytest.mark.slow
def test_magicoder_curate_runs_the_preset(tmp_path: Path, data_dir: Path, inputs):
    raw, planted, extra = inputs
    run_dir = tmp_path / "run"
    result = run_module(
        "magicoder.cli.curate",
        [
            "experiment=curate/paper",
            f"inputs=[{raw}]",
            f"decontaminate.benchmarks.apps={extra['apps']}",
            f"decontaminate.benchmarks.ds1000={extra['ds1000']}",
            "logger=none",
            "report.enabled=false",
            f"hydra.run.dir={run_dir}",
        ],
        tmp_path,
        timeout=300,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    check_against_the_original(run_dir, raw, planted, extra, data_dir)


def check_against_the_original(
    run_dir: Path, raw: Path, planted: dict[str, int], extra: dict[str, str], data_dir: Path
) -> None:
    curated, rejects = read(run_dir / "curated.jsonl"), read(run_dir / "rejects.jsonl")
    kept, dropped = original_cleaning(read(raw), data_dir, extra)

    # The same rows, in the same (shuffled) order, each dropped for the same string.
    assert [r["index"] for r in curated] == [r["index"] for r in kept]
    decontaminated = {r["index"]: r["matched"] for r in rejects if r["step"] == "decontaminate"}
    assert {i: (m["benchmark"], m["string"]) for i, m in decontaminated.items()} == dropped
    assert [r["step"] for r in rejects].count("exact_dedup") == 1
    assert {r["index"] for r in rejects if r["step"] == "exact_dedup"} <= {3, planted["duplicate"]}

    # What that means, rule by rule.
    p = planted
    assert set(decontaminated) == {
        p["humaneval28"],
        p["case"],
        p["gsm8k"],
        p["two_benchmarks"],
        p["apps"],
    }
    assert decontaminated[p["humaneval28"]]["task_id"] == "HumanEval/28"
    assert decontaminated[p["two_benchmarks"]]["task_id"] == "mbpp/11"  # MBPP is scanned first
    for name in ("copied", "reindented", "mbpp_unstripped", "humaneval_plus", "mbpp_plus"):
        assert p[name] in {r["index"] for r in curated}, name
    assert p["ds1000_unstripped"] in {r["index"] for r in curated}

    summary = json.loads((run_dir / "summary.json").read_text())
    steps = {s["step"]: s for s in summary["steps"]}
    assert list(steps) == ["load", "exact_dedup", "decontaminate", "format"]
    assert steps["load"]["in"] == len(read(raw)) == 24
    assert (steps["exact_dedup"]["dropped"], steps["decontaminate"]["dropped"]) == (1, 5)
    assert summary["decontaminated_by"] == dict(Counter(b for b, _ in dropped.values()))
    assert summary["decontaminated_by"] == {"humaneval": 2, "gsm8k": 1, "mbpp": 1, "apps": 1}
    metrics = json.loads((run_dir / "metrics.json").read_text())
    assert metrics["curate/rows_out"] == len(curated) == 24 - 1 - 5
    assert all(
        r["instruction"].startswith("Write a solution to the following coding problem:\n")
        for r in curated
    )


def test_the_default_differs_from_the_paper_where_the_readme_says(tmp_path: Path, compose, inputs):
    raw, p, extra = inputs
    out = curate(compose, tmp_path, raw, extra)
    curated = {r["index"] for r in out["curated"]}
    rejects = {r["index"]: r for r in out["rejects"]}
    assert rejects[p["copied"]]["step"] == "copied_code"
    assert p["humaneval28"] in curated  # the generic list as it was meant
    expected = {
        "reindented": ("humaneval", "HumanEval/12"),  # whitespace ignored
        "mbpp_unstripped": ("mbpp", "mbpp/62"),
        "ds1000_unstripped": ("ds1000", "Pandas/Insertion/q0"),
        "humaneval_plus": ("humaneval_plus", "HumanEval/2"),  # HumanEval+ and MBPP+ searched
        "mbpp_plus": ("mbpp_plus", "Mbpp/554"),
        "case": ("humaneval", "HumanEval/42"),
        "gsm8k": ("gsm8k", "gsm8k/5"),
        "apps": ("apps", "0"),
        "two_benchmarks": ("humaneval", "HumanEval/0"),  # the string that ends first in the row
    }
    for name, (benchmark, task) in expected.items():
        matched = rejects[p[name]]["matched"]
        assert (matched["benchmark"], matched["task_id"]) == (benchmark, task), name


def test_an_unknown_rule_fails_before_reading_anything(tmp_path: Path, compose, inputs):
    raw, _, extra = inputs
    with pytest.raises(ValueError, match="decontaminate.normalize='exact' is unknown"):
        curate(compose, tmp_path, raw, extra, "decontaminate.normalize=exact")
