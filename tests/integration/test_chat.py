"""``magicoder-chat`` and the generation path it shares with the demo, on the tiny model:
what they stream is evaluation's greedy generation of the same prompt."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
import torch
from helpers import run_module
from hydra.utils import instantiate

from magicoder.chat.demo import WARNING, Contender, answer_stream
from magicoder.chat.generation import complete_response, stream_response
from magicoder.chat.settings import ChatSettings
from magicoder.evaluation.generation import generate_completions
from magicoder.prompts import format_prompt

INSTRUCTION = "Write a Python function that reverses a string."


@pytest.fixture(scope="module")
def tiny(tmp_path_factory: pytest.TempPathFactory, tiny_cache: Path) -> tuple[Any, Any]:
    from conftest import compose_config

    cfg = compose_config(
        "chat", [f"paths.cache_dir={tiny_cache}"], tmp_path_factory.mktemp("chat-cfg")
    )
    model, tokenizer = instantiate(cfg.model).load()
    return model.eval(), tokenizer


def _greedy(model: Any, tokenizer: Any, prompt: str, max_new_tokens: int, stop: str | None):
    [completion] = generate_completions(
        model, tokenizer, [prompt], batch_size=1, max_new_tokens=max_new_tokens, stop=stop
    )
    return completion


def test_chat_cli_prints_the_streamed_greedy_answer(
    tmp_path: Path, tiny_cache: Path, tiny: tuple[Any, Any]
):
    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # as the CLI runs (OMP_NUM_THREADS=1)
    try:
        expected = _greedy(*tiny, format_prompt(INSTRUCTION), 32, None)
    finally:
        torch.set_num_threads(threads)
    result = run_module(
        "magicoder.cli.chat",
        [
            f"instruction='{INSTRUCTION}'",
            "generation.max_new_tokens=32",
            f"paths.cache_dir={tiny_cache}",
            f"hydra.run.dir={tmp_path}",
        ],
        tmp_path,
        timeout=300,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    assert expected.strip() and f"{expected}\n" in result.stdout
    [row] = [json.loads(line) for line in (tmp_path / "transcript.jsonl").read_text().splitlines()]
    assert (row["model"], row["instruction"], row["response"]) == ("tiny", INSTRUCTION, expected)
    assert json.loads((tmp_path / "metrics.json").read_text())["chat/responses"] == 1


def test_chat_cli_names_a_missing_run_stage_without_a_traceback(
    tmp_path: Path, compose, capsys: pytest.CaptureFixture
):
    from magicoder.cli.chat import app

    (tmp_path / "run" / "model" / "sft").mkdir(parents=True)
    (tmp_path / "run" / "model" / "sft" / "config.json").write_text("{}")
    cfg = compose("chat", [f"run={tmp_path / 'run'}", "stage=dpo", "instruction=hi"], tmp_path)
    with pytest.raises(SystemExit) as exit_info:
        app.__wrapped__(cfg)  # the body under @hydra.main, as the console script runs it
    assert exit_info.value.code == 2
    message = capsys.readouterr().err
    assert message.startswith("magicoder-chat: stage='dpo': run") and "['sft']" in message


def test_streamed_pieces_join_to_evaluations_greedy_completion(tiny: tuple[Any, Any]):
    model, tokenizer = tiny
    settings = ChatSettings(max_new_tokens=20)
    pieces = list(stream_response(model, tokenizer, INSTRUCTION, settings))
    assert len(pieces) > 1  # streamed, not in one go
    assert "".join(pieces) == _greedy(model, tokenizer, format_prompt(INSTRUCTION), 20, None)


def test_a_response_prefix_and_stop_string_follow_evaluations_rule(tiny: tuple[Any, Any]):
    model, tokenizer = tiny
    full = complete_response(model, tokenizer, INSTRUCTION, ChatSettings(max_new_tokens=20))
    stop = full[5:7]  # a string the greedy answer contains
    settings = ChatSettings(max_new_tokens=20, stop=stop, response_prefix="```python\n")
    text = complete_response(model, tokenizer, INSTRUCTION, settings)
    generated = _greedy(model, tokenizer, format_prompt(INSTRUCTION, "```python\n"), 20, stop)
    assert text.startswith("```python\n")
    body = text.removeprefix("```python\n")
    assert body.endswith(stop) and body.count(stop) == 1
    assert generated.startswith(body)


def test_too_long_an_instruction_is_refused_and_the_length_fits_the_context(
    tiny: tuple[Any, Any],
):
    model, tokenizer = tiny
    with pytest.raises(ValueError, match="instruction is too long.*at most 2048"):
        next(stream_response(model, tokenizer, "x = 1\n" * 2000, ChatSettings()))
    with pytest.raises(ValueError, match="instruction is empty"):
        next(stream_response(model, tokenizer, "  \n", ChatSettings()))


def test_the_demo_handler_answers_bad_input_with_a_message(tiny: tuple[Any, Any]):
    respond = answer_stream(Contender("tiny", *tiny), ChatSettings(max_new_tokens=8))
    for instruction, slider, message in (
        ("", 8, "instruction is empty"),
        ("x = 1\n" * 2000, 8, "instruction is too long"),
        (INSTRUCTION, 0, "max_new_tokens=0 must be"),
    ):
        *_, (answer, status) = respond(instruction, slider, 0.0, 1.0)
        assert status.startswith(WARNING) and message in status, status
    *updates, (answer, status) = respond(INSTRUCTION, 8, 0.0, 1.0)
    assert status.startswith("Done") and answer and len(updates) > 2
