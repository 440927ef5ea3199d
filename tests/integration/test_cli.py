"""The console scripts as a user runs them: Hydra owns argv, runs land in the run dir."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import pytest
import torch
from helpers import run_module

from magicoder.evaluation.app import run_evaluate
from magicoder.tracking.wandb_runs import read_run


def _run(args: list[str], tmp_path: Path) -> subprocess.CompletedProcess:
    return run_module(args[0], args[1:], tmp_path, timeout=900)


@pytest.mark.slow
def test_unknown_option_fails_with_hydra_listing_choices(tmp_path: Path):
    result = _run(["magicoder.cli.train", "model=gpt5"], tmp_path)
    assert result.returncode != 0
    assert "gpt5" in result.stderr and "deepseek-coder-6.7b-base" in result.stderr


@pytest.mark.slow
def test_multirun_sweep_from_the_command_line(tmp_path: Path):
    sweep = tmp_path / "sweep"
    result = _run(
        [
            "magicoder.cli.train",
            "-m",
            "experiment=smoke",
            "eval=none",
            "logger=csv",
            "trainer.max_steps=2",
            "trainer.enable_progress_bar=false",
            "optimizer.lr=1e-3,3e-3",
            f"hydra.sweep.dir={sweep}",
        ],
        tmp_path,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    for job, lr in (("0", "1e-3"), ("1", "3e-3")):
        config = (sweep / job / ".hydra" / "config.yaml").read_text()
        assert f"lr: {float(lr)}" in config
        metrics = json.loads((sweep / job / "metrics.json").read_text())
        assert metrics["train/sft/global_step"] == 2
        assert (sweep / job / "model" / "sft" / "config.json").is_file()


@pytest.mark.slow
def test_run_evaluate_scores_the_tiny_model_and_logs_to_wandb(tmp_path: Path, compose, data_dir):
    cfg = compose(
        "evaluate",
        ["eval=humaneval", "eval.limit=2", "eval.max_new_tokens=16", "eval.batch_size=2"],
        tmp_path,
    )
    metrics = run_evaluate(cfg)
    assert set(metrics) == {"eval/tiny/humaneval/pass@1", "eval/tiny/humaneval_plus/pass@1"}
    saved = json.loads((tmp_path / "metrics.json").read_text())
    provenance = saved.pop("provenance")
    assert saved == metrics
    # Every number says how it was made: here a 2-task slice with 16 tokens, so "custom".
    protocol = provenance["protocols"]["eval/tiny/humaneval"]
    assert protocol["name"] == "custom"
    assert protocol["label"] == "evalplus-current, n_tasks=2, max_new_tokens=16"
    assert protocol["fields"]["version"] == "v0.1.10"
    assert protocol["fields"]["sanitizer"] == "tree-sitter"
    assert provenance["packages"]["torch"] == torch.__version__
    assert provenance["git_revision"] != ""
    results = json.loads((tmp_path / "eval/tiny/humaneval/results.json").read_text())
    assert results["protocol"] == protocol
    assert results["provenance"]["packages"] == provenance["packages"]
    assert results["generation"]["dtype"] == "float32"
    assert results["generation"]["attn_implementation"] == "sdpa"
    assert len((tmp_path / "eval/tiny/humaneval/samples.jsonl").read_text().splitlines()) == 2
    run = read_run(tmp_path)
    assert (
        run.summary["eval/tiny/humaneval_plus/pass@1"] == metrics["eval/tiny/humaneval_plus/pass@1"]
    )
    assert run.config["model"]["name"] == "tiny"
    assert run.config["provenance"]["protocols"]["eval/tiny/humaneval"]["id"] == protocol["id"]
