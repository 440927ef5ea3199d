"""A data report for any instruction file: languages, token lengths, closeness to HumanEval.

The HumanEval similarity is the paper's contamination analysis: a TF-IDF vectorizer is fit on
the rows (problem + " " + solution) together with HumanEval (prompt + " " + canonical
solution), and each row gets the cosine similarity of its closest HumanEval problem.

Writes under the output directory: ``languages.png``, ``token_lengths.png``,
``humaneval_similarity.png``, ``report.md`` and ``report.json`` (the tables) and
``similarity.jsonl`` (each row's closest HumanEval task and score).
"""

from __future__ import annotations

import json
import logging
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from magicoder.curation.benchmarks import read_records
from magicoder.io import markdown_table, write_jsonl

log = logging.getLogger(__name__)

PLOTS = ("languages.png", "token_lengths.png", "humaneval_similarity.png")
_SIMILAR_COLUMNS = ("row", "index", "HumanEval task", "similarity")


def problem_solution(row: dict[str, Any]) -> tuple[str, str]:
    """A row's problem and solution: ``problem``/``solution`` fields when present (raw
    OSS-Instruct rows), else ``instruction``/``response``."""
    problem = row.get("problem") if row.get("problem") is not None else row.get("instruction")
    solution = row.get("solution") if row.get("solution") is not None else row.get("response")
    return str(problem or ""), str(solution or "")


def token_lengths(texts: Sequence[str], tokenizer: Any, batch_size: int = 1024) -> list[int]:
    """Token counts of ``texts`` (no special tokens)."""
    out: list[int] = []
    for start in range(0, len(texts), batch_size):
        batch = list(texts[start : start + batch_size])
        ids = tokenizer(batch, add_special_tokens=False)["input_ids"]
        out.extend(len(x) for x in ids)
    return out


def humaneval_similarity(
    texts: Sequence[str], humaneval: Sequence[dict[str, Any]], batch_size: int = 4096
) -> tuple[np.ndarray, list[str]]:
    """Each text's TF-IDF cosine similarity to its closest HumanEval problem.

    Args:
        texts: Row texts (problem + " " + solution).
        humaneval: HumanEval rows (``task_id``, ``prompt``, ``canonical_solution``).
        batch_size: Rows per similarity block.

    Returns:
        The similarities and the closest task ids, one per text.
    """
    from sklearn.feature_extraction.text import TfidfVectorizer

    he_texts = [r["prompt"] + " " + r["canonical_solution"] for r in humaneval]
    vectorizer = TfidfVectorizer()
    vectorizer.fit(list(texts) + he_texts)
    he = vectorizer.transform(he_texts)  # rows are L2-normalised: dot product = cosine
    scores = np.zeros(len(texts))
    best: list[str] = []
    task_ids = [r["task_id"] for r in humaneval]
    for start in range(0, len(texts), batch_size):
        block = vectorizer.transform(texts[start : start + batch_size]) @ he.T
        dense = block.toarray()
        arg = dense.argmax(axis=1)
        scores[start : start + len(arg)] = dense[np.arange(len(arg)), arg]
        best.extend(task_ids[i] for i in arg)
    return scores, best


def _stats(values: Sequence[float]) -> dict[str, float]:
    if not len(values):
        return {"mean": 0.0, "median": 0.0, "p90": 0.0, "max": 0.0}
    arr = np.asarray(values, dtype=float)
    return {
        "mean": float(arr.mean()),
        "median": float(np.median(arr)),
        "p90": float(np.percentile(arr, 90)),
        "max": float(arr.max()),
    }


@dataclass
class DataReport:
    """What :func:`build_report` found.

    Attributes:
        rows: Number of rows.
        languages: Rows per language.
        table: One dict per language (and ``all``): rows, token length and similarity stats.
        metrics: Flat ``report/*`` metrics.
        files: Written files by name.
    """

    rows: int
    languages: dict[str, int]
    table: list[dict[str, Any]]
    metrics: dict[str, float]
    files: dict[str, Path] = field(default_factory=dict)


