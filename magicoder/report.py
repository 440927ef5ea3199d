"""Compare runs: one table row per run and stage with pass@1 and losses, plots, per-task diffs.

Everything is read back from run directories (``metrics.json``, ``.hydra/``,
``eval/<stage>/<benchmark>/results.json`` and the W&B offline run or CSV log), so a report
works on any sweep directory, finished or not, without a network.

Two numbers are put side by side only when they were scored under the same evaluation protocol
(the ``protocol.id`` each ``results.json`` records); a column that mixes protocols says so in
its header, and the paper's numbers appear only beside results scored under
``eval.protocol=magicoder-paper``.
"""

from __future__ import annotations

import csv
import json
import logging
import math
import textwrap
from collections.abc import Iterable
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
"""Metric name (``eval/<stage>/<metric>/pass@1``) → table column."""

RESULT_METRICS = {"humaneval": ("humaneval", "humaneval_plus"), "mbpp": ("mbpp", "mbpp_plus")}
"""Benchmark (``eval/<stage>/<benchmark>/results.json``) → the metrics its file scores."""

LOSS_COLUMNS = {"train": "train loss", "val": "val loss"}
"""``<kind>/<stage>/final_loss`` in ``metrics.json`` → table column."""

PAPER_PROTOCOL = "magicoder-paper"
"""The ``eval.protocol`` the paper's numbers were made under: the only one they are shown beside."""

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

# Overrides that say where a run writes, how it logs or whether it resumes: two runs that
# differ only in these trained and scored the same thing, so they never name a variant.
_BOOKKEEPING_GROUPS = ("paths", "logger", "hydra", "local")
_BOOKKEEPING_KEYS = frozenset(
    {
        "ckpt_path",
        "skip_if_complete",
        "task_name",
        "run_name",
        "optimized_metric",
        "trainer.enable_progress_bar",
        "data.num_workers",
        "eval.n_workers",
        "eval.groundtruth_dir",
    }
)


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


@dataclass(frozen=True)
class ScoredUnder:
    """The evaluation protocol one ``results.json`` records.

    Attributes:
        name: ``magicoder-paper``, ``evalplus-current``, ``custom``, or ``unknown`` for a file
            written before results carried their protocol.
        id: Equal ids mean comparable numbers. An unknown protocol gets an id of its own (the
            file's path), so it is never comparable with anything.
        label: What a reader sees, e.g. ``evalplus-current, max_new_tokens=128``.
    """

    name: str
    id: str
    label: str

    @property
    def known(self) -> bool:
        return self.name != "unknown"


def unknown_protocol(source: str | Path) -> ScoredUnder:
    """The protocol of a result that does not record one (``source`` names the result)."""
    return ScoredUnder("unknown", f"unknown:{source}", "unknown")


def read_protocol(results: dict[str, Any], source: str | Path) -> ScoredUnder:
    """The ``protocol`` record of a parsed ``results.json`` (unknown when it has none).

    Args:
        results: The file's contents.
        source: The file, for the id of an unknown protocol.
    """
    record = results.get("protocol")
    if not isinstance(record, dict) or not record.get("id"):
        return unknown_protocol(source)
    name = str(record.get("name") or "custom")
    return ScoredUnder(name, str(record["id"]), str(record.get("label") or name))


@dataclass(frozen=True)
class ScoredBenchmark:
    """One ``eval/<stage>/<benchmark>/results.json``: its pass@1 values and protocol."""

    pass_at_1: dict[str, float]
    protocol: ScoredUnder


@dataclass
class RunRecord:
    """What a report needs from one run directory.

    Attributes:
        path: The run directory.
        overrides: Its command-line overrides (``.hydra/overrides.yaml``), key → value.
        choices: Its config group choices (``hydra.runtime.choices``).
        metrics: ``metrics.json`` ({} while the run has not ended).
        stages: Trained or evaluated stages, in training order.
        results: Stage → benchmark → what its ``results.json`` holds.
        finished: Whether the run wrote ``metrics.json``.
        planned_stages: The stages its config trains, begun or not ([] for evaluation runs).
    """

    path: Path
    overrides: dict[str, str]
    choices: dict[str, str]
    metrics: dict[str, float]
    stages: list[str] = field(default_factory=list)
    results: dict[str, dict[str, ScoredBenchmark]] = field(default_factory=dict)
    finished: bool = True
    planned_stages: list[str] = field(default_factory=list)

    @property
    def name(self) -> str:
        return self.path.name


