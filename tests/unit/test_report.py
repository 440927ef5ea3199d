"""Tests for magicoder.report on run directories written here file by file, as the apps do."""

from __future__ import annotations

import csv
import json
from pathlib import Path
from typing import Any

import pytest
import yaml

from magicoder.cli.report import main as report_main
from magicoder.report import (
    PAPER_PASS_AT_1,
    comparison_table,
    find_runs,
    load_run,
    loss_series,
    run_labels,
    split_loss_series,
    swept_keys,
    write_report,
)

PAPER_ID = "a1b2c3d4e5f60718"
CURRENT_ID = "0f1e2d3c4b5a6978"
SHORT_ID = "99887766554433aa"


def protocol(name: str, pid: str, label: str | None = None) -> dict[str, Any]:
    """A ``results.json`` ``protocol`` record."""
    return {
        "name": name,
        "id": pid,
        "label": label or name,
        "fields": {"decoding": "greedy", "max_new_tokens": 512},
    }


PAPER = protocol("magicoder-paper", PAPER_ID)
CURRENT = protocol("evalplus-current", CURRENT_ID)
SHORT = protocol("custom", SHORT_ID, "evalplus-current, max_new_tokens=128")


def write_run(
    path: Path,
    overrides: list[str],
    *,
    choices: dict[str, str] | None = None,
    metrics: dict[str, float] | None = None,
    results: dict[str, dict[str, tuple[float, float, dict[str, Any] | None]]] | None = None,
    stages: list[str] | None = None,
    log_rows: list[dict[str, Any]] | None = None,
) -> Path:
    """Write the files the report reads into a run directory.

    Args:
        path: The run directory.
        overrides: ``.hydra/overrides.yaml``.
        choices: ``hydra.runtime.choices`` in ``.hydra/hydra.yaml``.
        metrics: ``metrics.json``; None writes none (a run that has not ended).
        results: stage → benchmark → (pass@1, plus pass@1, protocol record or None for a file
            written before results carried one): ``eval/<stage>/<benchmark>/results.json``.
        stages: ``data.stages`` in ``.hydra/config.yaml``, in training order.
        log_rows: Rows of a CSV log (``csv/version_0/metrics.csv``), as Lightning writes it.
    """
    hydra_dir = path / ".hydra"
    hydra_dir.mkdir(parents=True)
    (hydra_dir / "overrides.yaml").write_text(yaml.safe_dump(overrides))
    hydra_cfg = {"hydra": {"runtime": {"choices": choices or {"model": "tiny"}}}}
    (hydra_dir / "hydra.yaml").write_text(yaml.safe_dump(hydra_cfg))
    config = {"data": {"stages": {s: {"max_seq_len": 512} for s in stages or ["sft"]}}}
    (hydra_dir / "config.yaml").write_text(yaml.safe_dump(config, sort_keys=False))
    if metrics is not None:
        (path / "metrics.json").write_text(json.dumps(metrics, sort_keys=True))
    for stage, benches in (results or {}).items():
        for bench, (base, plus, record) in benches.items():
            content: dict[str, Any] = {
                "benchmark": bench,
                "pass@1_percent": {bench: base, f"{bench}_plus": plus},
                "tasks": [],
            }
            if record is not None:
                content["protocol"] = record
            out = path / "eval" / stage / bench / "results.json"
            out.parent.mkdir(parents=True)
            out.write_text(json.dumps(content))
    if log_rows is not None:
        columns = list(dict.fromkeys(k for row in log_rows for k in row))
        log_file = path / "csv" / "version_0" / "metrics.csv"
        log_file.parent.mkdir(parents=True)
        with open(log_file, "w", newline="") as f:
            writer = csv.DictWriter(f, fieldnames=columns)
            writer.writeheader()
            writer.writerows(log_rows)
    return path


def eval_metrics(stage: str, values: tuple[float, float, float, float]) -> dict[str, float]:
    names = ("humaneval", "humaneval_plus", "mbpp", "mbpp_plus")
    return {f"eval/{stage}/{n}/pass@1": v for n, v in zip(names, values, strict=True)}


