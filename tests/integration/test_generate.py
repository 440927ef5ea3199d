"""magicoder-generate end to end: a real `transformers serve`, crashes, resume, server faults."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from aiolimiter import AsyncLimiter
from fake_openai import FakeOpenAI
from helpers import cli_env

import magicoder.generation.teacher as teacher_module
from magicoder.generation.app import run_generate
from magicoder.generation.serve import TransformersServer, free_port, with_chat_template
from magicoder.generation.teacher import TeacherConfigError, TeacherUnavailable
from magicoder.models import TinyLlama
from magicoder.tracking.wandb_runs import read_run

RAW_FIELDS = {
    "index",
    "raw_index",
    "lang",
    "seed",
    "problem",
    "solution",
    "teacher_model",
    "teacher_fingerprint",
    "finish_reason",
}


def overrides(tmp_path: Path, base_url: str, *extra: str) -> list[str]:
    return [
        "teacher=transformers-serve",
        f"teacher.base_url={base_url}",
        "teacher.model=fake",
        "teacher.initial_wait=0.01",
        "teacher.max_wait=0.05",
        f"output_dir={tmp_path / 'data'}",
        f"cache_path={tmp_path / 'cache.sqlite'}",
        "seeds.max_considered_docs=200",
        "logger=none",
        "progress_bar=false",
        *extra,
    ]


def lines(path: Path) -> list[dict]:
    text = path.read_text()
    assert text == "" or text.endswith("\n"), f"{path} ends in a partial line"
    return [json.loads(line) for line in text.splitlines()]


def outputs(tmp_path: Path) -> tuple[list[dict], list[dict]]:
    data = tmp_path / "data"
    (rows,) = [p for p in data.glob("oss-instruct-*.jsonl") if not p.name.endswith("rejects.jsonl")]
    (rejects,) = data.glob("oss-instruct-*.rejects.jsonl")
    return lines(rows), lines(rejects)


@pytest.fixture(scope="module")
def served_tiny(tmp_path_factory: pytest.TempPathFactory):
    """`transformers serve` on the tiny model (with a plain chat template added)."""
    root = tmp_path_factory.mktemp("serve")
    model_dir = TinyLlama(name="tiny").build()
    served = with_chat_template(model_dir, root / "tiny-chat")
    with TransformersServer(served, log_path=root / "server.log") as server:
        yield server


@pytest.mark.slow
def test_generation_against_transformers_serve(tmp_path: Path, compose, served_tiny):
    extra = [
        f"teacher.model={served_tiny.model}",
        "teacher.max_tokens=12",
        "teacher.concurrency=3",
        "num_rows=6",
        "logger=wandb",
    ]
    cfg = compose("generate", overrides(tmp_path, served_tiny.base_url, *extra), tmp_path / "run")
    metrics = run_generate(cfg)

    rows, rejects = outputs(tmp_path)
    # The tiny model babbles: nothing parses, and every response is kept with its reason.
    assert rows == []
    assert sorted(r["index"] for r in rejects) == list(range(6))
    for r in rejects:
        assert r["reason"].startswith(("finish_reason=", "no [")), r["reason"]
        assert r["teacher_model"] == served_tiny.model
        assert isinstance(r["response"], str) and r["seed"]
    assert metrics["generate/rejected"] == 6 and metrics["generate/accepted"] == 0
    assert metrics["generate/prompt_tokens"] > 6 * 50  # the paper's prompt is long
    assert metrics["generate/completion_tokens"] > 0
    assert metrics["generate/requests"] == 6

    wandb_run = read_run(tmp_path / "run")
    assert wandb_run.summary["generate/rejected"] == 6
    assert wandb_run.summary["generate/prompt_tokens"] == metrics["generate/prompt_tokens"]
    assert wandb_run.config["teacher"]["model"] == served_tiny.model

    # A rerun of the same config (files deleted) is answered from the response cache.
    for path in (tmp_path / "data").glob("oss-instruct-*"):
        path.unlink()
    cfg = compose("generate", overrides(tmp_path, served_tiny.base_url, *extra), tmp_path / "run2")
    again = run_generate(cfg)
    assert again["generate/cache_hits"] == 6 and again["generate/requests"] == 0
    assert again["generate/prompt_tokens"] == 0 and again["generate/cost_usd"] == 0

    def by_index(r: dict) -> int:
        return r["index"]

    assert sorted(outputs(tmp_path)[1], key=by_index) == sorted(rejects, key=by_index)


def test_accepted_and_rejected_rows_follow_the_file_contracts(tmp_path: Path, compose):
    with FakeOpenAI(length_seeds={976 + 1, 976 + 4}) as fake:
        cfg = compose("generate", overrides(tmp_path, fake.base_url, "num_rows=6"), tmp_path)
        metrics = run_generate(cfg)
        assert [body["seed"] for body in sorted(fake.requests, key=lambda b: b["seed"])] == [
            976 + i for i in range(6)
        ]
        body = fake.requests[0]
        assert body["temperature"] == 0.0 and body["max_tokens"] == 2500
        assert body["messages"][0]["content"].startswith("You are exceptionally skilled")
        assert "Code snippet for inspiration:" in body["messages"][1]["content"]
    rows, rejects = outputs(tmp_path)
    assert sorted(r["index"] for r in rows) == [0, 2, 3, 5]
    assert sorted(r["index"] for r in rejects) == [1, 4]
    for row in rows:
        assert set(row) == RAW_FIELDS
        assert row["problem"].startswith(f"Write a function `scale_{976 + row['index']}")
        assert row["solution"].startswith("```python")
        assert row["teacher_fingerprint"] == "fp_fake" and row["finish_reason"] == "stop"
    assert all(r["reason"] == "finish_reason=length" for r in rejects)
    assert metrics["generate/prompt_tokens"] == 600 and metrics["generate/completion_tokens"] == 240
    (manifest,) = (tmp_path / "data").glob("oss-instruct-*.json")
    assert json.loads(manifest.read_text())["prompt"]["version"] == "oss-instruct-v1"

    with pytest.raises(FileExistsError, match="resume=true"):
        run_generate(cfg)


@pytest.mark.slow
def test_sigkill_midway_then_resume_does_every_index_exactly_once(tmp_path: Path, compose):
    n = 40
    with FakeOpenAI(delay_s=0.15, length_seeds={976 + i for i in range(0, n, 3)}) as fake:
        args = overrides(tmp_path, fake.base_url, f"num_rows={n}", "teacher.concurrency=2")
        proc = subprocess.Popen(
            [sys.executable, "-m", "magicoder.cli.generate", *args, f"hydra.run.dir={tmp_path}/r1"],
            cwd=tmp_path,
            env=cli_env(),
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
        )
        deadline = time.monotonic() + 120
        done = 0
        while time.monotonic() < deadline and proc.poll() is None:
            files = list((tmp_path / "data").glob("oss-instruct-*.jsonl"))
            done = sum(p.read_bytes().count(b"\n") for p in files)
            if done >= 8:
                break
            time.sleep(0.05)
        assert proc.poll() is None, proc.stderr.read().decode()[-3000:] if proc.stderr else ""
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait()
        assert proc.returncode == -signal.SIGKILL

        rows, rejects = outputs(tmp_path)
        first = [r["index"] for r in rows + rejects]
        assert 8 <= len(first) < n and len(set(first)) == len(first)
        # A write torn by a kill leaves a line without its newline; plant one to be sure.
        (rows_path,) = [
            p for p in (tmp_path / "data").glob("oss-instruct-*.jsonl") if "rejects" not in p.name
        ]
        with rows_path.open("ab") as f:
            f.write(b'{"index": 39, "raw_index": 1, "lang": "pyth')

        cfg = compose("generate", [*args, "resume=true"], tmp_path / "r2")
        metrics = run_generate(cfg)
        assert metrics["generate/rows"] == n - len(first)
        resumed_seeds = sorted(
            body["seed"] - 976 for body in fake.requests[-int(metrics["generate/rows"]) :]
        )
        assert not set(resumed_seeds) & set(first)

    rows, rejects = outputs(tmp_path)  # asserts every line is complete
    indices = [r["index"] for r in rows + rejects]
    assert sorted(indices) == list(range(n))
    assert sorted(r["index"] for r in rejects) == list(range(0, n, 3))


def test_transient_server_errors_are_retried_and_reported(tmp_path: Path, compose, caplog):
    script = ["500", "429", "timeout", "drop", "500"]
    with FakeOpenAI(script=script, hang_s=2.0) as fake:
        extra = ["num_rows=3", "teacher.concurrency=1", "teacher.timeout=0.5", "cache=false"]
        metrics = run_generate(
            compose("generate", overrides(tmp_path, fake.base_url, *extra), tmp_path)
        )
        assert fake.actions[:5] == script and len(fake.actions) == 8
    assert metrics["generate/retries"] == 5
    assert metrics["generate/accepted"] == 3
    rows, rejects = outputs(tmp_path)
    assert sorted(r["index"] for r in rows) == [0, 1, 2] and rejects == []
    for reported in ("HTTP 500", "HTTP 429", "timed out", "connection error"):
        assert reported in caplog.text, reported


def test_a_server_that_never_recovers_ends_the_run_with_rows_intact(tmp_path: Path, compose):
    with FakeOpenAI(script=["ok"] * 5, default="500") as fake:
        extra = ["num_rows=12", "teacher.concurrency=1", "teacher.max_attempts=3", "cache=false"]
        cfg = compose("generate", overrides(tmp_path, fake.base_url, *extra), tmp_path / "r1")
        with pytest.raises(TeacherUnavailable, match=r"failed 3 attempts \(HTTP 500.*resume=true"):
            run_generate(cfg)
        rows, rejects = outputs(tmp_path)
        assert sorted(r["index"] for r in rows) == [0, 1, 2, 3, 4] and rejects == []
        assert len(fake.requests) == 5 + 3

        fake.default = "ok"  # the endpoint is back
        cfg = compose(
            "generate", overrides(tmp_path, fake.base_url, *extra, "resume=true"), tmp_path / "r2"
        )
        metrics = run_generate(cfg)
        assert metrics["generate/accepted"] == 7 and metrics["generate/total_accepted"] == 12
    rows, _ = outputs(tmp_path)
    assert sorted(r["index"] for r in rows) == list(range(12))


def test_connection_refused_is_retried_then_fails_clearly(tmp_path: Path, compose, caplog):
    url = f"http://127.0.0.1:{free_port()}/v1"  # nothing listens there
    extra = ["num_rows=2", "teacher.max_attempts=2", "cache=false"]
    with pytest.raises(TeacherUnavailable, match="connection error") as err:
        run_generate(compose("generate", overrides(tmp_path, url, *extra), tmp_path))
    assert url in str(err.value) and "0 accepted and 0 rejected rows are safe" in str(err.value)
    assert "retrying" in caplog.text


def test_bad_key_fails_at_once_and_bad_requests_become_rejects(tmp_path: Path, compose):
    with FakeOpenAI(default="401") as fake:
        cfg = compose("generate", overrides(tmp_path, fake.base_url, "num_rows=2"), tmp_path)
        with pytest.raises(TeacherConfigError, match="API key"):
            run_generate(cfg)
        assert len(fake.requests) <= 2  # no retries
    with FakeOpenAI(script=["400"]) as fake:
        cfg = compose(
            "generate",
            overrides(
                tmp_path, fake.base_url, "num_rows=3", "teacher.concurrency=1", "resume=true"
            ),
            tmp_path,
        )
        run_generate(cfg)
    rows, rejects = outputs(tmp_path)
    assert [r["index"] for r in rejects] == [0]
    assert rejects[0]["reason"].startswith("request rejected (HTTP 400")
    assert sorted(r["index"] for r in rows) == [1, 2]


def test_requests_per_minute_spaces_requests_evenly(tmp_path: Path, compose, monkeypatch):
    """Checked on the limiter's grants (the loop's clock as each acquire returns), not on
    arrival times at the server: a request delayed on a busy machine after its grant may
    arrive right behind the next one without the limit being broken."""
    grants: list[float] = []

    class RecordingLimiter(AsyncLimiter):
        async def acquire(self, amount: float = 1) -> None:
            await super().acquire(amount)
            grants.append(asyncio.get_running_loop().time())

    monkeypatch.setattr(teacher_module, "AsyncLimiter", RecordingLimiter)
    with FakeOpenAI() as fake:
        extra = ["num_rows=6", "teacher.concurrency=6", "teacher.requests_per_minute=300"]
        run_generate(compose("generate", overrides(tmp_path, fake.base_url, *extra), tmp_path))
        assert len(fake.requests) == 6
    gaps = [b - a for a, b in zip(grants, grants[1:], strict=False)]
    assert len(gaps) == 5 and min(gaps) >= 0.2 - 1e-3, gaps  # 300/min: one per 0.2 s


def test_missing_api_key_names_the_variable(tmp_path: Path, compose, monkeypatch):
    monkeypatch.delenv("OPENAI_API_KEY", raising=False)
    cfg = compose("generate", [f"output_dir={tmp_path}", "logger=none"], tmp_path)
    with pytest.raises(ValueError, match="OPENAI_API_KEY"):
        run_generate(cfg)