def _parse_overrides(lines: list[str]) -> dict[str, str]:
    out = {}
    for line in lines:
        key, _, value = line.partition("=")
        out[key.lstrip("+~")] = value
    return out


def _read_yaml(path: Path) -> Any:
    return yaml.safe_load(path.read_text()) if path.is_file() else None


def _configured_stages(config: Any) -> list[str]:
    """The stages ``.hydra/config.yaml`` trains, in order ([] for evaluation runs)."""
    data = config.get("data") if isinstance(config, dict) else None
    stages = data.get("stages") if isinstance(data, dict) else None
    return list(stages) if isinstance(stages, dict) else []


def _metric_stages(metrics: dict[str, Any]) -> list[str]:
    """Stages named by ``eval/<stage>/<metric>/pass@1`` or ``<kind>/<stage>/final_loss`` keys."""
    stages = []
    for key in metrics:
        parts = key.split("/")
        is_eval = len(parts) == 4 and parts[0] == "eval" and parts[3] == "pass@1"
        is_stage_summary = len(parts) == 3 and parts[0] in ("train", "val")
        if (is_eval or is_stage_summary) and parts[1] not in stages:
            stages.append(parts[1])
    return stages


def _read_results(eval_dir: Path) -> dict[str, dict[str, ScoredBenchmark]]:
    results: dict[str, dict[str, ScoredBenchmark]] = {}
    for path in sorted(eval_dir.glob("*/*/results.json")):
        stage, benchmark = path.parent.parent.name, path.parent.name
        if benchmark not in RESULT_METRICS:
            continue
        content = json.loads(path.read_text())
        scores = content.get("pass@1_percent") or {}
        results.setdefault(stage, {})[benchmark] = ScoredBenchmark(
            pass_at_1={m: float(scores[m]) for m in RESULT_METRICS[benchmark] if m in scores},
            protocol=read_protocol(content, path),
        )
    return results


def load_run(path: Path) -> RunRecord:
    """Read one run directory (finished or not)."""
    path = Path(path)
    hydra_dir = path / ".hydra"
    overrides = _parse_overrides(_read_yaml(hydra_dir / "overrides.yaml") or [])
    hydra_cfg = (_read_yaml(hydra_dir / "hydra.yaml") or {}).get("hydra", {})
    choices = {k: str(v) for k, v in (hydra_cfg.get("runtime", {}).get("choices") or {}).items()}
    metrics_file = path / "metrics.json"
    metrics = json.loads(metrics_file.read_text()) if metrics_file.is_file() else {}
    metrics.pop("provenance", None)  # what made the numbers, not a number
    results = _read_results(path / "eval")
    planned = _configured_stages(_read_yaml(hydra_dir / "config.yaml"))
    seen = [*_metric_stages(metrics), *results]
    stages = [s for s in planned if s in seen]
    stages += [s for s in dict.fromkeys(seen) if s not in stages]
    return RunRecord(
        path, overrides, choices, metrics, stages, results, metrics_file.is_file(), planned
    )


def find_runs(root: Path) -> list[RunRecord]:
    """Every run directory at or under ``root``, sorted by path.

    A run directory holds ``metrics.json`` (the run ended) or ``.hydra/`` (it started).
    """
    root = Path(root)
    if not root.is_dir():
        raise FileNotFoundError(f"{root} is not a directory; pass a sweep or run directory")
    paths = {p.parent for p in root.rglob("metrics.json")}
    paths |= {p.parent.parent for p in root.rglob(".hydra/hydra.yaml")}
    if not paths:
        raise FileNotFoundError(
            f"no run directory (one with metrics.json or .hydra/) under {root}; "
            "pass a sweep or run directory"
        )
    return [load_run(p) for p in sorted(paths)]