def scored_run(
    path: Path,
    overrides: list[str],
    record: dict[str, Any] | None,
    values: tuple[float, float, float, float] = (12.5, 10.0, 30.0, 25.0),
    stage: str = "sft",
    **kwargs: Any,
) -> Path:
    """A finished one-stage run whose two benchmarks were scored under ``record``."""
    results = {
        stage: {
            "humaneval": (values[0], values[1], record),
            "mbpp": (values[2], values[3], record),
        }
    }
    metrics = {
        **eval_metrics(stage, values),
        f"train/{stage}/final_loss": 1.25,
        f"val/{stage}/final_loss": 1.5,
    }
    return write_run(path, overrides, metrics=metrics, results=results, stages=[stage], **kwargs)


BENCH_COLUMNS = ("HumanEval", "HumanEval+", "MBPP", "MBPP+")


def test_two_protocols_mark_every_column_not_comparable_and_name_both(tmp_path: Path) -> None:
    scored_run(tmp_path / "a", ["optimizer.lr=0.001"], CURRENT)
    scored_run(tmp_path / "b", ["optimizer.lr=0.003"], SHORT)
    table = comparison_table(find_runs(tmp_path))
    for column in BENCH_COLUMNS:
        assert column not in table.columns
        assert f"{column} (not comparable: 2 protocols)" in table.columns
    assert [r["protocol"] for r in table.rows] == [
        "evalplus-current",
        "evalplus-current, max_new_tokens=128",
    ]
    (note,) = [n for n in table.notes if n.startswith("HumanEval and HumanEval+")]
    assert "`optimizer.lr=0.001` under `evalplus-current`;" in note
    assert "`optimizer.lr=0.003` under `evalplus-current, max_new_tokens=128`." in note
    assert any(n.startswith("MBPP and MBPP+ are not comparable") for n in table.notes)
    # The numbers are still there, under the marked header.
    assert table.rows[1]["HumanEval+ (not comparable: 2 protocols)"] == 10.0


def test_one_protocol_keeps_plain_columns(tmp_path: Path) -> None:
    scored_run(tmp_path / "a", ["optimizer.lr=0.001"], CURRENT)
    scored_run(tmp_path / "b", ["optimizer.lr=0.003"], CURRENT, values=(20.0, 15.0, 40.0, 35.0))
    table = comparison_table(find_runs(tmp_path))
    assert set(BENCH_COLUMNS) <= set(table.columns)
    assert not any("not comparable" in n for n in table.notes)
    assert [r["HumanEval"] for r in table.rows] == [12.5, 20.0]


def test_only_one_benchmark_mixing_protocols_marks_only_its_columns(tmp_path: Path) -> None:
    scored_run(tmp_path / "a", ["optimizer.lr=0.001"], CURRENT)
    write_run(
        tmp_path / "b",
        ["optimizer.lr=0.003"],
        metrics={},
        results={"sft": {"humaneval": (1.0, 1.0, SHORT), "mbpp": (2.0, 2.0, CURRENT)}},
    )
    table = comparison_table(find_runs(tmp_path))
    assert "MBPP" in table.columns and "MBPP+" in table.columns
    assert "HumanEval (not comparable: 2 protocols)" in table.columns
    assert table.rows[1]["protocol"] == (
        "humaneval: evalplus-current, max_new_tokens=128; mbpp: evalplus-current"
    )


def test_results_without_a_protocol_compare_with_nothing(tmp_path: Path) -> None:
    scored_run(tmp_path / "a", ["optimizer.lr=0.001"], None)
    scored_run(tmp_path / "b", ["optimizer.lr=0.003"], None)
    table = comparison_table(find_runs(tmp_path))
    assert "HumanEval (not comparable: 2 protocols)" in table.columns
    assert [r["protocol"] for r in table.rows] == ["unknown", "unknown"]
    assert any(
        "`optimizer.lr=0.001`, `optimizer.lr=0.003` under an unknown" in n for n in table.notes
    )


PAPER_RUN = ["model=deepseek-coder-6.7b-base", "data=oss-instruct-75k"]
PAPER_CHOICES = {"model": "deepseek-coder-6.7b-base", "data": "oss-instruct-75k"}


