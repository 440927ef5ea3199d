"""The shared progress reporter: which lines it logs, when, and with which numbers.

Time is driven by an injected clock, never by sleeping, so nothing depends on how busy the
machine is.
"""

from __future__ import annotations

import functools
import importlib.machinery
import io
import logging
import re
import sys
import types
from collections.abc import Iterator
from typing import Any

import pytest
from lightning.fabric.utilities.rank_zero import rank_zero_only

from magicoder.evaluation import generation
from magicoder.progress import Progress, is_terminal

NAME = "test.progress"


class Clock:
    """Seconds that pass only when the test says so."""

    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


class Terminal(io.StringIO):
    def isatty(self) -> bool:
        return True


@pytest.fixture
def lines() -> Iterator[list[str]]:
    """The messages logged by the reporters under test, as they arrive."""
    collected: list[str] = []
    handler = logging.Handler()
    handler.emit = lambda record: collected.append(record.getMessage())  # type: ignore[method-assign]
    logger = logging.getLogger(NAME)
    level = logger.level
    logger.addHandler(handler)
    logger.setLevel(logging.INFO)
    yield collected
    logger.removeHandler(handler)
    logger.setLevel(level)


def plain(clock: Clock, **kwargs) -> Progress:
    return Progress(plain=True, clock=clock, logger=logging.getLogger(NAME), **kwargs)


def counts(messages) -> list[str]:
    """The ``n/total`` of each progress line (start and end lines left out)."""
    found = (re.search(r"(\S+) \(\d+%\)", m) for m in messages)
    return [match.group(1) for match in found if match]


def test_lines_at_every_multiple_of_every_n_and_at_start_and_end(lines) -> None:
    clock = Clock()
    with plain(clock, total=10, desc="score humaneval", unit="tasks", every_n=4) as progress:
        assert list(lines) == ["score humaneval: start, 0/10 tasks"]
        for _ in range(10):
            progress.update(1)
    assert counts(lines) == ["4/10", "8/10"]
    assert lines[-1] == "score humaneval: done, 10/10 tasks in 00:00 (? tasks/s)"
    assert len(lines) == 4

    # Chunked updates: a line when a multiple of every_n is reached or passed.
    lines.clear()
    with plain(clock, total=20, desc="gen", every_n=5) as progress:
        for step in (3, 3, 3, 11):
            progress.update(step)
    assert counts(lines) == ["6/20", "20/20"]


def test_lines_every_seconds_with_rate_and_eta(lines) -> None:
    clock = Clock()
    with plain(clock, total=10, desc="generate", unit="tasks", every_seconds=30) as progress:
        for _ in range(10):
            clock.now += 10
            progress.update(1)
            if progress.n == 3:
                assert lines[-1] == "generate: 3/10 (30%) 0.1 tasks/s, elapsed 00:30, ETA 01:10"
    assert counts(lines) == ["3/10", "6/10", "9/10"]
    assert lines[-1] == "generate: done, 10/10 tasks in 01:40 (0.1 tasks/s)"


def test_count_or_time_whichever_comes_first(lines) -> None:
    clock = Clock()  # starts at 100 s
    with plain(clock, total=100, every_n=10, every_seconds=30) as progress:
        clock.now = 130
        progress.update(3)  # 30 s since the start line: by time
        assert lines[-1] == "3/100 (3%) 0.1 items/s, elapsed 00:30, ETA 16:10"
        clock.now = 135
        progress.update(7)  # a multiple of 10 after 5 s: by count
        clock.now = 164
        progress.update(1)  # 29 s after the last line, 11 items: neither
        clock.now = 170
        progress.update(0)  # 35 s, but nothing moved
        assert counts(lines) == ["3/100", "10/100"]
        progress.update(1)
    assert counts(lines) == ["3/100", "10/100", "12/100"]
    assert lines[-1] == "stopped at 12/100 items in 01:10 (0.171 items/s)"


def test_resumed_count_rate_and_eta_cover_only_this_run(lines) -> None:
    clock = Clock()
    progress = plain(clock, total=1000, initial=400, desc="train", unit="steps", every_n=100)
    assert lines[-1] == "train: start, 400/1000 steps"
    clock.now += 50
    progress.update(100)  # 100 steps in 50 s here, whatever came before
    assert lines[-1] == "train: 500/1000 (50%) 2.00 steps/s, elapsed 00:50, ETA 04:10"
    progress.close()
    assert lines[-1] == "train: stopped at 500/1000 steps in 00:50 (2.00 steps/s)"


def test_postfix_fields_follow_the_counts_and_replace_the_previous_ones(lines) -> None:
    clock = Clock()
    with plain(clock, total=4, desc="generate", every_n=1, postfix={"epoch": 0}) as progress:
        assert lines[-1] == "generate: start, 0/4 items, epoch=0"
        progress.update(1, accepted=1, rejected=0)
        assert lines[-1].endswith("/s, elapsed 00:00, accepted=1, rejected=0")
        progress.update(1, loss=0.123456, lr=2e-5)
        assert lines[-1].endswith(", loss=0.123, lr=2e-5")
        progress.set_postfix({"tokens/s": 1234}, refresh=True)  # n did not move: no line
        assert len(lines) == 3
    assert lines[-1].endswith("(? items/s), tokens/s=1234")


def test_iterating_yields_everything_and_logs(lines) -> None:
    clock = Clock()
    items = list(plain(clock, iterable=range(7), desc="curate", unit="rows", every_n=3))
    assert items == list(range(7))
    assert counts(lines) == ["3/7", "6/7"]
    assert lines[-1].startswith("curate: done, 7/7 rows")