def is_bookkeeping(key: str) -> bool:
    """Whether an override key only says where or how a run logs, never what it trains."""
    group = key.replace("/", ".").split(".", 1)[0]
    return group in _BOOKKEEPING_GROUPS or key in _BOOKKEEPING_KEYS


def swept_keys(runs: list[RunRecord]) -> list[str]:
    """Override keys whose value differs between runs, bookkeeping left out (see
    :func:`is_bookkeeping`); none for a single run."""
    keys = sorted({k for r in runs for k in r.overrides if not is_bookkeeping(k)})
    return [k for k in keys if len({r.overrides.get(k) for r in runs}) > 1]


def shared_overrides(runs: list[RunRecord]) -> dict[str, str]:
    """Override key → value that every run was given (bookkeeping left out)."""
    first = runs[0].overrides if runs else {}
    return {
        k: v
        for k, v in sorted(first.items())
        if not is_bookkeeping(k) and all(r.overrides.get(k) == v for r in runs)
    }


def run_labels(runs: list[RunRecord]) -> list[str]:
    """A readable label per run: its swept values (``optimizer.lr=0.001 model=tiny``).

    Without swept values (a single run, or runs that differ only in bookkeeping) a run is
    labelled by its directory name; runs whose swept values coincide get their directory name
    appended, so labels stay distinct.
    """
    keys = swept_keys(runs)
    labels = [
        " ".join(f"{k}={r.overrides[k]}" for k in keys if k in r.overrides) or r.name for r in runs
    ]
    return [
        f"{label} ({run.name})" if labels.count(label) > 1 and label != run.name else label
        for label, run in zip(labels, runs, strict=True)
    ]


@dataclass
class ReportTable:
    """The comparison table and what a reader must know to read it.

    Attributes:
        columns: Column headers, in order (a benchmark column that mixes protocols says so).
        rows: One dict per (run, stage), keyed by header.
        notes: Sentences printed under the table.
    """

    columns: list[str]
    rows: list[dict[str, Any]]
    notes: list[str] = field(default_factory=list)

    def markdown(self) -> str:
        """The table in GitHub markdown (losses to three decimals), the notes as a list below it."""
        losses = set(LOSS_COLUMNS.values())
        rows = [
            {k: f"{v:.3f}" if k in losses and isinstance(v, float) else v for k, v in row.items()}
            for row in self.rows
        ]
        text = markdown_table(self.columns, rows)
        if self.notes:
            text += "\n" + "".join(f"- {note}\n" for note in self.notes)
        return text


@dataclass
class _Row:
    """A row before columns are named: its cells and the protocols behind its numbers."""

    run: RunRecord
    run_label: str
    stage: str
    label: str
    cells: dict[str, Any]
    protocols: dict[str, ScoredUnder]  # benchmark → protocol, for benchmarks with a number


def _row_protocol(protocols: dict[str, ScoredUnder]) -> str:
    labels = {p.label for p in protocols.values()}
    if len(labels) <= 1:
        return next(iter(labels), "")
    return "; ".join(f"{bench}: {p.label}" for bench, p in protocols.items())


def _stage_rows(run: RunRecord, label: str, keys: list[str]) -> list[_Row]:
    rows = []
    stages = run.stages or [""]
    for stage in stages:
        cells: dict[str, Any] = {k: run.overrides.get(k, "") for k in keys}
        cells["stage"] = stage
        protocols: dict[str, ScoredUnder] = {}
        for bench, metric_names in RESULT_METRICS.items():
            result = run.results.get(stage, {}).get(bench)
            for metric in metric_names:
                value = result.pass_at_1.get(metric) if result else None
                if value is None:
                    value = run.metrics.get(f"eval/{stage}/{metric}/pass@1")
                if value is None:
                    continue
                cells[BENCHMARK_COLUMNS[metric]] = round(float(value), 1)
                protocols[bench] = (
                    result.protocol if result else unknown_protocol(f"{run.path}:{stage}:{bench}")
                )
        for kind, column in LOSS_COLUMNS.items():
            loss = run.metrics.get(f"{kind}/{stage}/final_loss")
            if loss is not None:
                cells[column] = round(float(loss), 3)
        cells["protocol"] = _row_protocol(protocols)
        row_label = f"{label} / {stage}" if len(stages) > 1 else label
        rows.append(_Row(run, label, stage, row_label, cells, protocols))
    return rows


