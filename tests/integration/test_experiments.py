"""Experiments: sweeps and their report, stage carry-over, mixtures, skipping finished jobs."""

from __future__ import annotations

import csv
import json
import subprocess
from pathlib import Path

import pytest
import torch
from helpers import run_module
from hydra.utils import instantiate
from safetensors.torch import load_file

from magicoder.config import config_dir
from magicoder.tracking.wandb_runs import read_run
from magicoder.training.app import run_train

TINY = [
    "scale=laptop",
    "trainer.max_steps=3",
    "trainer.enable_progress_bar=false",
    "sources.oss.max_files=30",
    "sources.evol.max_files=30",
    "data.max_seq_len_cap=256",
    "eval.limit=2",
    "eval.max_new_tokens=16",
    "eval.batch_size=2",
]


def _cli(args: list[str], cwd: Path) -> subprocess.CompletedProcess:
    return run_module(args[0], args[1:], cwd)


def test_launcher_and_scale_configs_compose_and_slurm_instantiates(tmp_path, compose):
    from hydra import compose as hydra_compose
    from hydra import initialize_config_dir
    from hydra.core.global_hydra import GlobalHydra

    GlobalHydra.instance().clear()
    with initialize_config_dir(str(config_dir()), version_base="1.3"):
        cfg = hydra_compose(
            "train",
            ["experiment=compare-bases", "hydra/launcher=slurm", "hydra.launcher.partition=gpu"],
            return_hydra_config=True,
        )
    launcher = cfg.hydra.launcher
    assert launcher.partition == "gpu"
    assert launcher.gpus_per_node == 2 and launcher.tasks_per_node == 2 and launcher.nodes == 1
    from hydra_plugins.hydra_submitit_launcher.submitit_launcher import SlurmLauncher

    params = {k: v for k, v in launcher.items() if k != "_target_"}
    assert isinstance(SlurmLauncher(**params), SlurmLauncher)
    for experiment in ("compare-bases", "ablate-mixture", "ablate-python-only", "smoke"):
        laptop = compose("train", [f"experiment={experiment}", "scale=laptop"], tmp_path)
        assert laptop.model.name == "tiny"
        assert laptop.trainer.accelerator == "cpu" and laptop.trainer.devices == 1


@pytest.mark.slow
def test_two_stage_run_carries_weights_and_evaluates_each_stage(tmp_path, compose):
    record = tmp_path / "record"
    cfg = compose(
        "train",
        [
            *TINY,
            "data=oss-then-evol",
            "logger=none",
            "+callbacks.record._target_=record_callback.RecordFirstParameter",
            f"+callbacks.record.directory={record}",
        ],
        tmp_path / "run",
    )
    metrics = run_train(cfg)
    for stage in ("oss-instruct", "evol-instruct"):
        assert f"eval/{stage}/humaneval_plus/pass@1" in metrics
        assert f"eval/{stage}/mbpp/pass@1" in metrics
        assert (tmp_path / "run" / "model" / stage / "config.json").is_file()
    first, second = torch.load(record / "fit0.pt"), torch.load(record / "fit1.pt")
    stage1 = load_file(tmp_path / "run" / "model" / "oss-instruct" / "model.safetensors")
    key = first["name"].removeprefix("model.")
    # Stage 2 starts exactly where stage 1 ended, and stage 1 did change the weights.
    assert torch.equal(second["value"], stage1[key])
    assert not torch.equal(first["value"], stage1[key])


@pytest.mark.slow
def test_joint_mixture_logs_per_source_counts(tmp_path, compose):
    cfg = compose(
        "train",
        [
            *TINY,
            "data=mixture",
            "eval=none",
            "logger=none",
            "+data.mixture.weights={oss: 1, evol: 3}",
        ],
        tmp_path,
    )
    metrics = run_train(cfg)
    oss, evol = metrics["data/joint/oss/examples"], metrics["data/joint/evol/examples"]
    assert evol == pytest.approx(3 * oss, rel=0.02)
    assert metrics["data/joint/oss/tokens"] > 0


