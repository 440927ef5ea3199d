"""Progress lines in logs: training (``LogProgress`` on a real ``lightning.Trainer``),
evaluation generation with the tiny model, and scoring with EvalPlus.

Whether a stage draws a bar or logs lines depends on the real test the code makes (is the
stream a terminal?): the tests point ``sys.stdout`` / ``sys.stderr`` at a file-like buffer or
at one that says it is a terminal. Where a cadence would need wall-clock time, the test asks
for a line every N items instead, so nothing depends on how busy the machine is.
"""

from __future__ import annotations

import functools
import io
import logging
import re
import subprocess
import sys
import textwrap
from pathlib import Path

import lightning as L
import pytest
import torch
from helpers import cpu_trainer, run_module

from magicoder.evaluation import generation
from magicoder.evaluation.benchmarks import load_benchmark
from magicoder.evaluation.generation import generate_completions
from magicoder.evaluation.scoring import score
from magicoder.models import TinyLlama
from magicoder.progress import Progress
from magicoder.training.callbacks import LogProgress, TrainMetrics

ROOT = Path(__file__).resolve().parents[2]


class Terminal(io.StringIO):
    def isatty(self) -> bool:
        return True


class Regression(L.LightningModule):
    """A few parameters learning y = x·w, with the batch layout the collators return."""

    def __init__(self) -> None:
        super().__init__()
        self.layer = torch.nn.Linear(4, 1)

    def training_step(self, batch: dict[str, torch.Tensor], batch_idx: int) -> torch.Tensor:
        loss = torch.nn.functional.mse_loss(self.layer(batch["x"]).squeeze(-1), batch["y"])
        self.log("train/loss", loss, on_step=True)
        return loss

    def configure_optimizers(self) -> torch.optim.Optimizer:
        return torch.optim.SGD(self.parameters(), lr=0.05)


def _batches() -> torch.utils.data.DataLoader:
    """8 examples in batches of 2; with accumulation 2 an epoch is 2 optimizer steps."""
    generator = torch.Generator().manual_seed(0)
    x = torch.randn(8, 4, generator=generator)
    rows = [
        {"x": x[i], "y": x[i].sum(), "attention_mask": torch.ones(3, dtype=torch.long)}
        for i in range(8)
    ]
    return torch.utils.data.DataLoader(rows, batch_size=2)


def _fit(
    root: Path,
    max_steps: int,
    callback: LogProgress,
    ckpt_path: Path | None = None,
    enable_progress_bar: bool = False,
) -> L.Trainer:
    trainer = cpu_trainer(
        max_steps=max_steps,
        accumulate_grad_batches=2,
        enable_progress_bar=enable_progress_bar,
        default_root_dir=str(root),
        callbacks=[TrainMetrics(), callback],
    )
    ckpt = str(ckpt_path) if ckpt_path is not None else None
    trainer.fit(Regression(), train_dataloaders=_batches(), ckpt_path=ckpt)
    return trainer


def _messages(caplog: pytest.LogCaptureFixture, logger: str) -> list[str]:
    return [r.getMessage() for r in caplog.records if r.name == logger]