def _code(text: str) -> str:
    """``text`` as inline code: labels hold spaces and commas of their own."""
    return f"`{text}`"


def _mark_incomparable(rows: list[_Row], notes: list[str]) -> dict[str, str]:
    """Column → header: a benchmark column whose rows mix protocols says so, and a note (added
    to ``notes``) says which rows used which protocol."""
    headers = {}
    for bench, metric_names in RESULT_METRICS.items():
        by_id: dict[str, list[_Row]] = {}
        for row in rows:
            if bench in row.protocols:
                by_id.setdefault(row.protocols[bench].id, []).append(row)
        if len(by_id) < 2:
            continue
        columns = [BENCHMARK_COLUMNS[m] for m in metric_names]
        headers.update({c: f"{c} (not comparable: {len(by_id)} protocols)" for c in columns})
        known = {pid: group for pid, group in by_id.items() if group[0].protocols[bench].known}
        labels = [group[0].protocols[bench].label for group in known.values()]
        parts = []
        for (pid, group), label in zip(known.items(), labels, strict=True):
            # Two protocols can share a label (the same settings, another benchmark file).
            shown = _code(label) if labels.count(label) == 1 else f"{_code(label)} (id {pid})"
            parts.append(f"{', '.join(_code(r.label) for r in group)} under {shown}")
        unknown = [
            _code(r.label) for pid, group in by_id.items() if pid not in known for r in group
        ]
        if unknown:
            parts.append(
                f"{', '.join(unknown)} under an unknown protocol (a results.json that records "
                "none is comparable with nothing)"
            )
        notes.append(
            f"{' and '.join(columns)} are not comparable across rows, scored under "
            f"{len(by_id)} protocols: {'; '.join(parts)}."
        )
    return headers


def _paper_cells(row: _Row, notes: list[str]) -> dict[str, Any]:
    run = row.run
    paper = paper_model(run.choices.get("model", ""), run.choices.get("data"), row.stage)
    if paper is None or not row.protocols:
        return {}
    others = sorted(
        _code(p.label) if p.known else "an unknown protocol (its results.json records none)"
        for p in set(row.protocols.values())
        if p.name != PAPER_PROTOCOL
    )
    if others:
        notes.append(
            f"Paper numbers ({paper}) are shown only for runs scored under "
            f"eval.protocol={PAPER_PROTOCOL}; {_code(row.run_label)} stage {_code(row.stage)} "
            f"was scored under {' and '.join(dict.fromkeys(others))}."
        )
        return {}
    bench_cols = list(BENCHMARK_COLUMNS.values())
    cells: dict[str, Any] = {"paper model": paper}
    cells.update({f"paper {c}": v for c, v in zip(bench_cols, PAPER_PASS_AT_1[paper], strict=True)})
    return cells


def zero_pass_at_1_note(rows: list[dict[str, Any]], columns: Iterable[str]) -> str | None:
    """The sentence that replaces bars of zeros: which pass@1 columns are 0.0 in every row.

    Args:
        rows: Table rows keyed by column.
        columns: The pass@1 columns to look at.

    Returns:
        None when some column has a non-zero value in some row and no column is all zeros.
    """
    zero: list[str] = []
    nonzero: list[str] = []
    for column in columns:
        values = [r[column] for r in rows if isinstance(r.get(column), int | float)]
        if values:
            (zero if all(v == 0 for v in values) else nonzero).append(column)
    if not zero:
        return None
    subject = "every run" if len(rows) > 1 else "this run"
    if nonzero:
        return f"pass@1 is 0.0 for {subject} on {', '.join(zero)}."
    has_val = any(isinstance(r.get(LOSS_COLUMNS["val"]), int | float) for r in rows)
    loss = "validation loss" if has_val else "training loss"
    return (
        f"pass@1 is 0.0 on every benchmark for {subject}; compare the runs by their {loss} "
        "(the loss columns and loss.png) instead."
    )