def build_report(
    rows: Sequence[dict[str, Any]],
    tokenizer: Any,
    humaneval_path: str | Path | None,
    out_dir: Path,
    bins: int = 50,
    top_similar: int = 20,
) -> DataReport:
    """Compute the report and write its plots and tables.

    Args:
        rows: Instruction rows (or raw OSS-Instruct rows).
        tokenizer: A Hugging Face tokenizer for the length counts.
        humaneval_path: HumanEval file (jsonl or jsonl.gz); None skips the similarity part.
        out_dir: Output directory (created).
        bins: Histogram bins.
        top_similar: Rows listed in ``report.md`` as closest to HumanEval.

    Returns:
        The report.
    """
    if not rows:
        raise ValueError("the data report needs at least one row; the input is empty")
    out_dir.mkdir(parents=True, exist_ok=True)
    langs = [str(r.get("lang") or "unknown") for r in rows]
    pairs = [problem_solution(r) for r in rows]
    problem_len = token_lengths([p for p, _ in pairs], tokenizer)
    solution_len = token_lengths([s for _, s in pairs], tokenizer)
    sims, closest = _closest_humaneval(pairs, humaneval_path)
    counts = Counter(langs)
    files = _write_plots(out_dir, bins, counts, problem_len, solution_len, sims)
    columns: dict[str, Sequence[float]] = {
        "problem_tokens": problem_len,
        "solution_tokens": solution_len,
    }
    if sims is not None:
        files["similarity"] = _write_similarity(rows, sims, closest, out_dir / "similarity.jsonl")
        columns["humaneval_similarity"] = [float(s) for s in sims]
    names = [name for name, _ in counts.most_common()]
    table = _language_table(langs, ["all", *names], columns)
    files["json"] = out_dir / "report.json"
    files["json"].write_text(
        json.dumps({"rows": len(rows), "languages": dict(counts), "table": table}, indent=2) + "\n"
    )
    files["markdown"] = out_dir / "report.md"
    files["markdown"].write_text(_markdown(table, rows, sims, closest, top_similar))
    log.info("Data report: %d rows, %d languages, written to %s", len(rows), len(counts), out_dir)
    return DataReport(len(rows), dict(counts), table, _metrics(table, counts), files)


def _closest_humaneval(
    pairs: list[tuple[str, str]], humaneval_path: str | Path | None
) -> tuple[np.ndarray | None, list[str]]:
    """:func:`humaneval_similarity` of the (problem, solution) pairs; (None, []) without a
    HumanEval file."""
    if humaneval_path is None:
        return None, []
    path = Path(humaneval_path).expanduser()
    if not path.is_file():
        raise FileNotFoundError(
            f"report humaneval_path={str(humaneval_path)!r} does not exist; point it at "
            "HumanEval.jsonl.gz or set it to null to skip the similarity analysis"
        )
    return humaneval_similarity([p + " " + s for p, s in pairs], list(read_records(path)))


def _write_plots(
    out_dir: Path,
    bins: int,
    counts: Counter[str],
    problem_len: list[int],
    solution_len: list[int],
    sims: np.ndarray | None,
) -> dict[str, Path]:
    """Plot the languages, the token lengths and (given ``sims``) the HumanEval similarity."""
    files = {
        "languages": _plot_languages(counts, out_dir / "languages.png"),
        "token_lengths": _plot_token_lengths(
            problem_len, solution_len, bins, out_dir / "token_lengths.png"
        ),
    }
    if sims is not None:
        files["humaneval_similarity"] = _plot_similarity(
            sims, bins, out_dir / "humaneval_similarity.png"
        )
    return files


def _pyplot() -> Any:
    """pyplot on the Agg backend, so reports render on machines without a display."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def _save_figure(fig: Any, path: Path) -> Path:
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    _pyplot().close(fig)
    return path


def _plot_languages(counts: Counter[str], path: Path) -> Path:
    """Bar chart of rows per language, most frequent first."""
    fig, ax = _pyplot().subplots(figsize=(6, 3.5))
    names, values = zip(*counts.most_common(), strict=True)
    ax.bar(names, values, color="tab:blue")
    ax.set_ylabel("rows")
    ax.set_title(f"Rows per language ({counts.total()} rows)")
    ax.tick_params(axis="x", rotation=45)
    return _save_figure(fig, path)


def _plot_token_lengths(
    problem_len: list[int], solution_len: list[int], bins: int, path: Path
) -> Path:
    """Histograms of problem and solution token lengths, side by side, with their means."""
    fig, axes = _pyplot().subplots(1, 2, figsize=(10, 3.5))
    for ax, values, title in (
        (axes[0], problem_len, "problem (instruction)"),
        (axes[1], solution_len, "solution (response)"),
    ):
        ax.hist(values, bins=bins, color="tab:orange", alpha=0.8)
        ax.axvline(float(np.mean(values)), color="k", linestyle="--", label="mean")
        ax.set_xlabel("tokens")
        ax.set_ylabel("rows")
        ax.set_title(f"{title} length")
        ax.legend()
    return _save_figure(fig, path)


def _plot_similarity(sims: np.ndarray, bins: int, path: Path) -> Path:
    """Histogram of the rows' similarity to HumanEval, as fractions of the rows."""
    fig, ax = _pyplot().subplots(figsize=(6, 3.5))
    weights = np.full(len(sims), 1.0 / len(sims))
    ax.hist(sims, bins=bins, range=(0.0, 1.0), weights=weights, color="tab:red", alpha=0.7)
    ax.axvline(float(sims.mean()), color="k", linestyle="--", label=f"mean {sims.mean():.3f}")
    ax.set_xlabel("TF-IDF cosine similarity to the closest HumanEval problem")
    ax.set_ylabel("fraction of rows")
    ax.legend()
    return _save_figure(fig, path)


