"""``run_chat`` and ``run_demo``: load the configured model(s), then answer in the terminal or
serve the Gradio playground, inside the shared lifecycle (:func:`magicoder.lifecycle.run_app`)."""

from __future__ import annotations

import json
import logging
import sys
from collections.abc import Callable, Iterator
from typing import Any, TextIO

from omegaconf import DictConfig

from magicoder.chat.demo import Contender
from magicoder.chat.generation import stream_response
from magicoder.chat.models import compare_spec, load_model, model_spec
from magicoder.chat.settings import ChatSettings
from magicoder.config import to_dict
from magicoder.lifecycle import Run, run_app

log = logging.getLogger(__name__)

TRANSCRIPT = "transcript.jsonl"
"""Every answered instruction of a chat run, in its run directory."""
QUIT = ("exit", "quit")
CONTINUE = "\\"
"""A line ending with it continues the instruction on the next line."""


def read_instructions(
    read_line: Callable[[str], str] = input, err: TextIO = sys.stderr
) -> Iterator[str]:
    """Instructions typed at the prompt until ``exit``, ``quit`` or end of input (Ctrl-D).

    A line ending with a backslash continues on the next line; blank instructions are skipped.
    """
    print(
        "Type an instruction and press Enter (end a line with \\ to continue it; exit, quit "
        "or Ctrl-D to leave).",
        file=err,
    )
    while True:
        lines: list[str] = []
        prompt = ">>> "
        try:
            while True:
                line = read_line(prompt)
                if not line.endswith(CONTINUE):
                    lines.append(line)
                    break
                lines.append(line[: -len(CONTINUE)])
                prompt = "... "
        except EOFError:
            print(file=err)
            return
        instruction = "\n".join(lines)
        if instruction.strip().lower() in QUIT:
            return
        if instruction.strip():
            yield instruction


def print_response(pieces: Iterator[str], out: TextIO = sys.stdout) -> str:
    """Print ``pieces`` as they come (flushed each time) and return their text."""
    text = ""
    for piece in pieces:
        text += piece
        out.write(piece)
        out.flush()
    out.write("\n")
    out.flush()
    return text


def _chat(run: Run) -> None:
    cfg = run.cfg
    settings = ChatSettings(**to_dict(cfg.generation))
    one_shot = cfg.instruction is not None
    if one_shot and not str(cfg.instruction).strip():
        raise ValueError(
            'instruction is empty: pass instruction="..." with what the model should write, '
            "or leave it unset for an interactive loop."
        )
    spec = model_spec(cfg)
    model, tokenizer = load_model(spec, settings.device)
    instructions = iter([str(cfg.instruction)]) if one_shot else read_instructions()
    answered = 0
    with (run.dir / TRANSCRIPT).open("a", encoding="utf-8") as transcript:
        for instruction in instructions:
            try:
                response = print_response(stream_response(model, tokenizer, instruction, settings))
            except ValueError as err:
                if one_shot:
                    raise
                print(err, file=sys.stderr)
                continue
            answered += 1
            row = {"model": spec.name, "instruction": instruction, "response": response}
            transcript.write(json.dumps({**row, "generation": to_dict(cfg.generation)}) + "\n")
            transcript.flush()
    run.log_metrics({"chat/responses": answered})


def run_chat(cfg: DictConfig) -> dict[str, Any]:
    """Answer ``cfg.instruction`` (or each instruction typed) with the configured model,
    streaming to stdout.

    Args:
        cfg: The composed ``conf/chat.yaml``.

    Returns:
        ``chat/responses``: how many instructions were answered (also in ``metrics.json``;
        the answers are in ``<run dir>/transcript.jsonl``).

    Raises:
        ValueError, FileNotFoundError: For a bad setting, a missing model or run stage, and
            in one-shot mode an empty or too long instruction, naming what to fix.
    """
    return run_app(cfg, _chat)


def load_contenders(cfg: DictConfig, settings: ChatSettings) -> list[Contender]:
    """The demo's models: ``model`` (or ``run`` + ``stage``), then ``compare`` if set."""
    specs = [model_spec(cfg)]
    second = compare_spec(cfg)
    if second is not None:
        specs.append(second)
    labels = [spec.name for spec in specs]
    if len(labels) == 2 and labels[0] == labels[1]:
        labels = [f"{labels[0]} (A)", f"{labels[1]} (B)"]
    contenders = []
    for label, spec in zip(labels, specs, strict=True):
        model, tokenizer = load_model(spec, settings.device)
        contenders.append(Contender(label, model, tokenizer))
    return contenders


def _demo(run: Run) -> None:
    from magicoder.chat.demo import build_demo, import_gradio, launch_kwargs
    from magicoder.chat.examples import benchmark_examples

    cfg = run.cfg
    import_gradio()  # before minutes of loading, say if the extra is missing
    settings = ChatSettings(**to_dict(cfg.generation))
    contenders = load_contenders(cfg, settings)
    examples = benchmark_examples(cfg.benchmark_dir, cfg.examples_per_benchmark)
    demo = build_demo(contenders, settings, examples)
    log.info(
        "Serving %s on http://%s:%d (Ctrl-C stops it)",
        " vs ".join(c.label for c in contenders),
        cfg.server_name,
        cfg.server_port,
    )
    try:
        demo.launch(**launch_kwargs(cfg.server_name, cfg.server_port, cfg.share))
    except KeyboardInterrupt:
        log.info("Stopped")
    finally:
        demo.close()
    run.log_metrics({"demo/models": len(contenders)})


def run_demo(cfg: DictConfig) -> dict[str, Any]:
    """Serve the Gradio playground for the configured model(s) until interrupted.

    Args:
        cfg: The composed ``conf/demo.yaml``.

    Returns:
        ``demo/models``: how many models were served.

    Raises:
        ValueError, FileNotFoundError: For a bad setting or a missing model or run stage.
        ImportError: Without gradio (the ``demo`` extra).
    """
    return run_app(cfg, _demo)