def comparison_table(runs: list[RunRecord], labels: list[str] | None = None) -> ReportTable:
    """One row per run and stage: swept values, protocol, pass@1, final losses, paper numbers.

    Args:
        runs: The runs to compare.
        labels: Their labels; None computes them with :func:`run_labels`.

    Returns:
        The table. A benchmark column whose rows were scored under more than one protocol is
        headed ``<column> (not comparable: N protocols)`` and a note says which rows used which
        protocol; paper numbers appear only beside stages whose every result was scored under
        ``magicoder-paper`` (a note says why they are missing elsewhere).
    """
    labels = run_labels(runs) if labels is None else labels
    keys = swept_keys(runs)
    rows = [
        row
        for run, label in zip(runs, labels, strict=True)
        for row in _stage_rows(run, label, keys)
    ]
    notes: list[str] = []
    if shared := shared_overrides(runs):
        what = "Every run was given" if len(runs) > 1 else "Overrides"
        notes.append(f"{what}: {' '.join(f'{k}={v}' for k, v in shared.items())}.")
    for run, label in zip(runs, labels, strict=True):
        if not run.finished:
            notes.append(
                f"{_code(label)} has no metrics.json yet (still running, killed or failed)."
            )

    headers = _mark_incomparable(rows, notes)
    paper = [_paper_cells(row, notes) for row in rows]
    if note := zero_pass_at_1_note([r.cells for r in rows], BENCHMARK_COLUMNS.values()):
        notes.append(note)

    metric_columns = [*BENCHMARK_COLUMNS.values(), *LOSS_COLUMNS.values()]
    present = [c for c in metric_columns if any(c in r.cells for r in rows)]
    columns = ["run", *keys, "stage", "protocol", *(headers.get(c, c) for c in present)]
    if any(paper):
        columns += ["paper model", *(f"paper {c}" for c in BENCHMARK_COLUMNS.values())]
    table_rows = []
    for row, paper_cells in zip(rows, paper, strict=True):
        cells = {headers.get(k, k): v for k, v in row.cells.items()}
        table_rows.append({"run": row.label, **cells, **paper_cells})
    return ReportTable(columns, table_rows, notes)


@dataclass
class LossSeries:
    """One loss curve: one kind of loss of one stage of one run.

    Attributes:
        run: The run's label.
        stage: The stage ("" when the run names none).
        kind: ``train`` or ``val``.
        points: ``(step, loss)`` in logged order; steps count from the stage's start.
    """

    run: str
    stage: str
    kind: str
    points: list[tuple[float, float]]

    @property
    def label(self) -> str:
        stage = f" / {self.stage}" if self.stage else ""
        return f"{self.run}{stage}, {self.kind}"


_STEP_KEYS = ("trainer/global_step", "step", "_step")
_WRAP = 48  # characters per line of a plot label


def _number(value: Any) -> float | None:
    if value is None or value == "" or isinstance(value, bool):
        return None
    try:
        number = float(value)
    except (TypeError, ValueError):
        return None
    return number if math.isfinite(number) else None


def _ended_stage(row: dict[str, Any]) -> str | None:
    """The stage whose summary (``train/<stage>/global_step`` ...) a logged row carries."""
    for key, value in row.items():
        parts = key.split("/")
        summary = (
            len(parts) == 3 and parts[0] == "train" and parts[2] in ("global_step", "final_loss")
        )
        # A CSV log has every column in every row, empty where that row logged nothing.
        if summary and _number(value) is not None:
            return parts[1]
    return None