def test_paper_numbers_beside_a_magicoder_paper_run(tmp_path: Path) -> None:
    scored_run(tmp_path / "run", PAPER_RUN, PAPER, stage="oss-instruct", choices=PAPER_CHOICES)
    table = comparison_table(find_runs(tmp_path))
    (row,) = table.rows
    assert row["paper model"] == "Magicoder-DS-6.7B"
    paper = [row[f"paper {c}"] for c in BENCH_COLUMNS]
    assert paper == list(PAPER_PASS_AT_1["Magicoder-DS-6.7B"]) == [66.5, 60.4, 75.4, 61.9]
    assert "paper HumanEval+" in table.columns
    assert not any("Paper numbers" in n for n in table.notes)


@pytest.mark.parametrize(
    ("humaneval", "mbpp", "named"),
    [
        (CURRENT, CURRENT, "`evalplus-current`."),
        (PAPER, CURRENT, "`evalplus-current`."),  # every benchmark of the stage must be the paper's
        (None, None, "an unknown protocol (its results.json records none)."),
    ],
)
def test_no_paper_numbers_beside_another_protocol(
    tmp_path: Path, humaneval: dict | None, mbpp: dict | None, named: str
) -> None:
    results = {"oss-instruct": {"humaneval": (1.0, 1.0, humaneval), "mbpp": (2.0, 2.0, mbpp)}}
    write_run(
        tmp_path / "run",
        PAPER_RUN,
        choices=PAPER_CHOICES,
        metrics={},
        results=results,
        stages=["oss-instruct"],
    )
    table = comparison_table(find_runs(tmp_path))
    assert not any(c.startswith("paper") for c in table.columns)
    assert "paper model" not in table.rows[0]
    (note,) = [n for n in table.notes if n.startswith("Paper numbers")]
    assert "(Magicoder-DS-6.7B)" in note and "eval.protocol=magicoder-paper" in note
    assert f"`run` stage `oss-instruct` was scored under {named}" in note


def _record(path: Path, overrides: dict[str, str]):
    from magicoder.report import RunRecord

    return RunRecord(path=path, overrides=overrides, choices={}, metrics={})


def test_labels_are_the_swept_values_without_bookkeeping(tmp_path: Path) -> None:
    runs = [
        _record(
            tmp_path / "job0",
            {
                "optimizer.lr": "0.001",
                "paths.log_dir": "/somewhere/a",
                "logger": "csv",
                "hydra.run.dir": "x",
                "hydra/launcher": "local",
                "ckpt_path": "last",
                "skip_if_complete": "false",
                "experiment": "smoke",
            },
        ),
        _record(
            tmp_path / "job1",
            {
                "optimizer.lr": "0.003",
                "paths.log_dir": "/somewhere/b",
                "logger.project": "p",
                "hydra.run.dir": "y",
                "experiment": "smoke",
            },
        ),
    ]
    assert swept_keys(runs) == ["optimizer.lr"]
    assert run_labels(runs) == ["optimizer.lr=0.001", "optimizer.lr=0.003"]


def test_runs_differing_only_in_bookkeeping_are_labelled_by_directory(tmp_path: Path) -> None:
    runs = [
        _record(tmp_path / "2025-01-01_00-00-00", {"paths.log_dir": "/a", "model": "tiny"}),
        _record(tmp_path / "2025-01-02_00-00-00", {"paths.log_dir": "/b", "model": "tiny"}),
    ]
    assert run_labels(runs) == ["2025-01-01_00-00-00", "2025-01-02_00-00-00"]
    # Two runs of one variant (and a third) keep distinct labels.
    runs.append(_record(tmp_path / "other", {"model": "tiny-deep"}))
    assert run_labels(runs) == [
        "model=tiny (2025-01-01_00-00-00)",
        "model=tiny (2025-01-02_00-00-00)",
        "model=tiny-deep",
    ]


