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

log = logging.getLogger(__name__)

PLOTS = ("languages.png", "token_lengths.png", "humaneval_similarity.png")


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
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    if not rows:
        raise ValueError("the data report needs at least one row; the input is empty")
    out_dir.mkdir(parents=True, exist_ok=True)
    langs = [str(r.get("lang") or "unknown") for r in rows]
    pairs = [problem_solution(r) for r in rows]
    problem_len = token_lengths([p for p, _ in pairs], tokenizer)
    solution_len = token_lengths([s for _, s in pairs], tokenizer)
    sims: np.ndarray | None = None
    closest: list[str] = []
    if humaneval_path is not None:
        path = Path(humaneval_path).expanduser()
        if not path.is_file():
            raise FileNotFoundError(
                f"report humaneval_path={str(humaneval_path)!r} does not exist; point it at "
                "HumanEval.jsonl.gz or set it to null to skip the similarity analysis"
            )
        sims, closest = humaneval_similarity(
            [p + " " + s for p, s in pairs], list(read_records(path))
        )

    counts = Counter(langs)
    files: dict[str, Path] = {}

    fig, ax = plt.subplots(figsize=(6, 3.5))
    names = [name for name, _ in counts.most_common()]
    ax.bar(names, [counts[n] for n in names], color="tab:blue")
    ax.set_ylabel("rows")
    ax.set_title(f"Rows per language ({len(rows)} rows)")
    ax.tick_params(axis="x", rotation=45)
    fig.tight_layout()
    files["languages"] = out_dir / "languages.png"
    fig.savefig(files["languages"], dpi=120)
    plt.close(fig)

    fig, axes = plt.subplots(1, 2, figsize=(10, 3.5))
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
    fig.tight_layout()
    files["token_lengths"] = out_dir / "token_lengths.png"
    fig.savefig(files["token_lengths"], dpi=120)
    plt.close(fig)

    if sims is not None:
        fig, ax = plt.subplots(figsize=(6, 3.5))
        weights = np.full(len(sims), 1.0 / len(sims))
        ax.hist(sims, bins=bins, range=(0.0, 1.0), weights=weights, color="tab:red", alpha=0.7)
        ax.axvline(float(sims.mean()), color="k", linestyle="--", label=f"mean {sims.mean():.3f}")
        ax.set_xlabel("TF-IDF cosine similarity to the closest HumanEval problem")
        ax.set_ylabel("fraction of rows")
        ax.legend()
        fig.tight_layout()
        files["humaneval_similarity"] = out_dir / "humaneval_similarity.png"
        fig.savefig(files["humaneval_similarity"], dpi=120)
        plt.close(fig)
        files["similarity"] = out_dir / "similarity.jsonl"
        with files["similarity"].open("w") as f:
            for i, (row, score, task) in enumerate(zip(rows, sims, closest, strict=True)):
                record = {"row": i, "index": row.get("index"), "task_id": task}
                f.write(json.dumps({**record, "similarity": round(float(score), 6)}) + "\n")

    table: list[dict[str, Any]] = []
    for lang in ["all", *names]:
        picks = [i for i, x in enumerate(langs) if lang == "all" or x == lang]
        entry: dict[str, Any] = {"lang": lang, "rows": len(picks)}
        for key, values in (("problem_tokens", problem_len), ("solution_tokens", solution_len)):
            for stat, v in _stats([values[i] for i in picks]).items():
                entry[f"{key}_{stat}"] = v
        if sims is not None:
            for stat, v in _stats([float(sims[i]) for i in picks]).items():
                entry[f"humaneval_similarity_{stat}"] = v
        table.append(entry)

    metrics = {"report/rows": float(len(rows))}
    for key, value in table[0].items():
        if key not in ("lang", "rows"):
            metrics[f"report/{key}"] = float(value)
    for lang, n in counts.items():
        metrics[f"report/lang/{lang}/rows"] = float(n)

    files["json"] = out_dir / "report.json"
    files["json"].write_text(
        json.dumps({"rows": len(rows), "languages": dict(counts), "table": table}, indent=2) + "\n"
    )
    files["markdown"] = out_dir / "report.md"
    files["markdown"].write_text(_markdown(table, rows, sims, closest, top_similar))
    log.info("Data report: %d rows, %d languages, written to %s", len(rows), len(counts), out_dir)
    return DataReport(len(rows), dict(counts), table, metrics, files)


def table_markdown(table: list[dict[str, Any]]) -> str:
    """The per-language table as markdown."""
    columns = list(table[0])
    lines = ["| " + " | ".join(columns) + " |", "|" + "---|" * len(columns)]
    for entry in table:
        cells = [f"{v:.3f}" if isinstance(v, float) else str(v) for v in entry.values()]
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"


def _markdown(
    table: list[dict[str, Any]],
    rows: Sequence[dict[str, Any]],
    sims: np.ndarray | None,
    closest: list[str],
    top: int,
) -> str:
    lines = ["# Data report", "", table_markdown(table).rstrip("\n")]
    if sims is not None:
        lines += ["", f"## The {top} rows closest to HumanEval", ""]
        lines += ["| row | index | HumanEval task | similarity |", "|---|---|---|---|"]
        for i in np.argsort(-sims)[:top]:
            lines.append(
                f"| {int(i)} | {rows[int(i)].get('index')} | {closest[int(i)]} | {sims[i]:.3f} |"
            )
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
