"""``run_curate`` and ``run_data_report``: the configured cleaning steps, and the data report.

``run_curate`` reads one or more raw files, optionally shuffles them (the paper: seed 666),
runs ``cfg.steps`` in order, formats the survivors into training rows and writes, under
``cfg.output_dir``:

* ``curated.jsonl``: rows ``data=jsonl`` trains on directly;
* ``rejects.jsonl``: every dropped row with its ``step``, ``reason`` (and ``matched`` or
  ``duplicate_of``);
* ``summary.json`` / ``summary.md``: rows in and out per step and per language;
* ``report/``: the data report of the curated rows (when ``report.enabled``).
"""

from __future__ import annotations

import glob
import json
import logging
import random
from collections import Counter
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from hydra.utils import instantiate
from omegaconf import DictConfig

from magicoder.config import to_dict
from magicoder.curation.benchmarks import load_benchmark_strings
from magicoder.curation.decontamination import NORMALIZATIONS, PAPER, Decontaminator
from magicoder.curation.filters import (
    Row,
    copied_code_filter,
    exact_dedup,
    missing_fields_filter,
    reject,
)
from magicoder.curation.near_dedup import near_dedup
from magicoder.curation.report import (
    build_report,
    load_tokenizer,
    log_report,
    table_markdown,
)
from magicoder.io import iter_jsonl, markdown_table, write_jsonl
from magicoder.lifecycle import Run, run_app
from magicoder.progress import Progress

log = logging.getLogger(__name__)

STEPS = ("exact_dedup", "copied_code", "near_dedup", "decontaminate", "execute")
INPUT_FIELDS: dict[str, tuple[str, str, str | None]] = {
    "oss_instruct": ("problem", "solution", "seed"),
    "instruction": ("instruction", "response", None),
}
"""Input format → (problem field, solution field, seed field)."""


def resolve_inputs(inputs: str | Sequence[str]) -> list[Path]:
    """Files named by ``inputs`` (paths or glob patterns), in order, each once.

    Raises:
        FileNotFoundError: When a path or pattern matches no file.
    """
    patterns = [inputs] if isinstance(inputs, str) else list(inputs)
    if not patterns:
        raise ValueError("inputs is empty; give one or more raw jsonl files (or glob patterns)")
    files: list[Path] = []
    for pattern in patterns:
        expanded = str(Path(pattern).expanduser())
        matches = sorted(glob.glob(expanded, recursive=True)) if glob.has_magic(expanded) else []
        if not matches and Path(expanded).is_file():
            matches = [expanded]
        if not matches:
            raise FileNotFoundError(
                f"inputs entry {pattern!r} matches no file; give the raw jsonl files written "
                "by magicoder-generate (paths or glob patterns)"
            )
        files.extend(Path(m) for m in matches if Path(m) not in files)
    return files


def format_rows(rows: Sequence[Row], input_format: str, style: str) -> tuple[list[Row], list[Row]]:
    """Turn curated rows into training rows.

    Args:
        rows: Curated rows.
        input_format: ``oss_instruct`` or ``instruction``.
        style: ``instruction`` (``{"instruction", "response", ...}``: OSS-Instruct rows become
            ``OSS_INSTRUCT_INSTRUCTION.format(problem=...)`` with the solution as response) or
            ``oss_instruct`` (keep problem/solution; train with ``data.format=oss_instruct``).
    """
    from magicoder.data.sources import to_instruction_row

    if style not in ("instruction", "oss_instruct"):
        raise ValueError(f"format={style!r} is unknown; use 'instruction' or 'oss_instruct'")
    if style == "oss_instruct" and input_format != "oss_instruct":
        raise ValueError(
            "format=oss_instruct keeps problem/solution fields, which input_format=instruction "
            "rows do not have; use format=instruction"
        )
    kept: list[Row] = []
    rejected: list[Row] = []
    for row in rows:
        out = row if style == "oss_instruct" else to_instruction_row(row, input_format)
        if out is None:
            rejected.append(reject(row, "format", "cannot be made an instruction row"))
        else:
            kept.append(out)
    return kept, rejected


def _lang_counts(rows: Sequence[Row]) -> Counter[str]:
    return Counter(str(r.get("lang") or "unknown") for r in rows)


