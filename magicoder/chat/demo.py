"""The Gradio playground behind ``magicoder-demo``: one instruction, up to two models streaming
their answers side by side.

Each model's answers stream through a queue of its own with one slot (``concurrency_limit=1``),
so two users never run one model at the same time, while the two models of a comparison
generate together. Bad input (an empty or too long instruction, a bad setting) is answered by
a message under the model's answer; the server keeps serving.
"""

from __future__ import annotations

import dataclasses
import logging
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from typing import Any

from magicoder.chat.examples import Example
from magicoder.chat.generation import context_length, stream_response
from magicoder.chat.settings import ChatSettings

logger = logging.getLogger(__name__)

GRADIO_MISSING = (
    "magicoder-demo needs gradio, which comes with the demo extra: pip install -e '.[demo]'"
)
DONE = "Done"
"""Starts the status line of a finished answer (the browser test waits for it)."""
WARNING = "⚠️"
"""Starts the status line of an answer refused or failed."""


@dataclass
class Contender:
    """One model of the demo, loaded.

    Attributes:
        label: Shown above its answers (a model config name or ``<run>/<stage>``).
        model: The causal LM, on its device and in eval mode.
        tokenizer: Its tokenizer.
    """

    label: str
    model: Any
    tokenizer: Any


def import_gradio() -> Any:
    """The gradio module, or an ImportError that says how to install it."""
    try:
        import gradio
    except ImportError as err:
        raise ImportError(GRADIO_MISSING) from err
    return gradio


def answer_stream(
    contender: Contender, base: ChatSettings
) -> Callable[[str, float, float, float], Iterator[tuple[str, str]]]:
    """The event handler that streams ``contender``'s answer: (answer so far, status line).

    The sliders' values replace ``base``'s length, temperature and top-p; anything wrong with
    them or the instruction becomes a status line starting with :data:`WARNING`.
    """

    def respond(
        instruction: str, max_new_tokens: float, temperature: float, top_p: float
    ) -> Iterator[tuple[str, str]]:
        started = time.perf_counter()
        answer = ""
        try:
            settings = dataclasses.replace(
                base,
                max_new_tokens=int(max_new_tokens),
                temperature=float(temperature),
                top_p=float(top_p),
            )
            yield "", "Generating…"
            for piece in stream_response(
                contender.model, contender.tokenizer, instruction, settings
            ):
                answer += piece
                yield answer, "Generating…"
        except ValueError as err:
            yield answer, f"{WARNING} {err}"
            return
        except Exception as err:  # the server keeps serving whatever one request hit
            logger.exception("%s failed to answer", contender.label)
            yield answer, f"{WARNING} Generation failed: {err!r}"
            return
        elapsed = time.perf_counter() - started
        yield answer, f"{DONE} in {elapsed:.1f} s ({len(answer)} characters)."

    return respond


def _with_raw(
    respond: Callable[[str, float, float, float], Iterator[tuple[str, str]]],
) -> Callable[[str, float, float, float], Iterator[tuple[str, str, str]]]:
    """``respond``'s updates with the answer also sent to the raw-text box."""

    def handler(
        instruction: str, max_new_tokens: float, temperature: float, top_p: float
    ) -> Iterator[tuple[str, str, str]]:
        for answer, status in respond(instruction, max_new_tokens, temperature, top_p):
            yield answer, answer, status

    return handler


