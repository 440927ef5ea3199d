"""The ``execute`` verification on hand-made rows, through the real sandbox."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from magicoder.curation.execute import execute_rows, merge_caches, parse_shard, read_cache
from magicoder.sandbox import bwrap_problem

pytestmark = pytest.mark.skipif(
    bwrap_problem() is not None, reason=f"needs a working bubblewrap: {bwrap_problem()}"
)

SOLUTION = "```python\ndef add(a, b):\n    return a + b\n```"
TESTS = "```python\nassert add(1, 2) == 3\nassert add(-1, 1) == 0\n```"


def _rows() -> list[dict]:
    return [
        {"index": 0, "lang": "python", "solution": SOLUTION, "tests": TESTS},
        {"index": 1, "lang": "python", "solution": SOLUTION.replace("a + b", "a - b"),
         "tests": TESTS},
        {"index": 2, "lang": "python", "solution": SOLUTION.replace(
            "return a + b", "while True:\n        pass"), "tests": TESTS},
        {"index": 3, "lang": "python", "solution": SOLUTION, "tests": ""},
        {"index": 4, "lang": "python", "solution": "```python\ndef add(a, b:\n```",
         "tests": TESTS},
        {"index": 5, "lang": "rust", "solution": "fn add() {}", "tests": "#[test] fn t() {}"},
    ]  # fmt: skip


def test_execute_keeps_passing_rows_with_reasons_and_caches(tmp_path: Path) -> None:
    cache = tmp_path / "execute-cache.jsonl"
    kept, rejected, funnel = execute_rows(
        _rows(), cache_path=cache, sandbox="bwrap", timeout=1.0, n_workers=2
    )
    assert [row["index"] for row in kept] == [0]
    reasons = {row["index"]: row["reason"] for row in rejected}
    assert reasons == {
        1: "test_failed",
        2: "timeout",
        3: "no_tests",
        4: "syntax",
        5: "no_toolchain",
    }
    failed = next(row for row in rejected if row["index"] == 1)
    assert "AssertionError" in failed["output"]
    assert (funnel["in"], funnel["with_tests"], funnel["passed"]) == (6, 4, 1)
    assert funnel["executed"] == 4 and funnel["by_lang"]["rust"] == {"in": 1, "no_toolchain": 1}

    again = execute_rows(_rows(), cache_path=cache, sandbox="bwrap", timeout=1.0)
    assert again[0] == kept and again[2]["executed"] == 0 and again[2]["cached"] == 4


def test_shards_merge_into_the_same_result(tmp_path: Path) -> None:
    rows = [
        {"index": i, "lang": "python", "solution": SOLUTION,
         "tests": f"```python\nassert add({i}, 1) == {i + 1 if i % 3 else 0}\n```"}
        for i in range(6)
    ]  # fmt: skip
    caches = [tmp_path / f"shard-{i}.jsonl" for i in range(2)]
    done = [
        execute_rows(rows, cache_path=caches[i], sandbox="bwrap", shard=f"{i}/2") for i in range(2)
    ]
    assert sum(len(kept) + len(rejected) for kept, rejected, _ in done) == len(rows)
    merged = tmp_path / "merged.jsonl"
    assert merge_caches(caches, merged) == 6
    first = merged.read_text()
    merge_caches(list(reversed(caches)), merged)
    assert merged.read_text() == first  # deterministic
    kept, rejected, funnel = execute_rows(rows, cache_path=merged, sandbox="bwrap")
    assert funnel["executed"] == 0
    assert sorted(row["index"] for row in kept) == [1, 2, 4, 5]
    with pytest.raises(ValueError, match="shard='2/2'"):
        parse_shard("2/2")


def test_a_killed_run_resumes_with_nothing_lost_or_duplicated(tmp_path: Path) -> None:
    rows = [
        {"index": i, "lang": "python", "solution": SOLUTION,
         "tests": f"```python\nimport time\ntime.sleep(0.3)\nassert add({i}, 0) == {i}\n```"}
        for i in range(8)
    ]  # fmt: skip
    rows_path, cache = tmp_path / "rows.json", tmp_path / "cache.jsonl"
    rows_path.write_text(json.dumps(rows))
    script = (
        "import json, sys\nfrom pathlib import Path\n"
        "from magicoder.curation.execute import execute_rows\n"
        f"execute_rows(json.loads(Path({str(rows_path)!r}).read_text()), "
        f"cache_path=Path({str(cache)!r}), sandbox='bwrap')\n"
    )
    process = subprocess.Popen([sys.executable, "-c", script], start_new_session=True)
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        if cache.is_file() and cache.read_text().count("\n") >= 2:
            break
        time.sleep(0.05)
    os.killpg(process.pid, signal.SIGKILL)
    process.wait()
    done_before = len(read_cache(cache))
    assert 2 <= done_before < len(rows)

    kept, rejected, funnel = execute_rows(rows, cache_path=cache, sandbox="bwrap")
    assert len(kept) == len(rows) and not rejected
    assert funnel["executed"] == len(rows) - done_before
    hashes = [json.loads(line)["hash"] for line in cache.read_text().splitlines()]
    assert len(hashes) == len(set(hashes)) == len(rows)


def test_curate_step_execute_writes_the_funnel_and_keeps_rows_that_pass(
    tmp_path: Path, compose
) -> None:
    from magicoder.curation.app import run_curate
    from magicoder.curation.execute import build_program
    from magicoder.sandbox import run

    raw = tmp_path / "raw.jsonl"
    rows = [
        {**row, "seed": f"seed {row['index']}", "problem": f"Problem {row['index']}: add."}
        for row in _rows()
    ]
    raw.write_text("".join(json.dumps(row) + "\n" for row in rows))
    overrides = [
        f"inputs=[{raw}]",
        "logger=none",
        "report.enabled=false",
        "shuffle_seed=null",
        "steps=[execute]",
        "execute.sandbox=bwrap",
        "execute.timeout=1.0",
        "format=oss_instruct",
    ]
    cfg = compose("curate", overrides, tmp_path / "run")
    run_curate(cfg)
    out = Path(cfg.output_dir)
    summary = json.loads((out / "summary.json").read_text())
    execute = next(step for step in summary["steps"] if step["step"] == "execute")
    assert execute["funnel"]["in"] == 6 and execute["funnel"]["passed"] == 1
    assert execute["funnel"]["by_lang"]["python"]["with_tests"] == 4
    assert "with tests" in (out / "summary.md").read_text()
    curated = [json.loads(line) for line in (out / "curated.jsonl").read_text().splitlines()]
    assert [row["index"] for row in curated] == [0]
    for row in curated:  # every kept row's tests pass when rerun
        assert run(build_program(row["solution"], row["tests"]), mode="bwrap").ok
    rejects = [json.loads(line) for line in (out / "rejects.jsonl").read_text().splitlines()]
    assert {r["reason"] for r in rejects if r["step"] == "execute"} == {
        "test_failed", "timeout", "no_tests", "syntax", "no_toolchain"
    }  # fmt: skip
