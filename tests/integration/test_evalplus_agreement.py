"""Our loading and scoring agree with EvalPlus itself on the real HumanEval+ / MBPP+ files.

The reference is evalplus's own CLI (``python -m evalplus.evaluate``) in a subprocess, pointed
at the same file through ``HUMANEVAL_OVERRIDE_PATH`` / ``MBPP_OVERRIDE_PATH`` (read when its
data modules are imported). Expected outputs are computed the way evalplus computes them
(pinned below against its ``get_groundtruth``); evalplus caches them per dataset, we per task.
"""

from __future__ import annotations

import hashlib
import json
import os
import pickle
import re
import subprocess
import sys
from pathlib import Path

import evalplus.evaluate
import pytest
from evalplus.eval._special_oracle import MBPP_OUTPUT_NOT_NONE_TASKS
from helpers import run_module

from magicoder.evaluation.benchmarks import load_benchmark
from magicoder.evaluation.harness import EvalSettings, evaluate_samples
from magicoder.evaluation.sanitizers import legacy_sanitize
from magicoder.evaluation.scoring import expected_output, pass_at_1, score

FILES = {"humaneval": "HumanEvalPlus-v0.1.10.jsonl.gz", "mbpp": "MbppPlus-v0.2.0.jsonl.gz"}
ENV_VARS = {"humaneval": "HUMANEVAL_OVERRIDE_PATH", "mbpp": "MBPP_OVERRIDE_PATH"}
# Both scorers run with generous time limits and without evalplus's 4 GiB address-space cap:
# a few canonical solutions (Mbpp/255 and Mbpp/392 build ~1 GB of data) pass or fail by how
# large the process is that evalplus forks its sandbox from -- its CLI forks from a process
# holding the whole ground truth, our spawned workers are lean -- and by how busy two cores
# are. The test compares what the programs compute, not this machine's headroom.
MIN_TIME_LIMIT, GT_TIME_LIMIT_FACTOR = 4.0, 20.0


def _planted(entry_point: str) -> dict[str, str]:
    """Clearly wrong programs, each failing in a different way."""
    return {
        "returns None": f"def {entry_point}(*args, **kwargs):\n    return None\n",
        "raises": f"def {entry_point}(*args, **kwargs):\n    raise RuntimeError('planted')\n",
        "syntax error": f"def {entry_point}(:\n    pass\n",
        "no entry point": "x = 1\n",
    }


def test_load_benchmark_reads_the_files_as_evalplus_does(data_dir: Path) -> None:
    humaneval = load_benchmark("humaneval", str(data_dir / FILES["humaneval"]))
    mbpp = load_benchmark("mbpp", str(data_dir / FILES["mbpp"]))
    assert (len(humaneval.problems), humaneval.version) == (164, "v0.1.10")
    assert (len(mbpp.problems), mbpp.version) == (378, "v0.2.0")
    assert humaneval.is_complete and mbpp.is_complete
    for benchmark in (humaneval, mbpp):
        data = (data_dir / FILES[benchmark.name]).read_bytes()
        assert benchmark.dataset_hash == hashlib.md5(data).hexdigest()  # evalplus's cache key
    assert list(humaneval.problems)[:2] == ["HumanEval/0", "HumanEval/1"]
    # MBPP+ inputs are deserialized like evalplus does (JSON lists back to tuples).
    assert mbpp.problems["Mbpp/2"]["base_input"][0] == [(3, 4, 5, 6), (5, 7, 4, 10)]

    first = load_benchmark("mbpp", str(data_dir / FILES["mbpp"]), limit=5)
    assert list(first.problems) == list(mbpp.problems)[:5]
    assert (first.n_total, first.is_complete, first.dataset_hash) == (378, False, mbpp.dataset_hash)


@pytest.mark.slow
def test_clearly_wrong_code_scores_zero(data_dir: Path) -> None:
    for name in ("humaneval", "mbpp"):
        benchmark = load_benchmark(name, str(data_dir / FILES[name]), limit=12)
        kinds = list(_planted("f"))
        samples = [
            {
                "task_id": task_id,
                "solution": _planted(problem["entry_point"])[kinds[i % len(kinds)]],
            }
            for i, (task_id, problem) in enumerate(benchmark.problems.items())
        ]
        rows = score(benchmark, samples, n_workers=2)
        assert [row["task_id"] for row in rows] == list(benchmark.problems)
        assert {row["base_status"] for row in rows} == {"fail"}
        assert pass_at_1(rows) == (0.0, 0.0)


