"""Teacher settings, retry classification, request fingerprints, the response cache."""

from __future__ import annotations

from pathlib import Path

import httpx2
import openai
import pytest

from magicoder.generation.app import build_messages, generation_prompts
from magicoder.generation.teacher import (
    ResponseCache,
    TeacherSettings,
    is_retryable,
    request_fingerprint,
)
from magicoder.prompts import OSS_INSTRUCT_SYSTEM_PROMPT


def settings(**kw) -> TeacherSettings:
    return TeacherSettings(name="t", base_url="http://localhost:8000/v1", model="m", **kw)


def status_error(code: int) -> openai.APIStatusError:
    request = httpx2.Request("POST", "http://x/v1/chat/completions")
    response = httpx2.Response(code, request=request)
    cls = {429: openai.RateLimitError, 500: openai.InternalServerError}.get(
        code, openai.APIStatusError
    )
    return cls(f"HTTP {code}", response=response, body=None)


@pytest.mark.parametrize(
    "code,retry",
    [
        (408, True),
        (409, True),
        (429, True),
        (500, True),
        (503, True),
        (400, False),
        (401, False),
        (404, False),
        (422, False),
    ],
)
def test_retryable_statuses(code: int, retry: bool):
    assert is_retryable(status_error(code)) is retry


def test_timeouts_and_connection_errors_are_retryable_others_not():
    request = httpx2.Request("POST", "http://x")
    assert is_retryable(openai.APITimeoutError(request=request))
    assert is_retryable(openai.APIConnectionError(request=request))
    assert not is_retryable(ValueError("bug"))


def test_request_fingerprint_covers_endpoint_and_body():
    body = {"model": "m", "messages": [{"role": "user", "content": "hi"}], "seed": 1}
    key = request_fingerprint("http://a/v1", body)
    assert key == request_fingerprint("http://a/v1/", dict(body))
    assert key != request_fingerprint("http://b/v1", body)
    assert key != request_fingerprint("http://a/v1", {**body, "seed": 2})


def test_cache_round_trip(tmp_path: Path):
    cache = ResponseCache(tmp_path / "c.sqlite")
    assert cache.get("k") is None
    cache.put("k", {"content": "x", "finish_reason": "stop"})
    cache.close()
    again = ResponseCache(tmp_path / "c.sqlite")
    assert again.get("k") == {"content": "x", "finish_reason": "stop"} and len(again) == 1


def test_settings_check_names_the_bad_key(monkeypatch):
    with pytest.raises(ValueError, match="teacher.base_url"):
        TeacherSettings(name="t", base_url="localhost:8000", model="m").check()
    with pytest.raises(ValueError, match="teacher.concurrency"):
        settings(concurrency=0).check()
    with pytest.raises(ValueError, match="teacher.model"):
        TeacherSettings(name="t", base_url="http://x/v1", model="???").check()
    monkeypatch.delenv("MY_TEACHER_KEY", raising=False)
    with pytest.raises(ValueError, match="MY_TEACHER_KEY"):
        settings(api_key_env="MY_TEACHER_KEY").check()
    monkeypatch.setenv("MY_TEACHER_KEY", "sk-test")
    assert settings(api_key_env="MY_TEACHER_KEY").api_key() == "sk-test"


def test_cost_and_identity():
    s = settings(price_per_million_input=1.0, price_per_million_output=2.0)
    assert s.cost(1_000_000, 500_000) == pytest.approx(2.0)
    # Speed and plumbing settings do not change the data, so not the fingerprint either.
    assert settings(concurrency=64, timeout=5).identity() == settings().identity()
    assert settings(temperature=0.5).identity() != settings().identity()


def test_prompt_versions_and_messages():
    system, user = generation_prompts("oss-instruct-v1")
    assert system == OSS_INSTRUCT_SYSTEM_PROMPT
    messages = build_messages(system, user, "def f():\n    return {1: 2}\n")
    assert messages[0] == {"role": "system", "content": system}
    assert "```\ndef f():\n    return {1: 2}\n\n```" in messages[1]["content"]
    assert "[Problem Description]" in messages[1]["content"]
    with pytest.raises(ValueError, match="oss-instruct-v1"):
        generation_prompts("v0")
