"""magicoder-curate end to end on the real benchmark files; the curated file trains."""

from __future__ import annotations

import gzip
import json
import re
from pathlib import Path

import pytest

from magicoder.curation.app import run_curate, run_data_report
from magicoder.data.stdlib import stdlib_pairs
from magicoder.tracking.wandb_runs import read_run
from magicoder.training.app import run_train


def read(path: Path) -> list[dict]:
    opener = gzip.open if path.suffix == ".gz" else open
    with opener(path, "rt") as f:
        return [json.loads(line) for line in f if line.strip()]


def clean_rows(n: int) -> list[dict]:
    """Realistic rows that no benchmark contains: stdlib docstring → function pairs."""
    rows: list[dict] = []
    seen: set[str] = set()
    for pair in stdlib_pairs(max_files=80):
        code = pair["response"].removeprefix("```python\n").removesuffix("```")
        keys = {"".join(code.split()), "".join(pair["instruction"].split())}
        if keys & seen:
            continue
        seen |= keys
        i = len(rows)
        rows.append(
            {
                "index": i,
                "raw_index": i,
                "lang": "python",
                "seed": code.splitlines()[0] + f"  # {i}\n",
                "problem": f"{pair['instruction']}\n\nName the function `{pair['qualname']}`.",
                "solution": f"Here is an implementation:\n```python\n{code}```\nIt works.",
                "teacher_model": "test",
                "teacher_fingerprint": None,
                "finish_reason": "stop",
            }
        )
        if len(rows) == n:
            return rows
    raise AssertionError(f"fewer than {n} distinct stdlib functions")


def reformat(code: str) -> str:
    """Light reformatting: CRLF line ends, 2-space indents, trailing spaces, an extra blank line."""
    lines = []
    for line in code.replace("\r\n", "\n").split("\n"):
        stripped = line.lstrip(" ")
        depth = (
            (len(line) - len(stripped)) // 4
            if line.startswith("    ")
            else len(line) - len(stripped)
        )
        lines.append("  " * depth + stripped + "  ")
    return "\r\n\r\n".join(lines[:1]) + "\r\n" + "\r\n".join(lines[1:])


def plant(rows: list[dict], data_dir: Path) -> dict[int, tuple[set[str], str]]:
    """Put benchmark strings into some rows; returns index → (benchmarks, task number)."""
    he = {r["task_id"]: r for r in read(data_dir / "HumanEval.jsonl.gz")}
    mbpp = {r["task_id"]: r for r in read(data_dir / "mbpp.jsonl")}
    gsm8k = read(data_dir / "gsm8k-test.jsonl")
    expected: dict[int, tuple[set[str], str]] = {}
    humaneval, mbpps = {"humaneval", "humaneval_plus"}, {"mbpp", "mbpp_plus"}

    def put(i: int, field: str, text: str, benchmarks: set[str], task: str) -> None:
        row = rows[i]
        row[field] = (
            row[field] + "\n\n" + text
            if field == "problem"
            else (row[field].replace("It works.", "```python\n" + text + "\n```\nIt works."))
        )
        expected[row["index"]] = (benchmarks, task)

    he0 = he["HumanEval/0"]
    put(3, "solution", he0["prompt"] + he0["canonical_solution"], humaneval, "0")
    put(
        7,
        "solution",
        "def f(x):\n" + reformat(he["HumanEval/12"]["canonical_solution"]),
        humaneval,
        "12",
    )
    put(11, "solution", reformat(he["HumanEval/100"]["canonical_solution"]), humaneval, "100")
    put(
        15,
        "problem",
        "Task: " + he["HumanEval/42"]["prompt"].split('"""')[1].upper(),
        humaneval,
        "42",
    )
    put(19, "solution", mbpp[11]["code"], mbpps, "11")  # verbatim: CRLF line ends
    put(23, "solution", reformat(mbpp[250]["code"]), mbpps, "250")
    put(27, "solution", mbpp[480]["code"].replace("\r\n", "\n"), mbpps, "480")
    put(31, "problem", mbpp[300]["text"], mbpps, "300")
    put(35, "problem", gsm8k[5]["question"].replace(". ", ".\n"), {"gsm8k"}, "5")
    return expected