def _write_similarity(
    rows: Sequence[dict[str, Any]], sims: np.ndarray, closest: list[str], path: Path
) -> Path:
    """One line per row: its position, ``index``, closest HumanEval task and similarity."""
    write_jsonl(
        path,
        (
            {"row": i, "index": row.get("index"), "task_id": task, "similarity": round(float(s), 6)}
            for i, (row, s, task) in enumerate(zip(rows, sims, closest, strict=True))
        ),
    )
    return path


def _language_table(
    langs: list[str], groups: list[str], columns: dict[str, Sequence[float]]
) -> list[dict[str, Any]]:
    """One entry per group (a language, or ``all``): its row count and each column's stats."""
    table: list[dict[str, Any]] = []
    for lang in groups:
        picks = [i for i, x in enumerate(langs) if lang == "all" or x == lang]
        entry: dict[str, Any] = {"lang": lang, "rows": len(picks)}
        for key, values in columns.items():
            for stat, v in _stats([values[i] for i in picks]).items():
                entry[f"{key}_{stat}"] = v
        table.append(entry)
    return table


def _metrics(table: list[dict[str, Any]], counts: Counter[str]) -> dict[str, float]:
    """Flat ``report/*`` metrics: the ``all`` entry of the table and the rows per language."""
    metrics = {"report/rows": float(table[0]["rows"])}
    for key, value in table[0].items():
        if key not in ("lang", "rows"):
            metrics[f"report/{key}"] = float(value)
    for lang, n in counts.items():
        metrics[f"report/lang/{lang}/rows"] = float(n)
    return metrics


def table_markdown(table: list[dict[str, Any]]) -> str:
    """The per-language table as markdown (floats to 3 decimals)."""
    return markdown_table(list(table[0]), table, float_format=".3f")


def _markdown(
    table: list[dict[str, Any]],
    rows: Sequence[dict[str, Any]],
    sims: np.ndarray | None,
    closest: list[str],
    top: int,
) -> str:
    lines = ["# Data report", "", table_markdown(table).rstrip("\n")]
    if sims is not None:
        nearest = [
            {
                "row": int(i),
                "index": rows[int(i)].get("index"),
                "HumanEval task": closest[int(i)],
                "similarity": float(sims[i]),
            }
            for i in np.argsort(-sims)[:top]
        ]
        lines += ["", f"## The {top} rows closest to HumanEval", ""]
        lines.append(markdown_table(_SIMILAR_COLUMNS, nearest, float_format=".3f").rstrip("\n"))
    lines += [
        "",
        *[f"![{name}]({name})" for name in PLOTS if sims is not None or "sim" not in name],
    ]
    return "\n".join(lines) + "\n"


def log_report(logger: Any, report: DataReport, prefix: str = "report") -> None:
    """Log a report's table and plots to W&B (the caller logs ``report.metrics``)."""
    if logger is None:
        return
    experiment = getattr(logger, "experiment", None)
    if experiment is None or not hasattr(experiment, "log"):
        return
    import wandb

    columns: list[str | int] = list(report.table[0])
    table = wandb.Table(
        columns=columns, data=[[entry[str(c)] for c in columns] for entry in report.table]
    )
    images = {
        f"{prefix}/{name}": wandb.Image(str(report.files[name]))
        for name in ("languages", "token_lengths", "humaneval_similarity")
        if name in report.files
    }
    experiment.log({f"{prefix}/table": table, **images})
    experiment.summary.update(report.metrics)


def load_tokenizer(spec: Any) -> Any:
    """The tokenizer of a ``conf/model`` spec, without loading the model's weights."""
    from transformers import AutoTokenizer, PreTrainedTokenizerFast

    from magicoder.models import HubModel, TinyLlama

    if isinstance(spec, TinyLlama):
        return PreTrainedTokenizerFast.from_pretrained(spec.build())
    if isinstance(spec, HubModel):
        spec.check()
        kwargs: dict[str, Any] = {"revision": spec.revision}
        if spec.trust_remote_code:
            kwargs["trust_remote_code"] = True
        return AutoTokenizer.from_pretrained(spec.name_or_path, **kwargs)
    raise ValueError(
        f"cannot get a tokenizer from model config {type(spec).__name__}; use model=tiny, a "
        "hub model or model=local"
    )