# The rows a two-stage run's CSV log holds (from a real `magicoder-train data=oss-then-evol
# logger=csv` run): each stage's steps count from 0, its summary row ends it, then evaluation.
TWO_STAGE_LOG = [
    *({"epoch": 0, "step": s, "train/loss": 8.3 - 0.05 * s} for s in range(6)),
    {"step": 0, "train/oss-instruct/final_loss": 8.05, "train/oss-instruct/global_step": 6},
    {"step": 1, "eval/oss-instruct/humaneval/pass@1": 0.0},
    *({"epoch": 0, "step": s, "train/loss": 7.9 - 0.04 * s} for s in range(3)),
    {"epoch": 0, "step": 2, "val/loss": 7.81},
    *({"epoch": 0, "step": s, "train/loss": 7.9 - 0.04 * s} for s in range(3, 6)),
    {"epoch": 0, "step": 5, "val/loss": 7.6},
    {
        "step": 0,
        "train/evol-instruct/final_loss": 7.7,
        "train/evol-instruct/global_step": 6,
        "val/evol-instruct/final_loss": 7.6,
    },
    {"step": 1, "eval/evol-instruct/humaneval/pass@1": 0.0},
]
TWO_STAGE_METRICS = {
    **eval_metrics("oss-instruct", (0.0, 0.0, 0.0, 0.0)),
    **eval_metrics("evol-instruct", (0.0, 0.0, 0.0, 0.0)),
    "train/oss-instruct/final_loss": 8.05,
    "train/oss-instruct/global_step": 6.0,
    "train/evol-instruct/final_loss": 7.7,
    "train/evol-instruct/global_step": 6.0,
    "val/evol-instruct/final_loss": 7.6,
}
STAGES = ["oss-instruct", "evol-instruct"]


@pytest.fixture
def two_stage_run(tmp_path: Path) -> Path:
    results = {s: {"humaneval": (0.0, 0.0, CURRENT), "mbpp": (0.0, 0.0, CURRENT)} for s in STAGES}
    return write_run(
        tmp_path / "run",
        ["data=oss-then-evol", "logger=csv"],
        metrics=TWO_STAGE_METRICS,
        results=results,
        stages=STAGES,
        log_rows=TWO_STAGE_LOG,
    )


def test_two_stage_run_has_a_row_and_final_losses_per_stage(two_stage_run: Path) -> None:
    run = load_run(two_stage_run)
    assert run.stages == STAGES  # training order, not alphabetical
    table = comparison_table([run])
    assert [r["run"] for r in table.rows] == ["run / oss-instruct", "run / evol-instruct"]
    assert [r["stage"] for r in table.rows] == STAGES
    assert [r["train loss"] for r in table.rows] == [8.05, 7.7]
    assert [r.get("val loss") for r in table.rows] == [None, 7.6]
    assert table.columns.index("train loss") > table.columns.index("MBPP+")
    # The markdown prints every loss to three decimals: 7.7 is 7.700, not a shorter number.
    markdown_rows = table.markdown().splitlines()[2:4]
    assert markdown_rows[0].endswith("| 8.050 |  |")
    assert markdown_rows[1].endswith("| 7.700 | 7.600 |")


def test_loss_series_has_one_curve_per_stage(two_stage_run: Path) -> None:
    series = loss_series(load_run(two_stage_run), "lr=1")
    assert [(s.stage, s.kind) for s in series] == [
        ("oss-instruct", "train"),
        ("evol-instruct", "train"),
        ("evol-instruct", "val"),
    ]
    oss, evol, val = series
    assert [p[0] for p in oss.points] == [0, 1, 2, 3, 4, 5]
    assert [p[0] for p in evol.points] == [0, 1, 2, 3, 4, 5]  # no jump back inside a curve
    assert evol.points[0][1] == pytest.approx(7.9)
    assert val.points == [(2.0, 7.81), (5.0, 7.6)]
    assert oss.label == "lr=1 / oss-instruct, train"


def test_unfinished_stage_is_cut_where_its_steps_restart() -> None:
    # W&B history rows: `_step` runs on, `trainer/global_step` restarts; no summary row yet
    # for the second stage (killed), and the first stage's summary row was not logged either.
    rows = [{"_step": i, "trainer/global_step": i, "train/loss": 3.0 - i} for i in range(3)]
    rows += [{"_step": 3 + i, "trainer/global_step": i, "train/loss": 1.0} for i in range(2)]
    series = split_loss_series(rows, "r", STAGES)
    assert [(s.stage, [p[0] for p in s.points]) for s in series] == [
        ("oss-instruct", [0.0, 1.0, 2.0]),
        ("evol-instruct", [0.0, 1.0]),
    ]
    # A resumed run's new log holds only the second stage: its summary row names it.
    resumed = [{"trainer/global_step": i, "train/loss": 1.0} for i in range(2)]
    resumed.append({"trainer/global_step": 1, "train/evol-instruct/final_loss": 1.0})
    assert [s.stage for s in split_loss_series(resumed, "r", STAGES)] == ["evol-instruct"]
    # A run that names no stage gets one unnamed curve.
    assert [s.stage for s in split_loss_series(rows[:3], "r", [])] == [""]


