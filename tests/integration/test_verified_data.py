"""Execution-verified OSS-Instruct end to end: ``magicoder-generate prompt=oss-instruct-tests-v1``
against an OpenAI-compatible server, then ``magicoder-curate steps=[...,execute]`` on its rows.

Two teachers. The scripted fake (``tests/fake_openai.py``) gives rows that pass, fail, hang,
lack tests or do not parse, so every reject reason is covered. The real ``transformers serve``
serves a tiny model overfit on the exact requests the run sends (an untrained one never writes
the three sections), so the whole path runs without a fake: chat template, greedy decoding,
the server's ``finish_reason``, parsing, the sandbox.
"""

from __future__ import annotations

import json
import logging
import time
from pathlib import Path

import pytest
import torch
import torch.nn.functional as F
from fake_openai import FakeOpenAI
from transformers import AutoModelForCausalLM, AutoTokenizer, PreTrainedTokenizerBase

from magicoder.curation.app import run_curate
from magicoder.curation.execute import build_program
from magicoder.generation.app import build_messages, plan_generation, run_generate
from magicoder.generation.serve import (
    TransformersServer,
    free_port,
    has_chat_template,
    with_chat_template,
)
from magicoder.models import TinyLlama
from magicoder.prompts import OSS_INSTRUCT_TESTS_PROMPT_VERSION
from magicoder.sandbox import bwrap_problem, run

log = logging.getLogger(__name__)

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


def generate_args(tmp_path: Path, base_url: str, model: str, num_rows: int) -> list[str]:
    """``magicoder-generate`` overrides: the tests prompt, ``num_rows`` stdlib seeds."""
    return [
        "teacher=transformers-serve",
        f"teacher.base_url={base_url}",
        f"teacher.model={model}",
        f"prompt={OSS_INSTRUCT_TESTS_PROMPT_VERSION}",
        f"num_rows={num_rows}",
        f"output_dir={tmp_path / 'data'}",
        f"cache_path={tmp_path / 'responses.sqlite'}",
        "seeds.max_considered_docs=200",
        "logger=none",
        "progress_bar=false",
    ]


def curate_args(raw: Path, cache: Path) -> list[str]:
    """``magicoder-curate`` overrides: the default cleaning, then ``execute`` under bubblewrap."""
    return [
        f"inputs=[{raw}]",
        "logger=none",
        "report.enabled=false",
        "steps=[exact_dedup,copied_code,decontaminate,execute]",
        "execute.sandbox=bwrap",
        "execute.timeout=2.0",
        "execute.n_workers=2",
        f"execute.cache_path={cache}",
    ]


def raw_rows(data: Path) -> Path:
    """The accepted-row file ``magicoder-generate`` wrote to ``data``."""
    (raw,) = [p for p in data.glob("oss-instruct-*.jsonl") if "rejects" not in p.name]
    return raw


def execute_funnel(summary: dict) -> dict:
    """The ``execute`` step's funnel in a curation summary."""
    return next(s for s in summary["steps"] if s["step"] == "execute")["funnel"]


def test_generated_rows_are_kept_exactly_when_their_tests_pass(tmp_path: Path, compose) -> None:
    data = tmp_path / "data"
    with FakeOpenAI(replies=scripted_reply) as fake:
        generate = generate_args(tmp_path, fake.base_url, "fake", len(EXPECTED))
        metrics = run_generate(compose("generate", generate, tmp_path / "generate"))
        assert "[Tests]" in fake.requests[0]["messages"][1]["content"]
    assert metrics["generate/accepted"] == len(EXPECTED)
    raw = raw_rows(data)
    generated = {row["index"]: row for row in _lines(raw)}
    assert generated[4]["tests"] == ""  # kept by the parser, rejected by execute
    assert generated[0]["tests"].startswith("```python\nassert scale_0(3) == 6")

    cache = tmp_path / "execute-cache.jsonl"
    curate = curate_args(raw, cache)
    run_curate(compose("curate", curate, tmp_path / "curate"))
    out = tmp_path / "curate"
    summary = json.loads((out / "summary.json").read_text())
    assert [s["step"] for s in summary["steps"]][-2:] == ["execute", "format"]
    assert all(s["dropped"] == 0 for s in summary["steps"][:-2])  # only execute drops rows
    funnel = execute_funnel(summary)
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
    funnel_again = execute_funnel(again)
    assert (funnel_again["executed"], funnel_again["cached"]) == (0, 6)
    assert (tmp_path / "again" / "curated.jsonl").read_text() == (out / "curated.jsonl").read_text()
    assert len(_lines(cache)) == 6


