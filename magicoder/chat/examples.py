"""Example instructions for the demo: the first tasks of HumanEval+ and MBPP+, worded as the
paper's evaluation words them, or a few embedded ones where the benchmark files are absent."""

from __future__ import annotations

import gzip
import json
import logging
from dataclasses import dataclass
from itertools import islice
from pathlib import Path

from magicoder.evaluation.benchmarks import BENCHMARK_NAMES, humaneval_prompt, mbpp_prompt
from magicoder.evaluation.protocols import get_protocol

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class Example:
    """One example instruction: ``label`` names it on its button (e.g. "HumanEval/0")."""

    label: str
    instruction: str


EMBEDDED_EXAMPLES: tuple[Example, ...] = (
    Example(
        "fibonacci",
        "Write a Python function `fib(n)` that returns the n-th Fibonacci number, with "
        "fib(0) == 0 and fib(1) == 1.",
    ),
    Example(
        "word count",
        "Write a Python function that takes a text and returns a dict mapping each word, "
        "lower-cased, to how often it occurs.",
    ),
)
"""Used when no benchmark file is found."""


def benchmark_examples(
    benchmark_dir: str | None, per_benchmark: int, protocol: str = "evalplus-current"
) -> list[Example]:
    """The first ``per_benchmark`` tasks of each benchmark release found in ``benchmark_dir``.

    Each instruction is the one evaluation sends the model (``humaneval_prompt`` /
    ``mbpp_prompt``). Only the first rows of each file are read, so this stays quick.

    Args:
        benchmark_dir: Where the release files are (``paths.benchmark_dir``); None: nowhere.
        per_benchmark: How many tasks per benchmark (0: no benchmark examples).
        protocol: Whose release files to look for.

    Returns:
        The examples, HumanEval+ first; :data:`EMBEDDED_EXAMPLES` when no file is there.
    """
    examples: list[Example] = []
    builders = {"humaneval": humaneval_prompt, "mbpp": mbpp_prompt}
    spec = get_protocol(protocol)
    for name in BENCHMARK_NAMES:
        if benchmark_dir is None or per_benchmark < 1:
            break
        path = Path(benchmark_dir).expanduser() / spec.release_file(name)
        if not path.is_file():
            logger.info("No %s examples: %s does not exist", name, path)
            continue
        with gzip.open(path, "rt", encoding="utf-8") as lines:
            for line in islice(lines, per_benchmark):
                problem = json.loads(line)
                instruction, _ = builders[name](problem)
                examples.append(Example(problem["task_id"], instruction))
    return examples or list(EMBEDDED_EXAMPLES)
