"""Execution-verified OSS-Instruct end to end: ``magicoder-generate prompt=oss-instruct-tests-v1``
against an OpenAI-compatible server, then ``magicoder-curate steps=[...,execute]`` on its rows.

The teacher is the scripted fake (``tests/fake_openai.py``): the tiny model behind ``transformers
serve`` never writes the three sections, so only a script can give rows that pass, fail, hang,
lack tests or do not parse, and know which is which.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from fake_openai import FakeOpenAI

from magicoder.curation.app import run_curate
from magicoder.curation.execute import build_program
from magicoder.generation.app import run_generate
from magicoder.prompts import OSS_INSTRUCT_TESTS_PROMPT_VERSION
from magicoder.sandbox import bwrap_problem, run

pytestmark = pytest.mark.skipif(
    bwrap_problem() is not None, reason=f"needs a working bubblewrap: {bwrap_problem()}"
)

SEED = 976  # conf/seeds/stdlib.yaml: request i asks with seed 976 + i
BODIES = {
    "passed": "return x * {k}",
    "test_failed": "return x + {k}",
    "timeout": "while True:\n        pass",
    "syntax": "return (x * {k}",
}
EXPECTED = ["passed", "passed", "test_failed", "timeout", "no_tests", "syntax", "passed"]
"""What the teacher's reply to request i is, and so what ``execute`` must find."""


def scripted_reply(seed: int) -> str:
    """The teacher's reply to the request with ``seed``: three sections, as the prompt asks."""
    i = seed - SEED
    outcome = EXPECTED[i]
    body = BODIES.get(outcome, BODIES["passed"]).format(k=i + 2)
    reply = (
        "**[Problem Description]**\n"
        f"Write `scale_{i}(x)` that multiplies `x` by {i + 2}.\n\n"
        "**[Solution]**\n"
        f"```python\ndef scale_{i}(x):\n    {body}\n```\n"
    )
    if outcome != "no_tests":
        reply += (
            "\n**[Tests]**\n"
            f"```python\nassert scale_{i}(3) == {3 * (i + 2)}\nassert scale_{i}(0) == 0\n```\n"
        )
    return reply


def _lines(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text().splitlines()]


def test_generated_rows_are_kept_exactly_when_their_tests_pass(tmp_path: Path, compose) -> None:
    data = tmp_path / "data"
    with FakeOpenAI(replies=scripted_reply) as fake:
        generate = [
            "teacher=transformers-serve",
            f"teacher.base_url={fake.base_url}",
            "teacher.model=fake",
            f"prompt={OSS_INSTRUCT_TESTS_PROMPT_VERSION}",
            f"num_rows={len(EXPECTED)}",
            f"output_dir={data}",
            f"cache_path={tmp_path / 'responses.sqlite'}",
            "seeds.max_considered_docs=200",
            "logger=none",
            "progress_bar=false",
        ]
        metrics = run_generate(compose("generate", generate, tmp_path / "generate"))
        assert "[Tests]" in fake.requests[0]["messages"][1]["content"]
    assert metrics["generate/accepted"] == len(EXPECTED)
    (raw,) = [p for p in data.glob("oss-instruct-*.jsonl") if "rejects" not in p.name]
    generated = {row["index"]: row for row in _lines(raw)}
    assert generated[4]["tests"] == ""  # kept by the parser, rejected by execute
    assert generated[0]["tests"].startswith("```python\nassert scale_0(3) == 6")

    cache = tmp_path / "execute-cache.jsonl"
    curate = [
        f"inputs=[{raw}]",
        "logger=none",
        "report.enabled=false",
        "steps=[exact_dedup,copied_code,decontaminate,execute]",
        "execute.sandbox=bwrap",
        "execute.timeout=2.0",
        "execute.n_workers=2",
        f"execute.cache_path={cache}",
    ]
    run_curate(compose("curate", curate, tmp_path / "curate"))
    out = tmp_path / "curate"
    summary = json.loads((out / "summary.json").read_text())
    assert [s["step"] for s in summary["steps"]][-2:] == ["execute", "format"]
    assert all(s["dropped"] == 0 for s in summary["steps"][:-2])  # only execute drops rows
    funnel = next(s for s in summary["steps"] if s["step"] == "execute")["funnel"]
    n_passing = EXPECTED.count("passed")
    assert (funnel["in"], funnel["with_tests"], funnel["passed"]) == (7, 6, n_passing)
    assert funnel["by_lang"] == {"python": {"in": 7, "with_tests": 6, "passed": n_passing}}
    assert (funnel["executed"], funnel["cached"]) == (6, 0)

    rejects = {r["index"]: r for r in _lines(out / "rejects.jsonl")}
    assert {i: r["reason"] for i, r in rejects.items()} == {
        i: outcome for i, outcome in enumerate(EXPECTED) if outcome != "passed"
    }
    assert all(r["step"] == "execute" for r in rejects.values())
    assert "AssertionError" in rejects[2]["output"]
    assert "SyntaxError" in rejects[5]["output"]

    curated = _lines(out / "curated.jsonl")
    assert sorted(row["index"] for row in curated) == [0, 1, 6]
    for row in curated:  # training rows that still carry their tests, which pass when rerun
        assert row["response"] == generated[row["index"]]["solution"]
        assert row["instruction"].endswith(generated[row["index"]]["problem"])
        assert row["teacher_model"] == "fake" and row["tests"]
        assert run(build_program(row["response"], row["tests"]), mode="bwrap").ok
    # Rows carry no prompt version: it reaches the curated data through the raw file the
    # summary names, whose manifest records the version (and whose name its fingerprint).
    (manifest,) = data.glob("oss-instruct-*.json")
    assert summary["inputs"] == [str(raw)] and raw.with_suffix(".json") == manifest
    prompt = json.loads(manifest.read_text())["prompt"]
    assert prompt["version"] == OSS_INSTRUCT_TESTS_PROMPT_VERSION

    # A rerun executes nothing: every program's result comes from the cache.
    run_curate(compose("curate", curate, tmp_path / "again"))
    again = json.loads((tmp_path / "again" / "summary.json").read_text())
    funnel_again = next(s for s in again["steps"] if s["step"] == "execute")["funnel"]
    assert (funnel_again["executed"], funnel_again["cached"]) == (0, 6)
    assert (tmp_path / "again" / "curated.jsonl").read_text() == (out / "curated.jsonl").read_text()
    assert len(_lines(cache)) == 6