MEMORIZED = [
    (
        "passed",
        "[Problem Description]\nWrite `double(x)`, which returns twice `x`.\n\n"
        "[Solution]\n```python\ndef double(x):\n    return 2 * x\n```\n\n"
        "[Tests]\n```python\nassert double(3) == 6\n```",
    ),
    (
        "test_failed",
        "[Problem Description]\nWrite `triple(x)`, which returns three times `x`.\n\n"
        "[Solution]\n```python\ndef triple(x):\n    return x + 3\n```\n\n"
        "[Tests]\n```python\nassert triple(4) == 12\n```",
    ),
    (
        "no_tests",
        "[Problem Description]\nWrite `half(x)`, which returns half of `x`.\n\n"
        "[Solution]\n```python\ndef half(x):\n    return x / 2\n```",
    ),
]
"""The answer the served model learns for request i, and what ``execute`` must find of it."""

MAX_TOKENS = 128  # teacher.max_tokens: room for the longest answer (81 tokens with EOS)
MAX_STEPS = 400
MARGIN = 2.0
"""Training stops once every answer token (EOS included) beats every other token by this
many logits, so greedy decoding gives the answers with room for the server's arithmetic."""


def chat_ids(tokenizer: PreTrainedTokenizerBase, messages: list[dict[str, str]]) -> list[int]:
    """The prompt tokens ``transformers serve`` feeds the model for ``messages``."""
    encoded = tokenizer.apply_chat_template(messages, add_generation_prompt=True, return_dict=True)
    return list(encoded["input_ids"])


def memorize(
    model_dir: Path, requests: list[list[dict[str, str]]], answers: list[str], dest: Path
) -> int:
    """Overfit the model in ``model_dir`` until greedy decoding answers each request with its
    answer and stops; save it to ``dest``. A plain full-batch AdamW loop, no dropout, so the
    run is deterministic.

    Returns:
        The optimizer steps it took.
    """
    tokenizer = AutoTokenizer.from_pretrained(model_dir)
    model = AutoModelForCausalLM.from_pretrained(model_dir)
    prompts = [chat_ids(tokenizer, messages) for messages in requests]
    targets = [tokenizer(a, add_special_tokens=False)["input_ids"] for a in answers]
    targets = [t + [tokenizer.eos_token_id] for t in targets]
    length = max(len(p) + len(t) for p, t in zip(prompts, targets, strict=True))
    # Right padding needs no attention mask (a causal model never looks ahead), and only the
    # positions from the first answer token on need logits: the vocabulary projection of the
    # long shared prompt would cost most of each step.
    keep = length - min(len(p) for p in prompts) + 1
    ids = torch.full((len(prompts), length), tokenizer.pad_token_id)
    labels = torch.full_like(ids, -100)
    for i, (p, t) in enumerate(zip(prompts, targets, strict=True)):
        ids[i, : len(p) + len(t)] = torch.tensor(p + t)
        labels[i, len(p) : len(p) + len(t)] = torch.tensor(t)
    labels = labels[:, length - keep + 1 :]
    answer = labels != -100
    index = labels.clamp(min=0).unsqueeze(-1)

    optimizer = torch.optim.AdamW(model.parameters(), lr=4e-3, betas=(0.9, 0.95), weight_decay=0)
    model.train()
    for step in range(MAX_STEPS + 1):
        logits = model(input_ids=ids, logits_to_keep=keep).logits[:, :-1]
        with torch.no_grad():
            best_other = logits.scatter(-1, index, float("-inf")).amax(-1)
            margin = (logits.gather(-1, index).squeeze(-1) - best_other)[answer].min().item()
        if margin >= MARGIN:
            break
        if step == MAX_STEPS:
            pytest.fail(f"the tiny model did not memorize its answers in {MAX_STEPS} steps")
        loss = F.cross_entropy(logits.flatten(0, 1), labels.flatten())
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
    model.save_pretrained(dest)
    tokenizer.save_pretrained(dest)  # with its chat template
    return step