def _step_summary(name: str, before: Sequence[Row], after: Sequence[Row], dropped: Sequence[Row]):
    langs_in, langs_out = _lang_counts(before), _lang_counts(after)
    return {
        "step": name,
        "in": len(before),
        "out": len(after),
        "dropped": len(dropped),
        "by_lang": {
            lang: {"in": langs_in[lang], "out": langs_out.get(lang, 0)} for lang in sorted(langs_in)
        },
        "reasons": dict(Counter(str(r["reason"]) for r in dropped).most_common()),
    }


def _steps(cfg: DictConfig, fields: tuple[str, str, str | None]) -> dict[str, Callable]:
    problem, solution, seed = fields
    text_fields = [problem, solution]

    def exact(rows: list[Row]) -> tuple[list[Row], list[Row]]:
        keys = cfg.exact_dedup.fields or ([seed] if seed else []) + text_fields
        return exact_dedup(rows, list(keys))

    def copied(rows: list[Row]) -> tuple[list[Row], list[Row]]:
        return copied_code_filter(rows, problem, solution)

    def near(rows: list[Row]) -> tuple[list[Row], list[Row]]:
        c = cfg.near_dedup
        return near_dedup(rows, text_fields, c.threshold, c.num_perm, c.shingle, c.seed)

    def decontaminate(rows: list[Row]) -> tuple[list[Row], list[Row]]:
        c = cfg.decontaminate
        # normalize=paper is the original's whole rule, the strings it searched for included.
        as_original = c.normalize == PAPER
        strings = load_benchmark_strings(to_dict(c.benchmarks), c.mbpp_split, as_original)
        matcher = Decontaminator(
            strings,
            list(c.columns or text_fields),
            normalize=c.normalize,
            ngram_n=c.ngram.n,
            ngram_threshold=c.ngram.threshold,
        )
        kept, rejected = [], []
        for row in rows:
            match = matcher.find(row)
            if match is None:
                kept.append(row)
            else:
                reason = f"{match.string.benchmark} {match.string.kind} ({match.method})"
                rejected.append(reject(row, "decontaminate", reason, matched=match.describe()))
        return kept, rejected

    def execute(rows: list[Row]) -> tuple[list[Row], list[Row]]:
        from magicoder.curation.execute import execute_rows, merge_caches

        c = cfg.execute
        cache_path = Path(c.cache_path or Path(cfg.output_dir) / "execute-cache.jsonl")
        if c.merge_from:
            merge_caches([Path(p) for p in c.merge_from] + [cache_path], cache_path)
        kept, failed, funnel = execute_rows(
            rows,
            cache_path=cache_path,
            sandbox=c.sandbox,
            timeout=c.timeout,
            shard=c.shard,
            n_workers=c.n_workers,
            solution_field=solution,
            toolchains=to_dict(c.toolchains),
            compile_timeout=c.compile_timeout,
        )
        execute.funnel = funnel  # type: ignore[attr-defined]
        rejected = [
            reject({k: v for k, v in row.items() if k not in ("reason", "output")}, "execute",
                   row["reason"], output=row["output"])
            for row in failed
        ]  # fmt: skip
        return kept, rejected

    return {
        "exact_dedup": exact,
        "copied_code": copied,
        "near_dedup": near,
        "decontaminate": decontaminate,
        "execute": execute,
    }


def _summary_markdown(summary: dict[str, Any]) -> str:
    tables = [
        markdown_table(["step", "in", "out", "dropped"], summary["steps"]),
        markdown_table(
            ["lang", "in", "out"],
            [{"lang": lang, **summary["by_lang"][lang]} for lang in sorted(summary["by_lang"])],
        ),
    ]
    if summary.get("decontaminated_by"):
        rows = [
            {"benchmark": b, "rows dropped": n} for b, n in summary["decontaminated_by"].items()
        ]
        tables.append(markdown_table(["benchmark", "rows dropped"], rows))
    for step in summary["steps"]:
        if "funnel" in step:  # execute: rows in -> with tests -> passing (or no toolchain)
            funnel = step["funnel"]
            rows = [
                {"lang": lang, "in": c.get("in", 0), "no toolchain": c.get("no_toolchain", 0),
                 "with tests": c.get("with_tests", 0), "passing": c.get("passed", 0)}
                for lang, c in {**funnel["by_lang"], "all": funnel}.items()
            ]  # fmt: skip
            columns = ["lang", "in", "no toolchain", "with tests", "passing"]
            tables.append(markdown_table(columns, rows))
    return "\n".join(tables)