def test_all_zero_pass_at_1_is_said_in_words(tmp_path: Path, two_stage_run: Path) -> None:
    table = comparison_table([load_run(two_stage_run)])
    assert (
        "pass@1 is 0.0 on every benchmark for every run; compare the runs by their validation "
        "loss (the loss columns and loss.png) instead." in table.notes
    )
    files = write_report(two_stage_run, tmp_path / "out")
    text = files["markdown"].read_text()
    assert "pass@1 is 0.0 on every benchmark for every run" in text
    assert files["pass_at_1"].read_bytes()[:4] == b"\x89PNG"
    assert files["loss"].read_bytes()[:4] == b"\x89PNG"


def test_some_zero_pass_at_1_names_the_zero_columns(tmp_path: Path) -> None:
    scored_run(tmp_path / "a", ["optimizer.lr=0.001"], CURRENT, values=(0.0, 0.0, 0.0, 0.0))
    scored_run(tmp_path / "b", ["optimizer.lr=0.003"], CURRENT, values=(0.0, 0.0, 2.5, 0.0))
    notes = comparison_table(find_runs(tmp_path)).notes
    assert not any("on every benchmark" in n for n in notes)
    assert "pass@1 is 0.0 for every run on HumanEval, HumanEval+, MBPP+." in notes


def test_report_covers_evaluation_and_unfinished_runs(tmp_path: Path) -> None:
    sweep = tmp_path / "sweep"
    write_run(
        sweep / "eval-only",
        ["model=magicoder-s-ds-6.7b"],
        choices={"model": "magicoder-s-ds-6.7b"},
        metrics=eval_metrics("magicoder-s-ds-6.7b", (76.2, 70.1, 75.1, 64.0)),
        results={
            "magicoder-s-ds-6.7b": {"humaneval": (76.2, 70.1, PAPER), "mbpp": (75.1, 64.0, PAPER)}
        },
        stages=[],
    )
    # Killed during its second stage: no metrics.json, only the first stage was scored.
    write_run(
        sweep / "killed",
        ["model=tiny", "data=oss-then-evol"],
        results={"oss-instruct": {"humaneval": (3.0, 2.0, PAPER), "mbpp": (4.0, 3.0, PAPER)}},
        stages=STAGES,
        log_rows=TWO_STAGE_LOG[:9],
    )
    files = write_report(sweep)
    assert files["markdown"] == sweep / "report" / "report.md"
    with open(files["csv"], newline="") as f:
        rows = list(csv.DictReader(f))
    assert [r["run"] for r in rows] == [
        "model=magicoder-s-ds-6.7b",
        "data=oss-then-evol model=tiny",
    ]
    eval_row, killed_row = rows
    assert eval_row["stage"] == "magicoder-s-ds-6.7b"
    assert eval_row["paper model"] == "Magicoder-S-DS-6.7B" and eval_row["HumanEval"] == "76.2"
    assert "train loss" not in eval_row  # neither run logged a final loss
    assert killed_row["stage"] == "oss-instruct" and killed_row["HumanEval"] == "3.0"
    text = files["markdown"].read_text()
    assert "has no metrics.json yet" in text
    series = loss_series(load_run(sweep / "killed"))
    assert [(s.stage, len(s.points)) for s in series] == [("oss-instruct", 6), ("evol-instruct", 1)]


def test_cli_prints_the_table_and_flags_a_diff_across_protocols(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    a = scored_run(tmp_path / "a", ["optimizer.lr=0.001"], CURRENT)
    b = scored_run(tmp_path / "b", ["optimizer.lr=0.003"], SHORT)
    assert report_main([str(tmp_path)]) == 0
    out = capsys.readouterr().out
    assert "| HumanEval (not comparable: 2 protocols) |" in out
    assert report_main(["diff", str(a), str(b), "--stage", "sft"]) == 0
    out = capsys.readouterr().out
    assert "not comparable: A was scored under evalplus-current, B under" in out
    assert report_main(["diff", str(a), str(a), "--stage", "sft"]) == 0
    assert "not comparable" not in capsys.readouterr().out