@pytest.fixture
def raw_file(tmp_path: Path, data_dir: Path) -> tuple[Path, dict[int, tuple[set[str], str]], int]:
    rows = clean_rows(60)
    expected = plant(rows, data_dir)
    he20 = read(data_dir / "HumanEval.jsonl.gz")[20]["canonical_solution"]
    edited = he20.replace("closest_pair", "best_pair").replace("distance", "gap")
    # An edited copy (variables renamed): only n-gram matching can catch it.
    rows[39]["solution"] = rows[39]["solution"].replace("It works.", f"```python\n{edited}```")
    near = dict(rows[45], index=1000, seed="other seed", problem=rows[45]["problem"] + " Please.")
    near["solution"] = rows[45]["solution"].replace("It works.", "It works well.")
    dup = dict(rows[50], index=1001, seed="  " + rows[50]["seed"])
    path = tmp_path / "raw.jsonl"
    path.write_text("".join(json.dumps(r) + "\n" for r in [*rows, near, dup]))
    return path, expected, len(rows)


def compose_curate(compose, tmp_path: Path, raw: Path, *extra: str):
    return compose("curate", [f"inputs=[{raw}]", "logger=none", *extra], tmp_path / "run")


def test_decontamination_catches_planted_benchmark_solutions(tmp_path, compose, raw_file):
    raw, expected, n_clean = raw_file
    cfg = compose_curate(compose, tmp_path, raw, "report.enabled=false", "shuffle_seed=null")
    metrics = run_curate(cfg)
    rejects = read(tmp_path / "run" / "rejects.jsonl")
    decontaminated = {r["index"]: r for r in rejects if r["step"] == "decontaminate"}
    assert set(decontaminated) == set(expected)
    for index, (benchmarks, task) in expected.items():
        matched = decontaminated[index]["matched"]
        assert matched["benchmark"] in benchmarks, (index, matched)
        assert re.search(r"(\d+)$", matched["task_id"]).group(1) == task, (index, matched)
        assert matched["string"] and matched["method"] == "substring"
    # The duplicate goes in exact dedup; every other clean row (and the edited copy) stays.
    assert {r["index"]: r["step"] for r in rejects if r["step"] != "decontaminate"} == {
        1001: "exact_dedup"
    }
    curated = read(tmp_path / "run" / "curated.jsonl")
    assert len(curated) == n_clean + 1 - len(expected)
    assert metrics["curate/rows_out"] == len(curated)
    assert metrics["curate/decontaminate/dropped"] == len(expected)
    assert all(set(r) >= {"instruction", "response", "lang", "index"} for r in curated)
    assert all(
        r["instruction"].startswith("Write a solution to the following coding problem:\n")
        for r in curated
    )

    summary = json.loads((tmp_path / "run" / "summary.json").read_text())
    assert [s["step"] for s in summary["steps"]] == [
        "load",
        "exact_dedup",
        "copied_code",
        "decontaminate",
        "format",
    ]
    assert summary["by_lang"]["python"] == {"in": n_clean + 2, "out": len(curated)}