def split_loss_series(
    history: Iterable[dict[str, Any]], run: str, stages: list[str]
) -> list[LossSeries]:
    """Cut a run's logged rows into one train and one val curve per stage.

    Each stage's trainer counts steps from 0 again, so one curve over the whole log would jump
    back at every stage. A stage ends at the row that logs its summary
    (``train/<stage>/final_loss``), or, if a run logged none, where the step count drops.

    Args:
        history: Logged rows in order (W&B history rows or CSV log rows), each with a step
            (``trainer/global_step``, ``step`` or ``_step``) and maybe ``train/loss`` or
            ``val/loss``.
        run: The run's label, for the series.
        stages: The run's stages in training order; they name the segments that end without a
            summary row (an unfinished stage), by position.

    Returns:
        The non-empty series, stage by stage, train before val.
    """
    segments: list[tuple[str | None, dict[str, list[tuple[float, float]]]]] = []
    current: dict[str, list[tuple[float, float]]] = {"train": [], "val": []}
    last_step: float | None = None

    def close(stage: str | None) -> None:
        nonlocal current, last_step
        if current["train"] or current["val"] or stage is not None:
            segments.append((stage, current))
        current, last_step = {"train": [], "val": []}, None

    for row in history:
        step = next((s for k in _STEP_KEYS if (s := _number(row.get(k))) is not None), None)
        for kind in ("train", "val"):
            loss = _number(row.get(f"{kind}/loss"))
            if loss is None or step is None:
                continue
            if last_step is not None and step < last_step:
                close(None)
            current[kind].append((step, loss))
            last_step = step
        if (ended := _ended_stage(row)) is not None:
            close(ended)
    close(None)

    series = []
    for i, (stage, points) in enumerate(segments):
        if stage is None:
            stage = stages[i] if i < len(stages) else (f"stage {i + 1}" if i else "")
        series += [LossSeries(run, stage, k, p) for k, p in points.items() if p]
    return series


def _log_rows(run_dir: Path) -> list[dict[str, Any]]:
    """The run's logged rows: its W&B offline run's history or, without one, its CSV logs."""
    try:
        run_file = find_run_file(run_dir)
    except FileNotFoundError:
        rows: list[dict[str, Any]] = []
        # version_10 after version_9: a resumed run's CSV logger opens the next version.
        for csv_file in sorted(run_dir.glob("csv/**/metrics.csv"), key=_version_order):
            with open(csv_file, newline="") as f:
                rows.extend(csv.DictReader(f))
        return rows
    try:
        return read_run(run_file).history
    except ValueError as err:  # a run file its process is still writing, or a torn one
        log.warning("No loss curve for %s: %s", run_dir, err)
        return []


def _version_order(csv_file: Path) -> tuple[int, str]:
    _, _, number = csv_file.parent.name.rpartition("_")
    return (int(number) if number.isdigit() else -1, str(csv_file))


def loss_series(run: RunRecord, label: str | None = None) -> list[LossSeries]:
    """The run's train and val loss curves, one per stage (see :func:`split_loss_series`).

    Read from its W&B offline run (the newest, if several) or, without one, its CSV logs;
    [] for a run that logged neither (``logger=none``, evaluation runs).
    """
    stages = run.planned_stages or run.stages
    return split_loss_series(_log_rows(run.path), label or run.name, stages)


def _pyplot() -> Any:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def _wrap(text: str, width: int) -> str:
    """``text`` on lines of at most ``width`` characters, never cut inside a hyphenated name."""
    return textwrap.fill(text, width, break_on_hyphens=False)


def _message_figure(path: Path, title: str, message: str) -> None:
    plt = _pyplot()
    fig, ax = plt.subplots(figsize=(7, 3))
    ax.axis("off")
    ax.set_title(title)
    ax.text(0.5, 0.5, message, ha="center", va="center", wrap=True, fontsize=11)
    fig.savefig(path, dpi=100)
    plt.close(fig)


def plot_pass_at_1(table: ReportTable, path: Path) -> None:
    """Grouped bars: pass@1 per row for each benchmark column.

    Columns that are 0.0 in every row get no bars; their fact is written on the figure
    instead, and when every column is, the figure holds only that sentence.
    """
    names = {c: c.split(" (", 1)[0] for c in table.columns}  # header → benchmark column
    bench_headers = [c for c in table.columns if names[c] in BENCHMARK_COLUMNS.values()]
    rows = table.rows
    zero_note = zero_pass_at_1_note(
        [{names.get(k, k): v for k, v in r.items()} for r in rows],
        [names[c] for c in bench_headers],
    )
    benches = [
        c
        for c in bench_headers
        if any(isinstance(r.get(c), int | float) and r[c] != 0 for r in rows)
    ]
    if not benches:
        message = zero_note or "No run has a pass@1 yet."
        _message_figure(path, "pass@1", _wrap(message, 60))
        return
    plt = _pyplot()
    width = 0.8 / len(benches)
    fig, ax = plt.subplots(figsize=(max(6, 0.6 * len(rows) * len(benches)), 4.5))
    for i, bench in enumerate(benches):
        values = [r[bench] if isinstance(r.get(bench), int | float) else math.nan for r in rows]
        ax.bar([x + i * width for x in range(len(rows))], values, width, label=bench)
    ax.set_xticks(
        [x + width * (len(benches) - 1) / 2 for x in range(len(rows))],
        [_wrap(str(r["run"]), 24) for r in rows],
        fontsize=8,
    )
    ax.set_ylim(bottom=0)
    ax.set_ylabel("pass@1 (%)")
    ax.set_title("pass@1" + (f"\n{_wrap(zero_note, 80)}" if zero_note else ""))
    ax.legend(fontsize=8)
    fig.savefig(path, dpi=100, bbox_inches="tight")
    plt.close(fig)


