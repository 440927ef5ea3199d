"""Compare runs: one table row per run with its swept values and pass@1, plots, per-task diffs.

Everything is read back from run directories (``metrics.json``, ``.hydra/``,
``eval/<stage>/<benchmark>/results.json`` and the W&B offline run or CSV log), so a report
works on any sweep directory, finished or not, without a network.
"""

from __future__ import annotations

import csv
import json
import logging
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from magicoder.io import markdown_table
from magicoder.tracking.wandb_runs import find_run_file, read_run

log = logging.getLogger(__name__)

BENCHMARK_COLUMNS = {
    "humaneval": "HumanEval",
    "humaneval_plus": "HumanEval+",
    "mbpp": "MBPP",
    "mbpp_plus": "MBPP+",
}

# The paper's pass@1 (HumanEval, HumanEval+, MBPP, MBPP+), keyed by released model.
PAPER_PASS_AT_1: dict[str, tuple[float, float, float, float]] = {
    "Magicoder-CL-7B": (60.4, 55.5, 64.2, 52.6),
    "Magicoder-S-CL-7B": (70.7, 66.5, 68.4, 56.6),
    "Magicoder-DS-6.7B": (66.5, 60.4, 75.4, 61.9),
    "Magicoder-S-DS-6.7B": (76.8, 70.7, 75.7, 64.4),
}
_BASES = {"deepseek-coder-6.7b-base": "DS-6.7B", "codellama-7b-python": "CL-7B"}
_RELEASED = {
    "magicoder-ds-6.7b": "Magicoder-DS-6.7B",
    "magicoder-s-ds-6.7b": "Magicoder-S-DS-6.7B",
    "magicoder-cl-7b": "Magicoder-CL-7B",
    "magicoder-s-cl-7b": "Magicoder-S-CL-7B",
}


def paper_model(model: str, data: str | None, stage: str) -> str | None:
    """The released model a run's stage reproduces, if it follows a paper preset.

    Args:
        model: The run's ``model`` choice (e.g. ``deepseek-coder-6.7b-base``).
        data: Its ``data`` choice (None for evaluation runs).
        stage: The evaluated stage.

    Returns:
        A key of :data:`PAPER_PASS_AT_1`, or None.
    """
    if model in _RELEASED:
        return _RELEASED[model]
    base = _BASES.get(model)
    if base is None:
        return None
    if stage == "oss-instruct" and data in ("oss-instruct-75k", "oss-then-evol"):
        return f"Magicoder-{base}"
    if stage == "evol-instruct" and data == "oss-then-evol":
        return f"Magicoder-S-{base}"
    return None


@dataclass
class RunRecord:
    """What a report needs from one run directory."""

    path: Path
    overrides: dict[str, str]
    choices: dict[str, str]
    metrics: dict[str, float]
    stages: list[str] = field(default_factory=list)

    @property
    def name(self) -> str:
        return self.path.name


def _parse_overrides(lines: list[str]) -> dict[str, str]:
    out = {}
    for line in lines:
        key, _, value = line.partition("=")
        out[key.lstrip("+~")] = value
    return out


def load_run(path: Path) -> RunRecord:
    """Read one run directory."""
    hydra_dir = path / ".hydra"
    overrides_file = hydra_dir / "overrides.yaml"
    overrides = (
        _parse_overrides(yaml.safe_load(overrides_file.read_text()) or [])
        if overrides_file.is_file()
        else {}
    )
    choices: dict[str, str] = {}
    hydra_file = hydra_dir / "hydra.yaml"
    if hydra_file.is_file():
        hydra_cfg = yaml.safe_load(hydra_file.read_text()).get("hydra", {})
        choices = {
            k: str(v) for k, v in (hydra_cfg.get("runtime", {}).get("choices") or {}).items()
        }
    metrics = json.loads((path / "metrics.json").read_text())
    stages = (
        sorted(p.name for p in (path / "eval").iterdir() if p.is_dir())
        if (path / "eval").is_dir()
        else []
    )
    return RunRecord(path, overrides, choices, metrics, stages)


def find_runs(root: Path) -> list[RunRecord]:
    """Every run directory (one holding ``metrics.json``) at or under ``root``, sorted by path."""
    root = Path(root)
    if not root.is_dir():
        raise FileNotFoundError(f"{root} is not a directory; pass a sweep or run directory")
    paths = sorted({p.parent for p in root.rglob("metrics.json")})
    if not paths:
        raise FileNotFoundError(f"no run with metrics.json under {root}; has any job finished?")
    return [load_run(p) for p in paths]


def swept_keys(runs: list[RunRecord]) -> list[str]:
    """Override keys whose value differs between runs (all overrides for a single run)."""
    keys = sorted({k for r in runs for k in r.overrides})
    if len(runs) == 1:
        return keys
    return [k for k in keys if len({r.overrides.get(k) for r in runs}) > 1]


def _eval_stages(metrics: dict[str, float]) -> list[str]:
    stages = []
    for key in metrics:
        parts = key.split("/")
        if (
            len(parts) == 4
            and parts[0] == "eval"
            and parts[3] == "pass@1"
            and parts[1] not in stages
        ):
            stages.append(parts[1])
    return stages


