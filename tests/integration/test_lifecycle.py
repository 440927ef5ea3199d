"""The one lifecycle every app runs in: failures close the logger, ranks, resume, sweeps."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest
from helpers import TWO_TINY_STAGES, run_module

from magicoder.lifecycle import Run, optimized_metric, run_app
from magicoder.tracking.wandb_runs import read_run
from magicoder.training.app import run_train

QUICK = ["experiment=smoke", "trainer.max_steps=4", "trainer.enable_progress_bar=false"]


@pytest.mark.slow
def test_a_run_that_raises_after_the_logger_starts_is_finished_with_its_exit_code(
    tmp_path: Path, compose
):
    cfg = compose(
        "train",
        [
            *QUICK,
            "eval=none",
            "trainer.log_every_n_steps=1",
            "+callbacks.crash._target_=crash_callback.CrashAtStep",
            "+callbacks.crash.step=3",
        ],
        tmp_path / "run",
    )
    with pytest.raises(Exception, match="simulated crash"):
        run_train(cfg)
    wandb_run = read_run(tmp_path / "run")
    assert wandb_run.exit_code == 1
    assert wandb_run.state == "failed"
    assert wandb_run.config["seed"] == cfg.seed
    assert any("train/loss" in row for row in wandb_run.history)
    # metrics.json is written on failure too, and the run is not marked complete.
    assert (tmp_path / "run" / "metrics.json").is_file()
    assert not (tmp_path / "run" / "run_complete").exists()


def test_a_successful_run_is_marked_complete_and_a_rerun_returns_its_metrics(
    tmp_path: Path, compose
):
    calls = []

    def body(run: Run) -> None:
        calls.append(run.dir)
        run.log_metrics({"x/value": 3.0})

    cfg = compose("train", ["logger=none", "skip_if_complete=true"], tmp_path / "run")
    assert run_app(cfg, body) == {"x/value": 3.0}
    assert run_app(cfg, body) == {"x/value": 3.0}
    assert calls == [tmp_path / "run"]  # the rerun did not run the body again


def test_optimized_metric_reads_the_configured_key(tmp_path: Path, compose):
    cfg = compose("train", ["data=oss-then-evol", "sources=embedded"], tmp_path)
    assert cfg.optimized_metric == "eval/evol-instruct/humaneval_plus/pass@1"
    metrics = {
        "eval/oss-instruct/humaneval_plus/pass@1": 1.0,
        "eval/evol-instruct/humaneval_plus/pass@1": 2.0,
    }
    assert optimized_metric(cfg, metrics) == 2.0
    assert optimized_metric(cfg, {}) is None


def _ddp_two_stage(run_dir: Path, extra: list[str]) -> subprocess.CompletedProcess:
    args = [
        *TWO_TINY_STAGES,
        "strategy=ddp",
        "trainer.accelerator=cpu",
        "trainer.devices=2",
        "trainer.max_steps=3",
        "trainer.enable_progress_bar=false",
        "callbacks.model_checkpoint.every_n_train_steps=1",
        "eval=humaneval",
        "eval.limit=2",
        "eval.max_new_tokens=8",
        "eval.batch_size=2",
        "eval.n_workers=1",
        "logger=csv",
        f"hydra.run.dir={run_dir}",
        *extra,
    ]
    return run_module("magicoder.cli.train", args, run_dir.parent)


@pytest.mark.slow
def test_resumed_two_stage_ddp_run_trains_each_stage_once_then_scores_each_on_rank_zero(
    tmp_path: Path,
):
    crash = [
        "+callbacks.crash._target_=crash_callback.CrashAtStep",
        "+callbacks.crash.step=2",
        "+callbacks.crash.stage=evol-instruct",
    ]
    first = _ddp_two_stage(tmp_path / "first", crash)
    assert first.returncode != 0
    assert "simulated crash" in first.stdout + first.stderr
    # Evaluation waits until every stage trained: no rank sits in a collective meanwhile.
    assert (tmp_path / "first" / "model" / "oss-instruct" / "stage_done").is_file()
    assert not (tmp_path / "first" / "eval").exists()

    second = _ddp_two_stage(tmp_path / "second", [f"ckpt_path={tmp_path / 'first'}"])
    assert second.returncode == 0, second.stderr[-4000:]
    output = second.stdout + second.stderr
    # Stage 1 is not retrained; after stage 2, rank 0 alone scores both stages, once each.
    assert "Stage oss-instruct finished in an earlier attempt" in output
    assert output.count("humaneval: generating 2 completions") == 2, output[-4000:]
    for stage in ("oss-instruct", "evol-instruct"):
        assert (tmp_path / "first" / "eval" / stage / "humaneval" / "results.json").is_file()
    assert not (tmp_path / "second" / "eval").exists()
    import json

    metrics = json.loads((tmp_path / "first" / "metrics.json").read_text())
    assert "train/oss-instruct/global_step" in metrics  # kept from the first attempt
    assert "eval/oss-instruct/humaneval_plus/pass@1" in metrics
    assert "eval/evol-instruct/humaneval_plus/pass@1" in metrics
    assert metrics["train/evol-instruct/global_step"] == 3


@pytest.mark.slow
def test_a_sweep_through_submitits_local_executor_writes_every_job_and_a_report(tmp_path: Path):
    """The code path a SLURM cluster takes (pickled jobs, one process each), no scheduler."""
    sweep = tmp_path / "sweep"
    result = run_module(
        "magicoder.cli.train",
        [
            "experiment=smoke",
            "hparams_search=lr",
            "optimizer.lr=1e-3,2e-3",
            "hydra/launcher=local",
            f"hydra.sweep.dir={sweep}",
            "trainer.max_steps=3",
            "eval=humaneval",
            "eval.limit=2",
            "eval.max_new_tokens=8",
            "eval.n_workers=1",
            "logger=csv",
        ],
        tmp_path,
    )
    assert result.returncode == 0, result.stderr[-4000:]
    jobs = sorted(p.name for p in sweep.iterdir() if (p / "metrics.json").is_file())
    # Named by the job's overrides, without where its output goes (logger=csv, hydra.*).
    fixed = "eval.limit=2,eval.max_new_tokens=8,eval=humaneval"
    assert jobs == [f"{fixed},optimizer.lr={lr},trainer.max_steps=3" for lr in ("0.001", "0.002")]
    for job in jobs:
        assert (sweep / job / "eval" / "sft" / "humaneval" / "results.json").is_file()
        assert (sweep / job / "run_complete").is_file()
    assert list((sweep / ".submitit").glob("*/*_result.pkl"))  # submitit ran them
    report = run_module("magicoder.cli.report", [str(sweep)], tmp_path, timeout=300)
    assert report.returncode == 0, report.stderr[-4000:]
    table = (sweep / "report" / "report.md").read_text()
    for lr in ("0.001", "0.002"):
        assert lr in table
