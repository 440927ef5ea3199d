"""Sandbox modes and the execute step's pure helpers (no sandbox needed)."""

from __future__ import annotations

import logging

import pytest

import magicoder.sandbox as sandbox_module
from magicoder.curation.execute import build_program, code_of, content_hash, in_shard, parse_shard
from magicoder.evaluation.harness import EvalSettings


def test_bwrap_mode_fails_clearly_and_auto_falls_back_with_one_warning(
    monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    monkeypatch.setattr(sandbox_module, "_bwrap_checked", {})
    monkeypatch.setattr(sandbox_module, "_warned_fallback", False)
    monkeypatch.setattr(sandbox_module.shutil, "which", lambda name: None)
    with pytest.raises(sandbox_module.SandboxUnavailable, match="apt-get install bubblewrap"):
        sandbox_module.resolve_mode("bwrap")
    caplog.set_level(logging.WARNING, logger=sandbox_module.logger.name)
    assert sandbox_module.resolve_mode("auto") == "none"
    assert sandbox_module.resolve_mode("auto") == "none"
    warnings = [r.getMessage() for r in caplog.records if "sandbox=auto" in r.getMessage()]
    assert len(warnings) == 1 and "apt-get install bubblewrap" in warnings[0]
    assert sandbox_module.resolve_mode("none") == "none"


def test_unknown_modes_and_limits_are_refused_by_name() -> None:
    with pytest.raises(ValueError, match="sandbox='docker'"):
        sandbox_module.resolve_mode("docker")
    with pytest.raises(ValueError, match="eval.sandbox='docker'"):
        EvalSettings(sandbox="docker")
    with pytest.raises(ValueError, match="processes=2"):
        sandbox_module.Limits(processes=2)


def test_programs_are_built_from_fenced_code_and_hashed_with_their_limit() -> None:
    solution = "Here:\n```python\ndef f():\n    return 1\n```\nDone."
    tests = "```python\nassert f() == 1\n```"
    program = build_program(solution, tests)
    assert program == "def f():\n    return 1\n\n\nassert f() == 1\n"
    assert code_of("x = 1\n") == "x = 1"
    assert content_hash(program, 10.0) != content_hash(program, 5.0)
    assert content_hash(program, 10.0) == content_hash(build_program(solution, tests), 10.0)


def test_shards_split_hashes_exactly_once() -> None:
    assert parse_shard("1/4") == (1, 4) and parse_shard(None) is None
    for bad in ("4/4", "a/b", "1", "-1/2"):
        with pytest.raises(ValueError, match="shard="):
            parse_shard(bad)
    digests = [content_hash(f"x = {i}", 1.0) for i in range(50)]
    owners = [[i for i in range(4) if in_shard(d, (i, 4))] for d in digests]
    assert all(len(o) == 1 for o in owners)