def _evalplus_cli(name: str, samples_path: Path, data_file: Path) -> tuple[dict, str]:
    env = {**os.environ, ENV_VARS[name]: str(data_file), "NO_COLOR": "1"}
    command = [
        sys.executable,
        "-m",
        "evalplus.evaluate",
        "--dataset",
        name,
        "--samples",
        str(samples_path),
        "--parallel",
        "2",
        "--min-time-limit",
        str(MIN_TIME_LIMIT),
        "--gt-time-limit-factor",
        str(GT_TIME_LIMIT_FACTOR),
    ]
    done = subprocess.run(command, env=env, capture_output=True, text=True, timeout=900)
    assert done.returncode == 0, done.stderr[-3000:]
    results_path = samples_path.with_name(samples_path.stem + "_eval_results.json")
    return json.loads(results_path.read_text()), done.stdout


@pytest.mark.slow
@pytest.mark.parametrize("name", ["humaneval", "mbpp"])
def test_scores_match_evalplus_cli(
    name: str, data_dir: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Read by evalplus in each sandbox process; ours and the CLI's inherit it.
    monkeypatch.setenv("EVALPLUS_MAX_MEMORY_BYTES", "-1")
    data_file = data_dir / FILES[name]
    benchmark = load_benchmark(name, str(data_file))
    samples = [
        {"task_id": task_id, "solution": problem["prompt"] + problem["canonical_solution"]}
        for task_id, problem in benchmark.problems.items()
    ]
    # Plant wrong programs at a few tasks (spread over the file) to compare failures too.
    planted = {}
    for kind, index in zip(_planted("f"), (3, 50, 100, 150), strict=True):
        task_id = samples[index]["task_id"]
        samples[index]["solution"] = _planted(benchmark.problems[task_id]["entry_point"])[kind]
        planted[task_id] = kind
    samples_path = tmp_path / "samples.jsonl"
    samples_path.write_text("".join(json.dumps(sample) + "\n" for sample in samples))

    settings = EvalSettings(
        benchmarks=[name],
        sanitize={name: "none"},  # scored as written, like the CLI does
        n_workers=2,
        min_time_limit=MIN_TIME_LIMIT,
        gt_time_limit_factor=GT_TIME_LIMIT_FACTOR,
    )
    ours = evaluate_samples(benchmark, samples_path, settings, tmp_path / "results.json")
    theirs, stdout = _evalplus_cli(name, samples_path, data_file)

    our_status = {row["task_id"]: (row["base_status"], row["plus_status"]) for row in ours.rows}
    their_status = {
        task_id: (runs[0]["base_status"], runs[0]["plus_status"])
        for task_id, runs in theirs["eval"].items()
    }
    assert theirs["hash"] == benchmark.dataset_hash
    assert our_status == their_status
    for task_id in planted:
        assert our_status[task_id][0] == "fail", (task_id, planted[task_id])
    assert ours.pass_at_1 >= 95.0  # canonical solutions, bar the planted ones (and HumanEval/32)

    # evalplus prints base, then base + extra, pass@1 to three decimals.
    printed = [float(value) for value in re.findall(r"pass@1:\s*([0-9.]+)", stdout)]
    assert printed == pytest.approx([ours.pass_at_1 / 100, ours.pass_at_1_plus / 100], abs=5e-4)
    report = json.loads((tmp_path / "results.json").read_text())
    assert report["pass@1_percent"] == {name: ours.pass_at_1, f"{name}_plus": ours.pass_at_1_plus}
    assert report["n_tasks"] == len(benchmark.problems)


PAPER_FILES = {"humaneval": "HumanEvalPlus-v0.1.9.jsonl.gz", "mbpp": "MbppPlus-v0.1.0.jsonl.gz"}


@pytest.mark.slow
@pytest.mark.parametrize("name", ["humaneval", "mbpp"])
def test_paper_protocol_through_the_samples_path_matches_evalplus(
    name: str, data_dir: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """``magicoder-evaluate eval.protocol=magicoder-paper +samples.<name>=...`` on completion
    samples (canonical solutions, a few planted wrong ones) against the paper's pipeline:
    the paper's sanitizer on MBPP+ (none on HumanEval+), then evalplus's own evaluator, on the
    paper's releases (HumanEval+ v0.1.9, MBPP+ v0.1.0)."""
    monkeypatch.setenv("EVALPLUS_MAX_MEMORY_BYTES", "-1")  # see MIN_TIME_LIMIT's comment
    data_file = data_dir / PAPER_FILES[name]
    benchmark = load_benchmark(name, str(data_file))
    assert len(benchmark.problems) == {"humaneval": 164, "mbpp": 399}[name]
    completions = {
        task_id: problem["canonical_solution"] for task_id, problem in benchmark.problems.items()
    }
    planted = [list(completions)[index] for index in (3, 50, 100)]
    for task_id in planted:
        completions[task_id] = "    return None  # planted\n"
    samples_path = tmp_path / "samples.jsonl"
    samples_path.write_text(
        "".join(json.dumps({"task_id": t, "completion": c}) + "\n" for t, c in completions.items())
    )
    run_dir = tmp_path / "run"
    done = run_module(
        "magicoder.cli.evaluate",
        [
            f"eval={name}",
            "eval.protocol=magicoder-paper",
            f"eval.benchmark_dir={data_dir}",
            f"+samples.{name}={samples_path}",
            f"eval.min_time_limit={MIN_TIME_LIMIT}",
            f"eval.gt_time_limit_factor={GT_TIME_LIMIT_FACTOR}",
            "logger=csv",
            f"hydra.run.dir={run_dir}",
        ],
        tmp_path,
        timeout=1200,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    report = json.loads((run_dir / "eval" / "tiny" / name / "results.json").read_text())
    assert report["protocol"]["name"] == "magicoder-paper"
    assert report["version"] == {"humaneval": "v0.1.9", "mbpp": "v0.1.0"}[name]

    # The paper's pipeline: tools/sanitize.py on MBPP+ samples, then evalplus.evaluate.
    reference = samples_path
    if name == "mbpp":
        reference = tmp_path / "sanitized.jsonl"
        reference.write_text(
            "".join(
                json.dumps(
                    {
                        "task_id": task_id,
                        "solution": legacy_sanitize(
                            benchmark.problems[task_id]["prompt"] + "\n" + completion,
                            benchmark.problems[task_id]["entry_point"],
                        ),
                    }
                )
                + "\n"
                for task_id, completion in completions.items()
            )
        )
    theirs, _ = _evalplus_cli(name, reference, data_file)
    assert theirs["hash"] == benchmark.dataset_hash
    their_status = {
        task_id: [runs[0]["base_status"], runs[0]["plus_status"]]
        for task_id, runs in theirs["eval"].items()
    }
    our_status = {t["task_id"]: [t["base_status"], t["plus_status"]] for t in report["tasks"]}
    assert our_status == their_status
    assert [our_status[task_id][0] for task_id in planted] == ["fail"] * 3


def test_expected_outputs_are_evalplus_groundtruth_cached_per_task(
    data_dir: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # evalplus's own computation, pointed at an empty cache of its own.
    monkeypatch.setattr(evalplus.evaluate, "CACHE_DIR", str(tmp_path / "evalplus"))
    for name in ("humaneval", "mbpp"):
        benchmark = load_benchmark(name, str(data_dir / FILES[name]), limit=3)
        not_none = list(MBPP_OUTPUT_NOT_NONE_TASKS) if name == "mbpp" else []
        theirs = evalplus.evaluate.get_groundtruth(benchmark.problems, f"{name}-3", not_none)
        cache = tmp_path / "ours"
        for task_id, problem in benchmark.problems.items():
            ours = expected_output(name, benchmark.dataset_hash, problem, cache)
            # Same outputs; the times are this run's measurements of the same inputs.
            assert ours["base"] == theirs[task_id]["base"]
            assert ours["plus"] == theirs[task_id]["plus"]
            assert len(ours["plus_time"]) == len(problem["plus_input"])
        files = sorted(p.name for p in (cache / f"{name}-{benchmark.dataset_hash}").iterdir())
        assert files == sorted(t.replace("/", "_") + ".pkl" for t in benchmark.problems)
    # The outputs are stored as one pickled blob beside the times (the sandbox unpickles it).
    path = cache / f"mbpp-{benchmark.dataset_hash}" / "Mbpp_2.pkl"
    stored = pickle.loads(path.read_bytes())
    assert set(stored) == {"outputs", "base_time", "plus_time"}
    assert pickle.loads(stored["outputs"]) == {k: theirs["Mbpp/2"][k] for k in ("base", "plus")}
    # A cached task is read back, not recomputed; one written unpacked is repacked once.
    fake = {"base": ["cached"], "plus": [], "base_time": [0.5], "plus_time": []}
    path.write_bytes(pickle.dumps(fake))
    problem = benchmark.problems["Mbpp/2"]
    assert expected_output("mbpp", benchmark.dataset_hash, problem, cache) == fake
    assert isinstance(pickle.loads(path.read_bytes())["outputs"], bytes)
    assert expected_output("mbpp", benchmark.dataset_hash, problem, cache) == fake