def test_ngram_overlap_and_near_dedup_catch_edited_copies(tmp_path, compose, raw_file):
    raw, expected, _ = raw_file
    cfg = compose_curate(
        compose,
        tmp_path,
        raw,
        "report.enabled=false",
        "steps=[exact_dedup,copied_code,near_dedup,decontaminate]",
        "decontaminate.ngram.n=6",
        "decontaminate.ngram.threshold=0.4",
        "near_dedup.threshold=0.8",
    )
    run_curate(cfg)
    rejects = {r["index"]: r for r in read(tmp_path / "run" / "rejects.jsonl")}
    assert rejects[39]["step"] == "decontaminate"
    assert rejects[39]["matched"]["method"] == "ngram"
    # HumanEval/0 shares its double loop with HumanEval/20: either is a right answer.
    assert rejects[39]["matched"]["task_id"].endswith(("/20", "/0"))
    assert 0.4 <= rejects[39]["matched"]["overlap"] < 1
    decontaminated = {i for i, r in rejects.items() if r["step"] == "decontaminate"}
    assert decontaminated == {*expected, 39}
    # Rows 45 and 1000 differ by two words; the shuffle decides which one stays.
    near = {i: r for i, r in rejects.items() if r["step"] == "near_dedup"}
    assert len(near) == 1 and set(near) | {next(iter(near.values()))["duplicate_of"]} == {45, 1000}


@pytest.mark.slow
def test_curated_file_trains_and_is_reported(tmp_path, compose, raw_file, data_dir):
    raw, _, _ = raw_file
    metrics = run_curate(compose_curate(compose, tmp_path, raw, "logger=wandb"))
    run_dir = tmp_path / "run"
    report_dir = run_dir / "report"
    for name in ("languages.png", "token_lengths.png", "humaneval_similarity.png"):
        assert (report_dir / name).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    table = json.loads((report_dir / "report.json").read_text())["table"]
    assert table[0]["lang"] == "all" and table[0]["rows"] == metrics["curate/rows_out"]
    assert 0 < table[0]["humaneval_similarity_mean"] < 1
    assert table[0]["problem_tokens_mean"] > 10
    assert len((report_dir / "similarity.jsonl").read_text().splitlines()) == table[0]["rows"]

    wandb_run = read_run(run_dir)
    assert wandb_run.summary["curate/rows_out"] == metrics["curate/rows_out"]
    assert wandb_run.summary["report/humaneval_similarity_mean"] == pytest.approx(
        metrics["report/humaneval_similarity_mean"]
    )
    logged = {key: value for row in wandb_run.history for key, value in row.items()}
    assert logged["curate/steps._type"] == logged["report/table._type"] == "table-file"
    for plot in ("languages", "token_lengths", "humaneval_similarity"):
        assert logged[f"report/{plot}._type"] == "image-file"
        assert any(f.startswith(f"media/images/report/{plot}") for f in wandb_run.files)

    curated = run_dir / "curated.jsonl"
    train_cfg = compose(
        "train",
        [
            "data=jsonl",
            f"data.path={curated}",
            "data.stages.sft.max_seq_len=256",
            "eval=none",
            "logger=none",
            "trainer.max_steps=2",
            "trainer.enable_progress_bar=false",
        ],
        tmp_path / "train",
    )
    assert run_train(train_cfg)["train/sft/global_step"] == 2

    report_cfg = compose("data-report", [f"inputs=[{curated}]", "logger=none"], tmp_path / "rep")
    report = run_data_report(report_cfg)
    assert report["report/rows"] == metrics["curate/rows_out"]
    assert (tmp_path / "rep" / "report.md").read_text().startswith("# Data report")


def test_bad_inputs_fail_with_the_fix(tmp_path, compose):
    with pytest.raises(FileNotFoundError, match="inputs entry"):
        run_curate(compose_curate(compose, tmp_path, tmp_path / "missing.jsonl"))
    raw = tmp_path / "raw.jsonl"
    raw.write_text(json.dumps({"problem": "p", "solution": "s"}) + "\n")
    with pytest.raises(ValueError, match="steps"):
        run_curate(compose_curate(compose, tmp_path, raw, "steps=[dedupe]"))
    with pytest.raises(FileNotFoundError, match="decontaminate.benchmarks.gsm8k"):
        run_curate(
            compose_curate(
                compose,
                tmp_path,
                raw,
                "report.enabled=false",
                "decontaminate.benchmarks.gsm8k=/x.jsonl",
            )
        )