def greedy_answer(model_dir: Path, messages: list[dict[str, str]]) -> tuple[str, bool]:
    """What greedy decoding answers ``messages`` with (as the server decodes it), and whether
    it stopped on EOS within ``MAX_TOKENS``."""
    tokenizer = AutoTokenizer.from_pretrained(model_dir)
    model = AutoModelForCausalLM.from_pretrained(model_dir)
    prompt = torch.tensor([chat_ids(tokenizer, messages)])
    out = model.generate(prompt, do_sample=False, max_new_tokens=MAX_TOKENS)
    new = out[0, prompt.shape[-1] :]
    stopped = len(new) < MAX_TOKENS and new[-1].item() == tokenizer.eos_token_id
    return tokenizer.decode(new, skip_special_tokens=True), stopped


@pytest.mark.slow
def test_rows_of_a_served_tiny_model_are_kept_exactly_when_their_tests_pass(
    tmp_path: Path, compose, tiny_cache: Path
) -> None:
    served = tmp_path / "memorized"
    port = free_port()
    generate = [
        *generate_args(tmp_path, f"http://127.0.0.1:{port}/v1", str(served), len(MEMORIZED)),
        "teacher.temperature=0.0",  # greedy: the server turns sampling off at temperature 0
        "teacher.top_p=null",
        f"teacher.max_tokens={MAX_TOKENS}",
    ]
    cfg = compose("generate", generate, tmp_path / "generate")
    # The requests the run will send, from the app's own plan (it writes the seed file the
    # run then reads).
    plan = plan_generation(cfg)
    assert [row["index"] for row in plan.pending] == list(range(len(MEMORIZED)))
    requests = [build_messages(*plan.prompts, row["seed"]) for row in plan.pending]
    answers = [answer for _, answer in MEMORIZED]

    base = TinyLlama(name="tiny", num_hidden_layers=1, cache_dir=str(tiny_cache)).build()
    started = time.monotonic()
    steps = memorize(with_chat_template(base, tmp_path / "tiny-chat"), requests, answers, served)
    log.info(
        "memorized %d answers in %d steps, %.1f s", len(answers), steps, time.monotonic() - started
    )
    assert has_chat_template(served)  # the template the server renders requests with
    for messages, answer in zip(requests, answers, strict=True):
        assert greedy_answer(served, messages) == (answer, True)

    with TransformersServer(served, port=port, log_path=tmp_path / "server.log"):
        metrics = run_generate(cfg)
    assert metrics["generate/accepted"] == len(MEMORIZED) and metrics["generate/rejected"] == 0
    raw = raw_rows(tmp_path / "data")
    generated = {row["index"]: row for row in _lines(raw)}
    assert generated[0]["solution"] == "```python\ndef double(x):\n    return 2 * x\n```"
    assert generated[0]["tests"] == "```python\nassert double(3) == 6\n```"
    assert generated[2]["tests"] == ""
    for row in generated.values():
        assert row["teacher_model"] == str(served) and row["finish_reason"] == "stop"

    run_curate(compose("curate", curate_args(raw, tmp_path / "execute.jsonl"), tmp_path / "curate"))
    out = tmp_path / "curate"
    summary = json.loads((out / "summary.json").read_text())
    funnel = execute_funnel(summary)
    assert (funnel["in"], funnel["with_tests"], funnel["passed"]) == (3, 2, 1)
    assert funnel["by_lang"] == {"python": {"in": 3, "with_tests": 2, "passed": 1}}
    table = (out / "summary.md").read_text()
    assert "| with tests | passing |" in table and "| python | 3 | 0 | 2 | 1 |" in table

    rejects = {r["index"]: r for r in _lines(out / "rejects.jsonl")}
    assert {i: r["reason"] for i, r in rejects.items()} == {
        i: outcome for i, (outcome, _) in enumerate(MEMORIZED) if outcome != "passed"
    }
    assert (
        "AssertionError" in rejects[1]["output"]
        and "assert triple(4) == 12" in rejects[1]["output"]
    )
    (kept,) = _lines(out / "curated.jsonl")
    assert kept["index"] == 0 and kept["response"] == generated[0]["solution"]
    assert kept["teacher_model"] == str(served)
    assert run(build_program(kept["response"], kept["tests"]), mode="bwrap").ok