def _log_summary_table(logger: Any, summary: dict[str, Any]) -> None:
    experiment = getattr(logger, "experiment", None)
    if experiment is None or not hasattr(experiment, "log"):
        return
    import wandb

    table = wandb.Table(columns=["step", "in", "out", "dropped"])
    for s in summary["steps"]:
        table.add_data(s["step"], s["in"], s["out"], s["dropped"])
    langs = wandb.Table(columns=["lang", "in", "out"])
    for lang, counts in sorted(summary["by_lang"].items()):
        langs.add_data(lang, counts["in"], counts["out"])
    experiment.log({"curate/steps": table, "curate/languages": langs})


def _check(cfg: DictConfig) -> None:
    if cfg.input_format not in INPUT_FIELDS:
        raise ValueError(
            f"input_format={cfg.input_format!r} is unknown; use one of {sorted(INPUT_FIELDS)}"
        )
    unknown = [s for s in cfg.steps if s not in STEPS]
    if unknown:
        raise ValueError(f"steps {unknown} are unknown; choose from {list(STEPS)}")
    if "decontaminate" in cfg.steps and cfg.decontaminate.normalize not in NORMALIZATIONS:
        raise ValueError(
            f"decontaminate.normalize={cfg.decontaminate.normalize!r} is unknown; use one of "
            f"{list(NORMALIZATIONS)}"
        )


def read_rows(files: Sequence[Path], shuffle_seed: int | None) -> list[Row]:
    """Every row of ``files`` in order, shuffled with ``shuffle_seed`` (None keeps the order)."""
    raw: list[Row] = []
    for path in files:
        n = len(raw)
        raw.extend(iter_jsonl(path))
        log.info("Read %d rows from %s", len(raw) - n, path)
    if shuffle_seed is not None:
        random.Random(shuffle_seed).shuffle(raw)
    return raw


def curate_rows(cfg: DictConfig, raw: list[Row]) -> tuple[list[Row], list[Row], list[dict]]:
    """Run the load check, ``cfg.steps`` in order and the formatting.

    Returns:
        The curated rows, every rejected row, and one summary per step.
    """
    fields = INPUT_FIELDS[cfg.input_format]
    steps = _steps(cfg, fields)
    rows, rejected = missing_fields_filter(raw, fields[:2])
    summaries = [_step_summary("load", raw, rows, rejected)]
    named = [(name, steps[name]) for name in cfg.steps]
    named.append(("format", lambda r: format_rows(r, cfg.input_format, cfg.format)))
    with Progress(total=len(named), desc="curate", unit="steps", logger=log) as progress:
        for name, step in named:
            before = rows
            rows, dropped = step(rows)
            summaries.append(_step_summary(name, before, rows, dropped))
            if hasattr(step, "funnel"):  # execute: rows in -> with tests -> passing, per language
                summaries[-1]["funnel"] = step.funnel
            rejected += dropped
            log.info("%s: %d → %d rows", name, len(before), len(rows))
            progress.update(1, rows=len(rows))
    return rows, rejected, summaries


def _curation_metrics(raw: list[Row], rows: list[Row], rejected: list[Row], summary: dict):
    metrics: dict[str, float] = {
        "curate/rows_in": float(len(raw)),
        "curate/rows_out": float(len(rows)),
        "curate/rejected": float(len(rejected)),
    }
    for s in summary["steps"]:
        metrics[f"curate/{s['step']}/dropped"] = float(s["dropped"])
    for bench, n in summary["decontaminated_by"].items():
        metrics[f"curate/decontaminate/{bench}"] = float(n)
    for lang, n in _lang_counts(rows).items():
        metrics[f"curate/lang/{lang}/rows_out"] = float(n)
    return metrics