@pytest.mark.slow
def test_sweep_report_and_rerun_skips_finished_jobs(tmp_path):
    sweep = tmp_path / "sweep"
    args = [
        "magicoder.cli.train",
        "hparams_search=lr",
        *TINY,
        "optimizer.lr=1e-3,3e-3",
        f"hydra.sweep.dir={sweep}",
    ]
    first = _cli(args, tmp_path)
    assert first.returncode == 0, first.stderr[-3000:]
    jobs = sorted(p.parent for p in sweep.rglob("metrics.json"))
    assert len(jobs) == 2
    ckpt_times = [(j / "checkpoints/sft/last.ckpt").stat().st_mtime for j in jobs]
    for job in jobs:  # one W&B group per sweep; tags name the search and swept values
        (run_file,) = job.glob("wandb/offline-run-*/run-*.wandb")
        run = read_run(run_file)
        assert run.group == f"{tmp_path.name}/sweep"
        assert "hparams_search=lr" in run.tags
        assert any(tag.startswith("optimizer.lr=") for tag in run.tags)

    report = _cli(["magicoder.cli.report", str(sweep)], tmp_path)
    assert report.returncode == 0, report.stderr[-3000:]
    with open(sweep / "report" / "report.csv", newline="") as f:
        rows = list(csv.DictReader(f))
    assert sorted(r["optimizer.lr"] for r in rows) == ["0.001", "0.003"]
    columns = {"HumanEval": "humaneval", "HumanEval+": "humaneval_plus", "MBPP": "mbpp"}
    columns["MBPP+"] = "mbpp_plus"
    for row, job in zip(sorted(rows, key=lambda r: float(r["optimizer.lr"])), jobs, strict=True):
        assert row["stage"] == "sft"
        job_metrics = json.loads((job / "metrics.json").read_text())
        for col, bench in columns.items():
            assert float(row[col]) == pytest.approx(job_metrics[f"eval/sft/{bench}/pass@1"])
    for png in ("pass_at_1.png", "loss.png"):
        data = (sweep / "report" / png).read_bytes()
        assert data[:8] == b"\x89PNG\r\n\x1a\n" and len(data) > 1000
        import matplotlib.image

        assert matplotlib.image.imread(sweep / "report" / png).ndim == 3
    assert "| optimizer.lr |" in (sweep / "report" / "report.md").read_text().replace("run | ", "")

    diff = _cli(
        ["magicoder.cli.report", "diff", str(jobs[0]), str(jobs[1]), "--stage", "sft"], tmp_path
    )
    assert diff.returncode == 0 and "fail → pass" in diff.stdout

    again = _cli(args, tmp_path)
    assert again.returncode == 0, again.stderr[-3000:]
    assert [(j / "checkpoints/sft/last.ckpt").stat().st_mtime for j in jobs] == ckpt_times
    assert again.stdout.count("finished earlier") + again.stderr.count("finished earlier") == 2


@pytest.mark.slow
def test_a_failed_job_does_not_stop_the_sweep(tmp_path):
    sweep = tmp_path / "sweep"
    result = _cli(
        [
            "magicoder.cli.train",
            "hparams_search=lr",
            *TINY,
            "eval=none",
            "optimizer.lr=-1.0,1e-3",  # validate_config rejects a negative lr
            f"hydra.sweep.dir={sweep}",
        ],
        tmp_path,
    )
    assert result.returncode != 0
    finished = [p.parent for p in sweep.rglob("metrics.json")]
    assert len(finished) == 1 and "optimizer.lr=0.001" in str(finished[0])


def test_every_experiment_names_its_command(tmp_path):
    for path in sorted((config_dir() / "experiment").glob("*.yaml")):
        text = path.read_text()
        assert text.startswith("# @package _global_"), path.name
        assert f"experiment={path.stem}" in text, path.name


def test_sources_interpolate_into_data_configs(tmp_path, compose):
    cfg = compose("train", ["data=evol-then-oss", "sources=embedded"], tmp_path)
    assert list(cfg.data.stages) == ["evol-instruct", "oss-instruct"]
    evol = instantiate(cfg.data.stages["evol-instruct"].datasets.evol)
    assert evol.kind == "methods"