def test_training_logs_start_periodic_and_end_lines_when_stdout_is_a_file(
    tmp_path: Path, caplog: pytest.LogCaptureFixture, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(sys, "stdout", io.StringIO())
    caplog.set_level(logging.INFO, logger="magicoder.training.callbacks")
    _fit(tmp_path, 6, LogProgress(every_n_steps=2, every_n_seconds=None))
    lines = _messages(caplog, "magicoder.training.callbacks")
    assert lines[0] == "train: start, 0/6 steps, epoch=0"
    periodic = lines[1:-1]
    assert [re.match(r"train: (\d+/6) \(\d+%\)", line).group(1) for line in periodic] == [
        "2/6",
        "4/6",
        "6/6",
    ]
    for line, epoch in zip(periodic, (0, 1, 2), strict=True):
        assert re.search(r" steps/s, elapsed \d\d:\d\d, ETA \d\d:\d\d, ", line), line
        assert re.search(rf"epoch={epoch}, loss=[\d.e+-]+, lr=0\.05, tokens/s=\d+$", line), line
    assert re.fullmatch(
        r"train: done, 6/6 steps in \d\d:\d\d \(.* steps/s\), epoch=2, loss=[\d.e+-]+, "
        r"lr=0\.05, tokens/s=\d+",
        lines[-1],
    )
    # The loss shown is the one the module logged last.
    losses = [float(re.search(r"loss=([\d.e+-]+)", line).group(1)) for line in periodic]
    assert len(set(losses)) == 3


def test_a_resumed_run_counts_from_its_global_step(
    tmp_path: Path, caplog: pytest.LogCaptureFixture, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(sys, "stdout", io.StringIO())
    first = _fit(tmp_path, 4, LogProgress(every_n_steps=2, every_n_seconds=None))
    ckpt = tmp_path / "last.ckpt"
    first.save_checkpoint(ckpt)
    caplog.clear()
    caplog.set_level(logging.INFO, logger="magicoder.training.callbacks")
    _fit(tmp_path, 8, LogProgress(every_n_steps=2, every_n_seconds=None), ckpt_path=ckpt)
    lines = _messages(caplog, "magicoder.training.callbacks")
    assert lines[0] == "train: start, 4/8 steps, epoch=2"
    assert [re.match(r"train: (\d+/8) ", line).group(1) for line in lines[1:-1]] == [
        "6/8",
        "8/8",
    ]
    assert "ETA" in lines[1]  # the rate is of the steps done since the resume: 2 of them
    assert lines[-1].startswith("train: done, 8/8 steps in ")


def test_no_lines_on_a_terminal_with_lightnings_bar_but_lines_without_a_bar(
    tmp_path: Path, caplog: pytest.LogCaptureFixture, monkeypatch: pytest.MonkeyPatch
) -> None:
    terminal = Terminal()
    monkeypatch.setattr(sys, "stdout", terminal)
    caplog.set_level(logging.INFO, logger="magicoder.training.callbacks")
    _fit(tmp_path, 2, LogProgress(every_n_steps=1), enable_progress_bar=True)
    assert _messages(caplog, "magicoder.training.callbacks") == []
    assert "Epoch 0" in terminal.getvalue()  # Lightning's bar drew there instead
    _fit(tmp_path, 2, LogProgress(every_n_steps=1), enable_progress_bar=False)
    lines = _messages(caplog, "magicoder.training.callbacks")
    assert lines[0] == "train: start, 0/2 steps, epoch=0" and len(lines) == 4


def test_log_progress_refuses_a_bad_cadence() -> None:
    with pytest.raises(ValueError, match="every_n_steps=0"):
        LogProgress(every_n_steps=0)
    with pytest.raises(ValueError, match="every_n_seconds=0"):
        LogProgress(every_n_seconds=0)


@pytest.mark.slow  # a fresh interpreter importing Lightning: ~15 s on two busy cores
def test_a_training_script_with_stdout_in_a_file_logs_progress_lines(tmp_path: Path) -> None:
    """The real condition, in a fresh process: stdout and stderr redirected to a file."""
    script = tmp_path / "train.py"
    script.write_text(
        textwrap.dedent(
            f"""
            import logging, sys
            sys.path[:0] = [{str(Path(__file__).parent)!r}, {str(Path(__file__).parents[1])!r}]
            logging.basicConfig(level=logging.INFO, stream=sys.stdout, format="%(message)s")
            from test_progress_logging import LogProgress, _fit
            from pathlib import Path
            _fit(Path({str(tmp_path)!r}), 6, LogProgress(every_n_steps=3))
            """
        )
    )
    log_file = tmp_path / "train.log"
    with log_file.open("w") as out:
        subprocess.run(
            [sys.executable, str(script)],
            stdout=out,
            stderr=subprocess.STDOUT,
            cwd=ROOT,
            check=True,
            timeout=300,
        )
    text = log_file.read_text()
    assert "train: start, 0/6 steps, epoch=0" in text
    assert re.search(r"^train: 3/6 \(50%\) .* ETA .* loss=", text, re.M), text
    assert re.search(r"^train: done, 6/6 steps in ", text, re.M), text


@pytest.mark.slow  # the whole magicoder-train smoke run in a fresh process
def test_magicoder_train_with_stdout_in_a_file_logs_progress_to_console_and_run_log(
    tmp_path: Path,
) -> None:
    run_dir, console = tmp_path / "run", tmp_path / "console.txt"
    args = [
        "experiment=smoke",
        "eval=none",
        "logger=csv",
        "trainer.max_steps=4",
        "callbacks.log_progress.every_n_steps=2",
        f"hydra.run.dir={run_dir}",
    ]
    with console.open("w") as out:
        result = run_module(
            "magicoder.cli.train", args, tmp_path, timeout=900, stdout=out, stderr=subprocess.STDOUT
        )
    assert result.returncode == 0, console.read_text()[-3000:]
    (run_log,) = run_dir.glob("*.log")  # Hydra's <run dir>/<job>.log
    for text in (console.read_text(), run_log.read_text()):
        assert re.search(r"\] - train[^:]*: start, 0/4 steps, epoch=0$", text, re.M), text
        assert re.search(r"\] - train[^:]*: 2/4 \(50%\) .*, ETA .*, loss=.*, lr=", text), text
        assert re.search(r"\] - train[^:]*: done, 4/4 steps in ", text), text


@pytest.fixture(scope="module")
def tiny(tmp_path_factory: pytest.TempPathFactory):
    cache = tmp_path_factory.mktemp("tiny-progress")
    return TinyLlama(name="tiny", cache_dir=str(cache), vocab_size=512, tokenizer_files=5).load()


PROMPTS = ["def add(a, b):", "x", "class Stack:", "import os\n", "for i in", "print("]


def test_evaluation_generation_logs_progress_when_stderr_is_a_file(
    tiny, caplog: pytest.LogCaptureFixture, monkeypatch: pytest.MonkeyPatch
) -> None:
    model, tokenizer = tiny
    monkeypatch.setattr(sys, "stderr", io.StringIO())
    # The default cadence is 30 s; ask for a line every 2 tasks to see them in a short run.
    monkeypatch.setattr(generation, "Progress", functools.partial(Progress, every_n=2))
    caplog.set_level(logging.INFO, logger=generation.logger.name)
    completions = generate_completions(
        model,
        tokenizer,
        PROMPTS,
        batch_size=2,
        max_new_tokens=6,
        stop=None,
        desc="generate humaneval",
    )
    assert len(completions) == len(PROMPTS)
    lines = [m for m in _messages(caplog, generation.logger.name) if "humaneval" in m]
    assert lines[0] == "generate humaneval: start, 0/6 tasks"
    assert [re.match(r"generate humaneval: (\d/6) \(", m).group(1) for m in lines[1:-1]] == [
        "2/6",
        "4/6",
        "6/6",
    ]
    assert all(re.search(r"tasks/s, elapsed .*, tokens_per_sec=\d+$", m) for m in lines[1:-1])
    assert lines[-1].startswith("generate humaneval: done, 6/6 tasks in ")


def test_evaluation_generation_draws_a_bar_on_a_terminal(
    tiny, caplog: pytest.LogCaptureFixture, monkeypatch: pytest.MonkeyPatch
) -> None:
    model, tokenizer = tiny
    terminal = Terminal()
    monkeypatch.setattr(sys, "stderr", terminal)
    caplog.set_level(logging.INFO, logger=generation.logger.name)
    generate_completions(model, tokenizer, PROMPTS[:2], batch_size=2, max_new_tokens=2)
    assert "generate: 100%" in terminal.getvalue() and "2/2" in terminal.getvalue()
    assert not any("generate: start" in m for m in _messages(caplog, generation.logger.name))


@pytest.mark.slow  # spawns an EvalPlus worker: ~13 s on two busy cores
def test_scoring_logs_progress_and_keeps_the_statuses(
    data_dir: Path, caplog: pytest.LogCaptureFixture, monkeypatch: pytest.MonkeyPatch
) -> None:
    from magicoder.evaluation import scoring

    benchmark = load_benchmark("humaneval", str(data_dir / "HumanEvalPlus-v0.1.10.jsonl.gz"), 3)
    problems = list(benchmark.problems.values())
    samples = [
        {"task_id": p["task_id"], "solution": p["prompt"] + p["canonical_solution"]}
        for p in problems[:2]
    ] + [{"task_id": problems[2]["task_id"], "solution": "def nothing():\n    pass\n"}]
    monkeypatch.setattr(sys, "stderr", io.StringIO())
    monkeypatch.setattr(scoring, "Progress", functools.partial(Progress, every_n=1))
    caplog.set_level(logging.INFO, logger=scoring.logger.name)
    rows = score(benchmark, samples, n_workers=1)
    assert [(r["base_status"], r["plus_status"]) for r in rows] == [
        ("pass", "pass"),
        ("pass", "pass"),
        ("fail", "fail"),
    ]
    lines = [m for m in _messages(caplog, scoring.logger.name) if m.startswith("score ")]
    assert lines[0] == "score humaneval: start, 0/3 tasks"
    assert [re.match(r"score humaneval: (\d/3) \(", m).group(1) for m in lines[1:-1]] == [
        "1/3",
        "2/3",
        "3/3",
    ]
    assert lines[-2].endswith(", base_passed=2, plus_passed=2")
    assert re.fullmatch(
        r"score humaneval: done, 3/3 tasks in \d\d:\d\d \(.*\), base_passed=2, plus_passed=2",
        lines[-1],
    )