def comparison_rows(runs: list[RunRecord]) -> tuple[list[str], list[dict[str, Any]]]:
    """One row per run and evaluated stage: swept values, pass@1, and the paper's numbers.

    Returns:
        The column names and the rows (dicts keyed by column).
    """
    keys = swept_keys(runs)
    bench_cols = list(BENCHMARK_COLUMNS.values())
    columns = ["run", *keys, "stage", *bench_cols]
    has_paper = False
    rows = []
    for run in runs:
        for stage in _eval_stages(run.metrics) or [""]:
            row: dict[str, Any] = {"run": run.name, "stage": stage}
            row.update({k: run.overrides.get(k, "") for k in keys})
            for bench, col in BENCHMARK_COLUMNS.items():
                value = run.metrics.get(f"eval/{stage}/{bench}/pass@1")
                row[col] = "" if value is None else round(float(value), 1)
            paper = paper_model(run.choices.get("model", ""), run.choices.get("data"), stage)
            if paper:
                has_paper = True
                row["paper model"] = paper
                for col, value in zip(bench_cols, PAPER_PASS_AT_1[paper], strict=True):
                    row[f"paper {col}"] = value
            rows.append(row)
    if has_paper:
        columns += ["paper model", *(f"paper {c}" for c in bench_cols)]
    return columns, rows


def loss_curve(run: RunRecord) -> list[tuple[float, float]]:
    """``(step, train/loss)`` points from the run's W&B offline run or, without one, its CSV log."""
    try:
        run_file = find_run_file(run.path)
    except FileNotFoundError:
        return _csv_loss_curve(run.path)
    return [
        (float(h.get("trainer/global_step", h["_step"])), float(h["train/loss"]))
        for h in read_run(run_file).history
        if isinstance(h.get("train/loss"), int | float)
    ]


def _csv_loss_curve(run_dir: Path) -> list[tuple[float, float]]:
    points = []
    for csv_file in sorted(run_dir.glob("csv/**/metrics.csv")):
        with open(csv_file, newline="") as f:
            for rec in csv.DictReader(f):
                if rec.get("train/loss"):
                    points.append((float(rec["step"]), float(rec["train/loss"])))
    return points


def plot_pass_at_1(columns: list[str], rows: list[dict[str, Any]], path: Path) -> None:
    """Grouped bars: pass@1 per run (and stage) for each benchmark."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    benches = [c for c in BENCHMARK_COLUMNS.values() if any(r.get(c) != "" for r in rows)]
    labels = [f"{r['run']}" + (f"\n{r['stage']}" if r["stage"] else "") for r in rows]
    width = 0.8 / max(len(benches), 1)
    fig, ax = plt.subplots(figsize=(max(6, 1.2 * len(rows) * max(len(benches), 1) / 2), 4))
    for i, bench in enumerate(benches):
        values = [r[bench] if r.get(bench) != "" else math.nan for r in rows]
        ax.bar([x + i * width for x in range(len(rows))], values, width, label=bench)
    ax.set_xticks(
        [x + width * (len(benches) - 1) / 2 for x in range(len(rows))], labels, fontsize=8
    )
    ax.set_ylabel("pass@1 (%)")
    ax.set_title("pass@1 per variant")
    ax.legend()
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)


def plot_losses(runs: list[RunRecord], path: Path) -> None:
    """Training loss curves of all runs, overlaid."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(7, 4))
    for run in runs:
        points = loss_curve(run)
        if points:
            ax.plot([p[0] for p in points], [p[1] for p in points], label=run.name)
    ax.set_xlabel("optimizer step")
    ax.set_ylabel("train/loss")
    ax.set_title("training loss")
    if ax.get_legend_handles_labels()[0]:
        ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)


def write_report(root: Path, out_dir: Path | None = None) -> dict[str, Path]:
    """Write ``report.md``, ``report.csv``, ``pass_at_1.png`` and ``loss.png`` for a sweep.

    Args:
        root: A sweep directory (or a single run directory).
        out_dir: Where to write; defaults to ``<root>/report``.

    Returns:
        Name → path of each file written.
    """
    runs = find_runs(root)
    out_dir = Path(out_dir) if out_dir is not None else Path(root) / "report"
    out_dir.mkdir(parents=True, exist_ok=True)
    columns, rows = comparison_rows(runs)
    files = {
        "markdown": out_dir / "report.md",
        "csv": out_dir / "report.csv",
        "pass_at_1": out_dir / "pass_at_1.png",
        "loss": out_dir / "loss.png",
    }
    files["markdown"].write_text(markdown_table(columns, rows))
    with open(files["csv"], "w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=columns, extrasaction="ignore")
        writer.writeheader()
        writer.writerows(rows)
    plot_pass_at_1(columns, rows, files["pass_at_1"])
    plot_losses(runs, files["loss"])
    log.info("Report of %d runs written to %s", len(runs), out_dir)
    return files


def task_statuses(run_dir: Path, stage: str, benchmark: str) -> dict[str, bool]:
    """task_id → passed (base and plus tests) from a run's ``results.json``."""
    path = Path(run_dir) / "eval" / stage / benchmark / "results.json"
    if not path.is_file():
        raise FileNotFoundError(
            f"{path} does not exist; check the run directory, stage and benchmark"
        )
    tasks = json.loads(path.read_text())["tasks"]
    return {t["task_id"]: t["base_status"] == "pass" and t["plus_status"] == "pass" for t in tasks}


def diff_runs(run_a: Path, run_b: Path, stage: str, benchmark: str) -> dict[str, list[str]]:
    """Tasks that flipped between two runs (pass means base and plus tests both pass).

    Returns:
        ``{"fixed": [...], "broken": [...]}``: failing in A and passing in B, and the reverse.
    """
    a, b = task_statuses(run_a, stage, benchmark), task_statuses(run_b, stage, benchmark)
    common = [t for t in a if t in b]
    return {
        "fixed": [t for t in common if not a[t] and b[t]],
        "broken": [t for t in common if a[t] and not b[t]],
    }