def build_demo(
    contenders: Sequence[Contender], settings: ChatSettings, examples: Sequence[Example]
) -> Any:
    """The Gradio app: instruction, settings, examples, and one answer column per contender.

    Element ids (for tests and custom CSS): ``instruction``, ``submit``, and per contender
    ``i``: ``answer-i`` (rendered Markdown with a copy button), ``raw-i`` (the raw text, in a
    closed accordion), ``status-i``.

    Args:
        contenders: One or two loaded models.
        settings: The configured generation settings (the sliders start from them).
        examples: Instructions one click puts into the box.

    Returns:
        A ``gradio.Blocks`` with its queue set up; call ``launch`` on it.
    """
    if not 1 <= len(contenders) <= 2:
        raise ValueError(f"the demo shows one or two models, not {len(contenders)}")
    gr = import_gradio()
    longest = max(context_length(c.model) or settings.max_new_tokens for c in contenders)
    with gr.Blocks(title="Magicoder playground", analytics_enabled=False) as demo:
        gr.Markdown(
            "## Magicoder playground\nThe instruction goes into the paper's prompt "
            "(`MAGICODER_PROMPT`) and each model answers the way evaluation generates "
            "(greedy at temperature 0)."
        )
        instruction = gr.Textbox(
            label="Instruction",
            lines=5,
            placeholder="Write a Python function that ...",
            elem_id="instruction",
        )
        submit = gr.Button("Generate", variant="primary", elem_id="submit")
        max_new_tokens, temperature, top_p = _setting_sliders(gr, settings, longest)
        with gr.Row(equal_height=False):
            columns = [_answer_column(gr, index, c) for index, c in enumerate(contenders)]
        gr.Examples(
            examples=[[example.instruction] for example in examples],
            example_labels=[example.label for example in examples],
            inputs=[instruction],
            label="Examples (HumanEval+ / MBPP+, worded as evaluation words them)",
        )
        for index, (contender, (answer, status, raw)) in enumerate(
            zip(contenders, columns, strict=True)
        ):
            submit.click(
                _with_raw(answer_stream(contender, settings)),
                inputs=[instruction, max_new_tokens, temperature, top_p],
                outputs=[answer, raw, status],
                concurrency_limit=1,
                concurrency_id=f"model-{index}",
                api_name=f"answer_{index}",
            )
    demo.queue(default_concurrency_limit=1)
    return demo


def _setting_sliders(gr: Any, settings: ChatSettings, longest: int) -> tuple[Any, Any, Any]:
    """The max-new-tokens, temperature and top-p sliders, in a closed accordion."""
    with gr.Accordion("Generation settings", open=False), gr.Row():
        max_new_tokens = gr.Slider(
            1,
            max(longest, settings.max_new_tokens),
            value=settings.max_new_tokens,
            step=1,
            label="Max new tokens",
        )
        temperature = gr.Slider(
            0.0,
            2.0,
            value=settings.temperature,
            step=0.05,
            label="Temperature (0: greedy, as evaluated)",
        )
        top_p = gr.Slider(0.05, 1.0, value=settings.top_p, step=0.05, label="Top-p (when sampling)")
    return max_new_tokens, temperature, top_p


def _answer_column(gr: Any, index: int, contender: Contender) -> tuple[Any, Any, Any]:
    """One contender's column: its rendered answer, status line and raw text."""
    with gr.Column():
        gr.Markdown(f"### {contender.label}")
        answer = gr.Markdown(
            buttons=["copy"], container=True, elem_id=f"answer-{index}", min_height=80
        )
        status = gr.Markdown(elem_id=f"status-{index}")
        with gr.Accordion("Raw text", open=False):
            raw = gr.Textbox(show_label=False, lines=8, buttons=["copy"], elem_id=f"raw-{index}")
    return answer, status, raw


def launch_kwargs(server_name: str, server_port: int, share: bool) -> dict[str, Any]:
    """``Blocks.launch`` arguments: where to serve, and a theme with local fonts only (the
    default one fetches web fonts, which GPU nodes without internet cannot)."""
    gr = import_gradio()
    theme = gr.themes.Default(
        font=["ui-sans-serif", "system-ui", "sans-serif"],
        font_mono=["ui-monospace", "Consolas", "monospace"],
    )
    return {
        "server_name": server_name,
        "server_port": server_port,
        "share": share,
        "theme": theme,
        "ssr_mode": False,
        "show_error": True,
    }
