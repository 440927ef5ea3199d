"""Eval settings, metric naming, pass@1 and input validation (no model, no subprocesses)."""

from __future__ import annotations

from pathlib import Path

import pytest

from magicoder.evaluation.benchmarks import Benchmark, load_benchmark
from magicoder.evaluation.harness import BenchmarkResult, EvalSettings
from magicoder.evaluation.scoring import pass_at_1, score


def _row(task_id: str, base: str, plus: str) -> dict:
    return {"task_id": task_id, "base_status": base, "plus_status": plus, "solution": ""}


def test_pass_at_1_counts_plus_only_when_base_passes_too() -> None:
    rows = [
        _row("t/0", "pass", "pass"),
        _row("t/1", "pass", "fail"),
        _row("t/2", "fail", "pass"),
        _row("t/3", "timeout", "timeout"),
    ]
    assert pass_at_1(rows) == (0.5, 0.25)
    with pytest.raises(ValueError):
        pass_at_1([])


def test_metrics_are_slash_namespaced_percentages() -> None:
    result = BenchmarkResult(
        benchmark="humaneval",
        version="v0.1.10",
        dataset_hash="x",
        n_tasks=4,
        pass_at_1=50.0,
        pass_at_1_plus=25.0,
        rows=[],
        samples_path=Path("samples.jsonl"),
        results_path=None,
    )
    assert result.metrics("sft") == {
        "eval/sft/humaneval/pass@1": 50.0,
        "eval/sft/humaneval_plus/pass@1": 25.0,
    }


def test_settings_default_to_the_current_evalplus_protocol() -> None:
    settings = EvalSettings()
    assert settings.protocol == "evalplus-current"
    assert settings.benchmarks == ["humaneval", "mbpp"]
    assert settings.new_tokens == 512
    assert settings.sanitizers == {"humaneval": "tree-sitter", "mbpp": "tree-sitter"}
    assert settings.spec.versions == {"humaneval": "v0.1.10", "mbpp": "v0.2.0"}
    assert (settings.min_time_limit, settings.gt_time_limit_factor) == (1.0, 4.0)
    assert EvalSettings(benchmarks=[]).benchmarks == []  # eval=none
    assert EvalSettings(benchmarks=("mbpp",)).benchmarks == ["mbpp"]
    assert settings.backend == "hf" and settings.vllm_args == {}
    assert EvalSettings(batch_size="auto").batch_size == "auto"


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"benchmarks": ["humaneval", "apps"]}, "eval.benchmarks"),
        ({"benchmarks": ["mbpp", "mbpp"]}, "twice"),
        ({"batch_size": 0}, "eval.batch_size"),
        ({"batch_size": "big"}, "eval.batch_size='big'.*'auto'"),
        ({"backend": "tgi"}, "eval.backend='tgi'"),
        ({"max_new_tokens": 0}, "eval.max_new_tokens"),
        ({"limit": 0}, "eval.limit"),
        ({"n_workers": 0}, "eval.n_workers"),
        ({"min_time_limit": 0.0}, "eval.min_time_limit"),
        ({"protocol": "paper"}, "eval.protocol='paper' is unknown.*magicoder-paper"),
        ({"sanitize": {"mbpp": "black"}}, "eval.sanitize.mbpp='black'.*tree-sitter"),
        ({"sanitize": {"apps": "none"}}, "eval.sanitize.*apps"),
        ({"device": "gpu"}, "eval.device='gpu' is not a device; use auto, cpu"),
    ],
)
def test_settings_reject_bad_values(kwargs: dict, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        EvalSettings(**kwargs)


def test_load_benchmark_names_the_setting_to_fix(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="humaneval"):
        load_benchmark("humaneval_plus")
    missing = tmp_path / "nope.jsonl.gz"
    with pytest.raises(FileNotFoundError, match="eval.mbpp_path") as info:
        load_benchmark("mbpp", path=str(missing), version="v0.1.0")
    assert str(missing) in str(info.value) and "MbppPlus-v0.1.0.jsonl.gz" in str(info.value)
    with pytest.raises(ValueError, match="eval.limit"):
        load_benchmark("mbpp", path=str(missing), limit=0)


def test_load_benchmark_rejects_a_file_of_the_other_benchmark(data_dir: Path) -> None:
    with pytest.raises(ValueError, match="eval.humaneval_path"):
        load_benchmark("humaneval", path=str(data_dir / "MbppPlus-v0.2.0.jsonl.gz"), limit=1)


def _tiny_benchmark() -> Benchmark:
    problems = {
        f"Toy/{i}": {"task_id": f"Toy/{i}", "prompt": "", "entry_point": "f"} for i in (0, 1)
    }
    return Benchmark("humaneval", problems, "hash", "v0", "toy.jsonl", n_total=2)


@pytest.mark.parametrize(
    ("samples", "message"),
    [
        ([{"task_id": "Toy/0", "solution": ""}], "no sample"),
        ([{"task_id": "Toy/0", "solution": ""}, {"task_id": "Toy/9", "solution": ""}], "Toy/9"),
        ([{"task_id": "Toy/0", "solution": ""}] * 2, "more than one"),
        ([{"task_id": "Toy/0", "solution": None}, {"task_id": "Toy/1", "solution": ""}], "string"),
    ],
)
def test_score_refuses_unknown_missing_and_duplicate_tasks(samples: list, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        score(_tiny_benchmark(), samples)


def test_paper_protocol_settings_and_files(data_dir: Path) -> None:
    settings = EvalSettings(protocol="magicoder-paper", benchmark_dir=str(data_dir))
    assert settings.new_tokens == 512
    assert settings.sanitizers == {"humaneval": "none", "mbpp": "legacy"}
    assert settings.path_for("humaneval") == str(data_dir / "HumanEvalPlus-v0.1.9.jsonl.gz")
    assert settings.path_for("mbpp") == str(data_dir / "MbppPlus-v0.1.0.jsonl.gz")
    # A configured sanitizer replaces the protocol's for that benchmark only.
    mixed = EvalSettings(protocol="magicoder-paper", sanitize={"mbpp": "tree-sitter"})
    assert mixed.sanitizers == {"humaneval": "none", "mbpp": "tree-sitter"}
    # No file of the protocol's release in benchmark_dir: evalplus finds (downloads) it.
    assert EvalSettings(benchmark_dir=str(data_dir / "nowhere")).path_for("mbpp") is None


def test_protocol_record_names_the_protocol_only_when_every_field_is_its(
    data_dir: Path,
) -> None:
    settings = EvalSettings(protocol="magicoder-paper", benchmark_dir=str(data_dir))
    mbpp = load_benchmark("mbpp", settings.path_for("mbpp"), version="v0.1.0")
    record = settings.protocol_record(mbpp)
    assert (record["name"], record["label"]) == ("magicoder-paper", "magicoder-paper")
    assert record["fields"]["version"] == "v0.1.0" and record["fields"]["n_tasks"] == 399
    assert record["fields"]["sanitizer"] == "legacy"

    shorter = EvalSettings(protocol="magicoder-paper", max_new_tokens=256)
    changed = shorter.protocol_record(mbpp)
    assert changed["name"] == "custom"
    assert changed["label"] == "magicoder-paper, max_new_tokens=256"
    assert changed["id"] != record["id"]

    # Today's release scored under the paper's protocol name is not the paper's protocol.
    current = load_benchmark("mbpp", str(data_dir / "MbppPlus-v0.2.0.jsonl.gz"), limit=5)
    other = settings.protocol_record(current)
    assert other["name"] == "custom"
    assert other["label"] == "magicoder-paper, version=v0.2.0, n_tasks=5"
