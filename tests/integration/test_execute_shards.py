"""The SLURM-array route of ``execute``: shards as jobs of a Hydra sweep through submitit, then
the merge step, against one unsharded run.

submitit's local executor runs each job as its own process from the pickled job, the code path
``hydra/launcher=slurm`` takes on a cluster, without a scheduler.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from helpers import run_module

from magicoder.curation.app import run_curate
from magicoder.curation.execute import merge_caches
from magicoder.sandbox import bwrap_problem

pytestmark = pytest.mark.skipif(
    bwrap_problem() is not None, reason=f"needs a working bubblewrap: {bwrap_problem()}"
)


def _rows() -> list[dict]:
    rows = []
    for i in range(10):
        solution = f"```python\ndef f(x):\n    return x * {i}\n```"
        expected = 2 * i if i % 4 else -1  # every fourth row's tests fail
        tests = f"```python\nassert f(2) == {expected}, f(2)\n```"
        if i == 3:
            solution = "```python\ndef f(x):\n    while True:\n        pass\n```"
        if i == 5:
            tests = ""
        if i == 7:
            solution = "```python\ndef f(x:\n```"
        rows.append({"seed": f"seed {i}", "problem": f"Problem {i}", "lang": "python",
                     "solution": solution, "tests": tests, "index": i})  # fmt: skip
    rows.append({"seed": "s", "problem": "Rust", "lang": "rust", "solution": "fn f() {}",
                 "tests": "fn main() {}", "index": 10})  # fmt: skip
    return rows


def _funnel(run_dir: Path) -> dict:
    summary = json.loads((run_dir / "summary.json").read_text())
    return next(s for s in summary["steps"] if s["step"] == "execute")["funnel"]


@pytest.mark.slow
def test_shards_through_submitit_merge_into_the_unsharded_result(tmp_path: Path, compose):
    raw = tmp_path / "raw.jsonl"
    rows = _rows()
    raw.write_text("".join(json.dumps(row) + "\n" for row in rows))
    common = [
        f"inputs=[{raw}]",
        "logger=none",
        "report.enabled=false",
        "steps=[exact_dedup,execute]",
        "execute.sandbox=bwrap",
        "execute.timeout=1.0",
    ]
    sweep = tmp_path / "sweep"
    shards = ["-m", *common, "execute.shard=0/2,1/2", "hydra/launcher=local"]
    done = run_module("magicoder.cli.curate", [*shards, f"hydra.sweep.dir={sweep}"], tmp_path)
    assert done.returncode == 0, done.stderr[-4000:]
    assert list((sweep / ".submitit").glob("*/*_result.pkl"))  # submitit ran the jobs
    funnels = [_funnel(sweep / str(job)) for job in (0, 1)]
    assert [f["shard"] for f in funnels] == ["0/2", "1/2"]
    assert sum(f["in"] for f in funnels) == len(rows)
    assert all(f["in"] + f["other_shards"] == len(rows) and f["in"] for f in funnels)

    merged_dir, single_dir = tmp_path / "merged", tmp_path / "single"
    merge_from = f"execute.merge_from=[{sweep}/*/execute-cache.jsonl]"
    run_curate(compose("curate", [*common, merge_from], merged_dir))
    assert _funnel(merged_dir)["executed"] == 0  # every program's result came from a shard
    run_curate(compose("curate", [*common, "execute.n_workers=2"], single_dir))
    assert _funnel(single_dir)["executed"] == 9

    for name in ("curated.jsonl", "rejects.jsonl"):
        assert (merged_dir / name).read_bytes() == (single_dir / name).read_bytes(), name
    # The unsharded cache is in finishing order; sorted, it is the merged one byte for byte.
    merge_caches([single_dir / "execute-cache.jsonl"], tmp_path / "sorted.jsonl")
    merged_cache = (merged_dir / "execute-cache.jsonl").read_bytes()
    assert merged_cache == (tmp_path / "sorted.jsonl").read_bytes()
    kept = [json.loads(line)["index"] for line in (merged_dir / "curated.jsonl").open()]
    assert sorted(kept) == [1, 2, 6, 9]
    reasons = {
        r["index"]: r["reason"] for r in map(json.loads, (merged_dir / "rejects.jsonl").open())
    }
    assert reasons == {
        0: "test_failed",
        3: "timeout",
        4: "test_failed",
        5: "no_tests",
        7: "syntax",
        8: "test_failed",
        10: "no_toolchain",
    }


def test_merge_from_names_a_missing_shard(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError, match="merge_from entry .*nowhere"):
        merge_caches([tmp_path / "nowhere" / "*.jsonl"], tmp_path / "merged.jsonl")
    with pytest.raises(FileNotFoundError, match="shard-9.jsonl"):
        merge_caches([tmp_path / "shard-9.jsonl"], tmp_path / "merged.jsonl")


def test_the_slurm_launcher_submits_curate_shards_as_cpu_jobs(tmp_path: Path) -> None:
    from hydra import compose, initialize_config_dir
    from hydra.core.global_hydra import GlobalHydra
    from hydra_plugins.hydra_submitit_launcher.submitit_launcher import SlurmLauncher

    from magicoder.config import config_dir

    GlobalHydra.instance().clear()
    with initialize_config_dir(str(config_dir()), version_base="1.3"):
        cfg = compose(
            "curate",
            ["inputs=[raw.jsonl]", "execute.shard=0/8", "hydra/launcher=slurm",
             "hydra.launcher.partition=cpu", f"hydra.sweep.dir={tmp_path}"],
            return_hydra_config=True,
        )  # fmt: skip
    launcher = cfg.hydra.launcher
    assert (launcher.nodes, launcher.tasks_per_node, launcher.gpus_per_node) == (1, 1, None)
    params = {k: v for k, v in launcher.items() if k != "_target_"}
    assert isinstance(SlurmLauncher(**params), SlurmLauncher)
    # The sbatch script the launcher would submit (submitit's own writer; no scheduler here).
    from submitit.slurm.slurm import _make_sbatch_string

    sbatch = _make_sbatch_string(
        command="magicoder-curate",
        folder=tmp_path / ".submitit",
        partition=launcher.partition,
        time=launcher.timeout_min,
        nodes=launcher.nodes,
        ntasks_per_node=launcher.tasks_per_node,
        cpus_per_task=launcher.cpus_per_task,
        gpus_per_node=launcher.gpus_per_node,
    )
    assert "#SBATCH --partition=cpu" in sbatch and "#SBATCH --nodes=1" in sbatch
    assert "#SBATCH --cpus-per-task=8" in sbatch and "gpu" not in sbatch
