"""Tests for magicoder.tracking.wandb_runs: real offline W&B runs, read back with wandb's tool."""

from __future__ import annotations

import math
import os
import re
import shutil
import time
from pathlib import Path

import pytest

from magicoder.report import RunRecord, loss_series
from magicoder.tracking.wandb_runs import WandbRun, find_run_file, read_run, wait_for_exit

CONFIG = {"seed": 7, "model": {"name": "tiny-coder", "lr": 1e-4, "betas": [0.9, 0.95]}}
LATE_CONFIG = {"data": {"max_len": 1024}}
# step -> metrics logged at that step.
LOGGED = {
    0: {"train/loss": 2.5, "train/lr": 1e-4},
    5: {"train/loss": 1.75, "eval": {"acc": 0.25}},
    10: {"train/loss": 1.25, "note": "done", "train/grad_norm": math.nan},
}
PASS_AT_1 = 12.5


def _offline_run(root: Path, exit_code: int) -> Path:
    """Log a real offline run under ``root``; return its ``.wandb`` file."""
    import wandb

    settings = wandb.Settings(
        x_disable_stats=True,
        x_disable_meta=True,
        x_disable_machine_info=True,
        disable_git=True,
        console="off",
        x_save_requirements=False,
    )
    run = wandb.init(
        mode="offline",
        dir=root,
        project="t",
        group="sweep",
        tags=["experiment=x"],
        config=CONFIG,
        settings=settings,
    )
    run.config.update(LATE_CONFIG)
    for step, metrics in LOGGED.items():
        run.log(metrics, step=step)
    run.summary["eval/sft/humaneval/pass@1"] = PASS_AT_1
    run_file = Path(run.settings.sync_file)
    run.finish(exit_code=exit_code)
    return run_file


@pytest.fixture(scope="module")
def two_runs(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path, Path]:
    """A run dir holding two real offline runs: one finished (exit 0), then one failed (exit 1).

    Returns:
        The run dir, the first run's file and the second's.
    """
    import wandb

    root = tmp_path_factory.mktemp("wandb_runs")
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("WANDB_MODE", "offline")
        for name in ("CONFIG", "CACHE", "DATA"):
            mp.setenv(f"WANDB_{name}_DIR", str(root / f"_{name.lower()}"))
        mp.delenv("WANDB_RUN_ID", raising=False)
        mp.delenv("WANDB_RESUME", raising=False)
        first = _offline_run(root, exit_code=0)
        second = _offline_run(root, exit_code=1)
        wandb.teardown()  # stop wandb-core and forget this session's settings
    return root, first, second


@pytest.fixture(scope="module")
def finished(two_runs: tuple[Path, Path, Path]) -> WandbRun:
    return read_run(two_runs[1])


def test_finished_run_reads_back_what_it_logged(finished: WandbRun, two_runs) -> None:
    assert finished.path == two_runs[1]
    assert finished.path.name == f"run-{finished.run_id}.wandb"
    assert (finished.state, finished.exit_code) == ("finished", 0)
    assert (finished.project, finished.group, finished.tags) == ("t", "sweep", ["experiment=x"])
    assert finished.config == {**CONFIG, **LATE_CONFIG}


def test_finished_run_history(finished: WandbRun) -> None:
    assert [row["_step"] for row in finished.history] == list(LOGGED)
    assert [row["train/loss"] for row in finished.history] == [2.5, 1.75, 1.25]
    assert finished.history[0]["train/lr"] == pytest.approx(1e-4)
    assert finished.history[1]["eval.acc"] == 0.25  # nested keys joined as W&B shows them
    assert finished.history[2]["note"] == "done"
    assert math.isnan(finished.history[2]["train/grad_norm"])  # printed as "NaN" by the tool


def test_finished_run_summary(finished: WandbRun) -> None:
    assert finished.summary["eval/sft/humaneval/pass@1"] == PASS_AT_1
    assert finished.summary["train/loss"] == 1.25
    assert finished.summary["_step"] == 10
    assert finished.summary["eval"] == {"acc": 0.25}