def _write_outputs(
    out_dir: Path,
    files: list[Path],
    raw: list[Row],
    rows: list[Row],
    rejected: list[Row],
    summaries: list[dict],
) -> dict[str, Any]:
    curated_path, rejects_path = out_dir / "curated.jsonl", out_dir / "rejects.jsonl"
    write_jsonl(curated_path, rows)
    write_jsonl(rejects_path, rejected)
    langs_in, langs_out = _lang_counts(raw), _lang_counts(rows)
    decontaminated = Counter(
        r["matched"]["benchmark"] for r in rejected if r["step"] == "decontaminate"
    )
    summary = {
        "inputs": [str(p) for p in files],
        "rows_in": len(raw),
        "rows_out": len(rows),
        "steps": summaries,
        "by_lang": {
            lang: {"in": langs_in[lang], "out": langs_out.get(lang, 0)} for lang in langs_in
        },
        "decontaminated_by": dict(decontaminated.most_common()),
        "curated": str(curated_path),
        "rejects": str(rejects_path),
    }
    (out_dir / "summary.json").write_text(json.dumps(summary, indent=2) + "\n")
    table = _summary_markdown(summary)
    (out_dir / "summary.md").write_text(table)
    log.info("Curation summary (%s):\n%s", out_dir, table)
    return summary


def _curate(run: Run) -> None:
    cfg = run.cfg
    _check(cfg)
    out_dir = Path(cfg.output_dir).expanduser()
    out_dir.mkdir(parents=True, exist_ok=True)
    files = resolve_inputs(list(cfg.inputs) if not isinstance(cfg.inputs, str) else cfg.inputs)
    tokenizer = None
    if cfg.report.enabled:
        log.info("Report tokenizer: %s", cfg.model._target_)
        tokenizer = load_tokenizer(instantiate(cfg.model))
    raw = read_rows(files, cfg.shuffle_seed)
    rows, rejected, summaries = curate_rows(cfg, raw)
    summary = _write_outputs(out_dir, files, raw, rows, rejected, summaries)
    run.log_metrics(_curation_metrics(raw, rows, rejected, summary), summary=True)
    _log_summary_table(run.logger, summary)
    if cfg.report.enabled and rows:
        report = build_report(
            rows, tokenizer, cfg.report.humaneval_path, out_dir / "report", cfg.report.bins
        )
        run.log_metrics(report.metrics, summary=True)
        log_report(run.logger, report)
    log.info("Curated %d of %d rows → %s", len(rows), len(raw), out_dir / "curated.jsonl")


def run_curate(cfg: DictConfig) -> dict[str, Any]:
    """Curate raw OSS-Instruct (or instruction) files into a training file.

    Args:
        cfg: The composed ``conf/curate.yaml``.

    Returns:
        ``curate/rows_in``, ``curate/rows_out``, ``curate/<step>/dropped``,
        ``curate/decontaminate/<benchmark>`` and the report's ``report/*`` metrics; also
        written to ``<run dir>/metrics.json``.
    """
    return run_app(cfg, _curate)


def _data_report(run: Run) -> None:
    cfg = run.cfg
    files = resolve_inputs(list(cfg.inputs) if not isinstance(cfg.inputs, str) else cfg.inputs)
    log.info("Report tokenizer: %s", cfg.model._target_)
    tokenizer = load_tokenizer(instantiate(cfg.model))
    rows: list[Row] = [row for path in files for row in iter_jsonl(path)]
    if cfg.max_rows is not None and len(rows) > cfg.max_rows:
        rows = random.Random(cfg.seed).sample(rows, cfg.max_rows)
    out_dir = Path(cfg.output_dir).expanduser()
    report = build_report(rows, tokenizer, cfg.humaneval_path, out_dir, cfg.bins)
    run.log_metrics(report.metrics, summary=True)
    log_report(run.logger, report)
    log.info("Data report (%s):\n%s", out_dir, table_markdown(report.table))


def run_data_report(cfg: DictConfig) -> dict[str, Any]:
    """The data report of any instruction (or raw OSS-Instruct) file.

    Args:
        cfg: The composed ``conf/data-report.yaml``.

    Returns:
        The ``report/*`` metrics (also in ``<run dir>/metrics.json``).
    """
    return run_app(cfg, _data_report)