def plot_losses(series: list[LossSeries], path: Path) -> None:
    """Loss curves, one panel per stage: each run's train loss solid, its val loss dashed."""
    if not series:
        message = (
            "No run logged a loss curve (evaluation runs, logger=none, or runs shorter than "
            "trainer.log_every_n_steps); the table's loss columns hold the final losses."
        )
        _message_figure(path, "loss", _wrap(message, 60))
        return
    plt = _pyplot()
    stages = list(dict.fromkeys(s.stage for s in series))
    runs = list(dict.fromkeys(s.run for s in series))
    colors = {run: f"C{i % 10}" for i, run in enumerate(runs)}
    fig, axes = plt.subplots(1, len(stages), figsize=(5 * len(stages), 4), squeeze=False)
    for ax, stage in zip(axes[0], stages, strict=True):
        for s in (s for s in series if s.stage == stage):
            style = {"linestyle": "-"} if s.kind == "train" else {"linestyle": "--", "marker": "o"}
            xs, ys = zip(*s.points, strict=True)
            label = _wrap(s.label, _WRAP)
            ax.plot(xs, ys, color=colors[s.run], label=label, markersize=3, **style)
        ax.set_title(stage or "training")
        ax.set_xlabel("optimizer step in the stage")
        ax.set_ylabel("loss (train solid, val dashed)")
        # Below the panel: labels are as long as the swept values they are made of.
        ax.legend(fontsize=7, loc="upper center", bbox_to_anchor=(0.5, -0.15))
    fig.savefig(path, dpi=100, bbox_inches="tight")
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
    labels = run_labels(runs)
    out_dir = Path(out_dir) if out_dir is not None else Path(root) / "report"
    out_dir.mkdir(parents=True, exist_ok=True)
    table = comparison_table(runs, labels)
    files = {
        "markdown": out_dir / "report.md",
        "csv": out_dir / "report.csv",
        "pass_at_1": out_dir / "pass_at_1.png",
        "loss": out_dir / "loss.png",
    }
    files["markdown"].write_text(table.markdown())
    with open(files["csv"], "w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=table.columns, extrasaction="ignore")
        writer.writeheader()
        writer.writerows(table.rows)
    plot_pass_at_1(table, files["pass_at_1"])
    series = [s for run, label in zip(runs, labels, strict=True) for s in loss_series(run, label)]
    plot_losses(series, files["loss"])
    log.info("Report of %d runs written to %s", len(runs), out_dir)
    return files


def results_protocol(run_dir: Path, stage: str, benchmark: str) -> ScoredUnder:
    """The protocol a run's ``eval/<stage>/<benchmark>/results.json`` was scored under."""
    path = _results_path(run_dir, stage, benchmark)
    return read_protocol(json.loads(path.read_text()), path)


def _results_path(run_dir: Path, stage: str, benchmark: str) -> Path:
    path = Path(run_dir) / "eval" / stage / benchmark / "results.json"
    if not path.is_file():
        raise FileNotFoundError(
            f"{path} does not exist; check the run directory, stage and benchmark"
        )
    return path


def task_statuses(run_dir: Path, stage: str, benchmark: str) -> dict[str, bool]:
    """task_id → passed (base and plus tests) from a run's ``results.json``."""
    tasks = json.loads(_results_path(run_dir, stage, benchmark).read_text())["tasks"]
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