def test_failed_run_keeps_its_exit_code(two_runs) -> None:
    failed = read_run(two_runs[2])
    assert (failed.state, failed.exit_code) == ("failed", 1)
    assert [row["train/loss"] for row in failed.history] == [2.5, 1.75, 1.25]


def test_run_dir_with_two_runs_reads_the_newest(two_runs) -> None:
    root, first, second = two_runs
    assert first.parent.parent == second.parent.parent == root / "wandb"
    for path in (root, root / "wandb", str(root)):
        assert find_run_file(path) == second
    assert find_run_file(first.parent) == first
    assert read_run(root).exit_code == 1


def test_wait_for_exit_returns_the_exit_code(two_runs) -> None:
    assert wait_for_exit(two_runs[1], timeout=5) == 0
    assert wait_for_exit(two_runs[2], timeout=5) == 1


def test_wait_for_exit_gives_up_without_an_exit_record(two_runs, tmp_path: Path) -> None:
    # The first 7 bytes of a run file: its header, what a killed process leaves.
    cut = tmp_path / "run-cut.wandb"
    cut.write_bytes(two_runs[1].read_bytes()[:7])
    start = time.monotonic()
    assert wait_for_exit(cut, timeout=1) is None
    assert time.monotonic() - start < 30
    run = read_run(cut)
    assert (run.run_id, run.exit_code, run.history) == ("cut", None, [])
    assert run.state != "finished"


def test_not_a_run_file_names_it(tmp_path: Path) -> None:
    bogus = tmp_path / "run-bogus.wandb"
    bogus.write_bytes(b"hello world, not a wandb file")
    with pytest.raises(ValueError, match=r"could not read .*run-bogus\.wandb.*header"):
        read_run(bogus)
    notes = tmp_path / "notes.txt"
    notes.write_text("x")
    with pytest.raises(ValueError, match=r"notes\.txt is not a W&B run file"):
        read_run(notes)


def test_missing_run_names_the_path(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError, match=re.escape(str(tmp_path / "nope")) + "$"):
        read_run(tmp_path / "nope")
    with pytest.raises(FileNotFoundError, match=re.escape(f"under {tmp_path} ")):
        read_run(tmp_path)
    with pytest.raises(FileNotFoundError, match="no W&B run file"):
        wait_for_exit(tmp_path / "run-nope.wandb", timeout=1)


def _fake_run(wandb_dir: Path, name: str) -> Path:
    run_file = wandb_dir / name / f"run-{name.rpartition('-')[2]}.wandb"
    run_file.parent.mkdir(parents=True)
    run_file.write_bytes(b"")
    return run_file


def test_newest_run_is_the_one_started_last_then_written_last(tmp_path: Path) -> None:
    wandb_dir = tmp_path / "wandb"
    late = _fake_run(wandb_dir, "offline-run-20250102_000000-aaaa")
    _fake_run(wandb_dir, "offline-run-20250101_235959-zzzz")
    (wandb_dir / "offline-run-20991231_000000-none").mkdir()  # no run file: not a run
    (wandb_dir / "latest-run").symlink_to(wandb_dir / "offline-run-20250101_235959-zzzz")
    assert find_run_file(tmp_path) == late
    # Two runs started in the same second: the one written last wins, whatever its id.
    same = _fake_run(wandb_dir, "offline-run-20250102_000000-0000")
    os.utime(late, ns=(1, 1))
    assert find_run_file(wandb_dir) == same
    shutil.rmtree(same.parent)
    assert find_run_file(wandb_dir) == late


def test_report_loss_series_reads_the_newest_wandb_run(two_runs) -> None:
    run = RunRecord(path=two_runs[0], overrides={}, choices={}, metrics={}, stages=["sft"])
    (series,) = loss_series(run, "lr=1")
    assert (series.run, series.stage, series.kind) == ("lr=1", "sft", "train")
    assert series.points == [(0.0, 2.5), (5.0, 1.75), (10.0, 1.25)]