def test_unknown_total_counts_without_percent_or_eta(lines) -> None:
    clock = Clock()
    with plain(clock, total=float("inf"), desc="dedup", unit="rows", every_n=2) as progress:
        clock.now += 4
        progress.update(2)
    assert list(lines) == [
        "dedup: start, 0 rows",
        "dedup: 2 0.5 rows/s, elapsed 00:04",
        "dedup: done, 2 rows in 00:04 (0.5 rows/s)",
    ]


def test_an_error_inside_still_logs_where_it_stopped(lines) -> None:
    clock = Clock()
    with pytest.raises(RuntimeError), plain(clock, total=5, desc="gen") as progress:
        progress.update(2)
        raise RuntimeError("teacher down")
    assert lines[-1].startswith("gen: stopped at 2/5 items")


def test_only_rank_zero_reports(lines, monkeypatch) -> None:
    monkeypatch.setattr(rank_zero_only, "rank", 1)
    with plain(Clock(), total=3, every_n=1) as progress:
        progress.update(3, loss=1.0)
    assert list(plain(Clock(), iterable=range(3), every_n=1)) == [0, 1, 2]
    assert len(lines) == 0


def test_disabled_shows_nothing(lines) -> None:
    with plain(Clock(), total=3, every_n=1, disable=True) as progress:
        progress.update(3)
    assert len(lines) == 0


def test_a_terminal_gets_a_bar_and_a_file_gets_lines(lines) -> None:
    terminal, log_file = Terminal(), io.StringIO()
    assert is_terminal(terminal) and not is_terminal(log_file) and not is_terminal(object())
    logger = logging.getLogger(NAME)
    with Progress(total=3, desc="bar", file=terminal, logger=logger, every_n=1) as progress:
        progress.update(3)
    assert "3/3" in terminal.getvalue() and "bar: 100%" in terminal.getvalue()
    assert len(lines) == 0
    with Progress(total=3, desc="plain", file=log_file, logger=logger, every_n=1) as progress:
        progress.update(3)
    assert log_file.getvalue() == ""  # nothing drawn into the stream itself
    assert counts(lines) == ["3/3"]


def test_bad_cadence_is_refused() -> None:
    with pytest.raises(ValueError, match="every_n=0"):
        Progress(total=3, every_n=0)
    with pytest.raises(ValueError, match="every_seconds=-1"):
        Progress(total=3, every_seconds=-1)


def _vllm_with_its_progress_calls() -> types.ModuleType:
    """A stand-in ``vllm`` (it needs a GPU machine) whose ``LLM.generate`` drives
    ``use_tqdm`` the way vLLM's does (vllm/entrypoints/llm.py: the requests are added through
    it, then a ``total=`` bar gets ``format_dict``, ``postfix``, ``update``, ``refresh``,
    ``close``)."""
    module = types.ModuleType("vllm")
    module.__spec__ = importlib.machinery.ModuleSpec("vllm", None)

    class SamplingParams:
        def __init__(self, **kwargs: Any):
            self.kwargs = kwargs

    class LLM:
        def __init__(self, **kwargs: Any):
            pass

        def generate(self, prompts: list[dict], params: SamplingParams, use_tqdm: Any = True):
            assert callable(use_tqdm)
            added = list(use_tqdm(prompts, desc="Adding requests"))
            pbar = use_tqdm(
                total=len(added),
                desc="Processed prompts",
                dynamic_ncols=True,
                postfix="est. speed input: 0.00 toks/s, output: 0.00 toks/s",
            )
            outputs, tokens_in = [], 0
            for prompt in added:
                tokens_in += len(prompt["prompt_token_ids"])
                # vLLM divides by the elapsed time after real engine steps; these take none.
                speed = tokens_in / max(pbar.format_dict["elapsed"], 1e-9)
                pbar.postfix = f"est. speed input: {speed:.2f} toks/s, output: 1.00 toks/s"
                pbar.update(1)
                if pbar.n == len(added):
                    pbar.refresh()
                text = f"completion of {len(prompt['prompt_token_ids'])}"
                outputs.append(types.SimpleNamespace(outputs=[types.SimpleNamespace(text=text)]))
            pbar.close()
            return outputs

    module.LLM = LLM  # type: ignore[attr-defined]
    module.SamplingParams = SamplingParams  # type: ignore[attr-defined]
    return module


def test_vllm_generation_reports_through_its_use_tqdm_factory(
    monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    monkeypatch.setitem(sys.modules, "vllm", _vllm_with_its_progress_calls())
    monkeypatch.setattr(sys, "stderr", io.StringIO())  # a log file, not a terminal
    monkeypatch.setattr(generation, "Progress", functools.partial(Progress, every_n=2))
    caplog.set_level(logging.INFO, logger=generation.logger.name)

    def tokenizer(texts: list[str]) -> dict[str, list[list[int]]]:
        return {"input_ids": [[1] * len(text) for text in texts]}

    generate = generation.VllmGenerator("/runs/x/model/sft", tokenizer, max_new_tokens=8)
    completions = generate(["a", "bb", "ccc", "dddd"], desc="generate mbpp")
    assert completions == [f"completion of {n}" for n in (1, 2, 3, 4)]
    logged = [r.getMessage() for r in caplog.records if r.name == generation.logger.name]
    assert not any("Adding requests" in line for line in logged)  # quick, so not shown
    lines = [line for line in logged if line.startswith("generate mbpp")]
    assert lines[0] == "generate mbpp: start, 0/4 tasks, est. speed input: 0.00 toks/s, " + (
        "output: 0.00 toks/s"
    )
    assert counts(lines) == ["2/4", "4/4"]
    assert re.search(r"elapsed [^,]+(, ETA [^,]+)?, est\. speed input: [\d.]+ toks/s", lines[1])
    assert lines[-1].startswith("generate mbpp: done, 4/4 tasks in ")
