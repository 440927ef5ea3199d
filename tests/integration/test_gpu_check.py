"""Tests for benchmarks/gpu_check.py: the dry run, its composed commands, MFU, the checks and
the report -- everything of the GPU check that runs without a GPU."""

from __future__ import annotations

import json
import math
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from helpers import cpu_trainer
from hydra.utils import instantiate

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT / "benchmarks"))

import gpu_check  # noqa: E402
from gpu_check import FAIL, PASS, SKIP, Check, Plan  # noqa: E402


def _plan(tmp_path: Path, devices: int = 2, attention: str = "flash_attention_2") -> Plan:
    return Plan(tmp_path / "work", devices, attention)


def test_dry_run_names_every_check_and_command(tmp_path: Path, capsys) -> None:
    assert gpu_check.main(["--dry-run", "--work-dir", str(tmp_path / "work")]) == 0
    out = capsys.readouterr().out
    for name in gpu_check.CHECKS:
        assert f"  {name}: " in out
    assert "-m magicoder.cli.train experiment=gpu-check" in out
    assert "-m magicoder.cli.evaluate" in out and "eval.backend=vllm" in out
    assert "train config composes: model small-llama" in out
    assert "precision bf16-true, strategy DDPStrategy" in out
    assert "vllm evaluate config composes" in out
    assert "flash-attn: " in out and "vllm: " in out


def test_training_command_composes_to_the_gpu_path(tmp_path: Path) -> None:
    plan = _plan(tmp_path)
    command = plan.train_command()
    assert command[:3] == [sys.executable, "-m", "magicoder.cli.train"]
    assert f"hydra.run.dir={plan.run_dir}" in command
    cfg = gpu_check.compose("train", plan.train_overrides(), plan.run_dir)
    assert cfg.model._target_ == "magicoder.models.TinyLlama"
    assert (cfg.model.name, cfg.model.dtype) == ("small-llama", "bfloat16")
    assert cfg.model.attn_implementation == "flash_attention_2"
    assert cfg.trainer.precision == "bf16-true"
    assert (cfg.trainer.accelerator, cfg.trainer.devices) == ("gpu", 2)
    assert cfg.strategy._target_ == "lightning.pytorch.strategies.DDPStrategy"
    assert cfg.data.packing is True
    assert cfg.logger._target_ == "lightning.pytorch.loggers.CSVLogger"
    assert list(cfg.eval.benchmarks) == ["humaneval"] and cfg.eval.limit == 8
    assert cfg.eval.backend == "hf"
    assert cfg.callbacks.gpu_probe._target_ == gpu_check.PROBE_TARGET
    assert 100e6 < gpu_check.spec_parameters(instantiate(cfg.model)) < 200e6

    evaluate = gpu_check.compose("evaluate", plan.vllm_overrides(cfg), plan.vllm_dir)
    assert evaluate.eval.backend == "vllm"
    assert evaluate.model.name_or_path == str(plan.run_dir / "model" / "sft")
    assert evaluate.eval.limit == cfg.eval.limit
    assert evaluate.eval.max_new_tokens == cfg.eval.max_new_tokens


def test_further_overrides_come_after_the_checks_own(tmp_path: Path) -> None:
    plan = Plan(tmp_path / "work", 1, "sdpa", extra=("trainer.max_steps=80",))
    overrides = plan.train_overrides()
    assert overrides[-2:] == ["trainer.max_steps=80", f"hydra.run.dir={plan.run_dir}"]
    assert gpu_check.compose("train", overrides, plan.run_dir).trainer.max_steps == 80


def test_cpu_smoke_command_composes_to_the_tiny_model_on_cpu(tmp_path: Path) -> None:
    plan = Plan(tmp_path / "work", 1, "sdpa", cpu_smoke=True)
    cfg = gpu_check.compose("train", plan.train_overrides(), plan.run_dir)
    assert (cfg.model.name, cfg.model.dtype) == ("tiny", "bfloat16")
    assert (cfg.trainer.accelerator, cfg.trainer.devices) == ("cpu", 1)
    assert cfg.trainer.precision == "bf16-true"
    assert cfg.strategy._target_ == "lightning.pytorch.strategies.DDPStrategy"


def test_mfu_on_a_known_input() -> None:
    # 6 × 100M parameters × 1M tokens/s = 6e14 FLOP/s, of one H100's 989e12.
    assert gpu_check.mfu(100_000_000, 1e6, 1, 989e12) == pytest.approx(6e14 / 989e12)
    assert gpu_check.mfu(100_000_000, 1e6, 2, 989e12) == pytest.approx(3e14 / 989e12)
    with pytest.raises(ValueError, match="n_gpus"):
        gpu_check.mfu(1, 1.0, 0, 989e12)


def test_peak_flops_by_device_name() -> None:
    assert gpu_check.peak_flops("NVIDIA H200")[0] == 989e12
    assert gpu_check.peak_flops("NVIDIA H100 80GB HBM3")[0] == 989e12
    assert gpu_check.peak_flops("NVIDIA H100 PCIe")[0] == 756e12
    assert gpu_check.peak_flops("NVIDIA A100-SXM4-80GB")[0] == 312e12
    flops, why = gpu_check.peak_flops("Tesla T4")
    assert flops is None and "--peak-tflops" in why
    assert gpu_check.peak_flops("Tesla T4", peak_tflops=65.0)[0] == 65e12


def test_steady_rate_leaves_out_the_first_steps() -> None:
    assert gpu_check.steady_rate([1.0] * 5 + [10.0, 20.0, 30.0]) == 20.0
    assert gpu_check.steady_rate([4.0, 6.0]) == 5.0  # too few: all of them
    assert gpu_check.steady_rate([]) is None


def test_csv_metrics_are_read_from_lightnings_csv_logger(tmp_path: Path) -> None:
    from lightning.pytorch.loggers import CSVLogger

    logger = CSVLogger(save_dir=str(tmp_path), name="csv")
    for step in range(3):
        logger.log_metrics({"train/tokens_per_sec": 100.0 * (step + 1)}, step=step)
        logger.log_metrics({"train/loss": 5.0 - step}, step=step)
    logger.log_metrics({"val/loss": 1.5}, step=3)
    logger.save()
    metrics = gpu_check.read_csv_metrics(tmp_path)
    assert metrics["train/tokens_per_sec"] == [100.0, 200.0, 300.0]
    assert metrics["train/loss"] == [5.0, 4.0, 3.0]
    assert metrics["val/loss"] == [1.5]
    assert gpu_check.read_csv_metrics(tmp_path / "nothing") == {}


def test_nvidia_smi_memory_is_parsed() -> None:
    assert gpu_check.parse_memory_used("0, 1234\n1, 56789\n") == {0: 1234.0, 1: 56789.0}
    assert gpu_check.parse_memory_used("") == {}


def _probe(rank: int = 0, **changes) -> dict:
    name = "model.model.rotary_emb.inv_freq"
    record = {
        "rank": rank,
        "world_size": 2,
        "strategy": "DDPStrategy",
        "precision": "bf16-true",
        "global_step": 40,
        "device": f"cuda:{rank}",
        "device_name": "NVIDIA H200",
        "param_dtypes": ["bfloat16"],
        "attn_implementation": "flash_attention_2",
        "batches": 40,
        "packed_batches": 40,
        "inv_freq_during_fit": {name: ["float32"]},
        "inv_freq_at_fit_end": {name: "float32"},
        "max_memory_allocated_mib": 9000.0,
        "max_memory_reserved_mib": 12000.0,
    }
    return {**record, **changes}


def test_rope_check_needs_float32_throughout() -> None:
    name = "model.model.rotary_emb.inv_freq"
    assert gpu_check.check_rope([_probe(0), _probe(1)]).status == PASS
    rounded = _probe(1, inv_freq_during_fit={name: ["bfloat16", "float32"]})
    check = gpu_check.check_rope([_probe(0), rounded])
    assert check.status == FAIL and "rank 1" in check.detail and "bfloat16" in check.detail
    at_end = _probe(0, inv_freq_at_fit_end={name: "bfloat16"})
    assert gpu_check.check_rope([at_end]).status == FAIL
    assert gpu_check.check_rope([_probe(0, inv_freq_at_fit_end={})]).status == FAIL
    assert gpu_check.check_rope([]).status == FAIL


def test_train_check(tmp_path: Path) -> None:
    probes = [_probe(0), _probe(1)]
    assert gpu_check.check_train(1, tmp_path, probes, 2, 40).status == FAIL
    assert "run_complete" in gpu_check.check_train(0, tmp_path, probes, 2, 40).detail
    (tmp_path / "run_complete").write_text("complete\n")
    passed = gpu_check.check_train(0, tmp_path, probes, 2, 40)
    assert passed.status == PASS and "DDPStrategy × 2" in passed.detail
    assert gpu_check.check_train(0, tmp_path, probes[:1], 2, 40).status == FAIL
    unpacked = [_probe(0, packed_batches=0), _probe(1)]
    assert "packed" in gpu_check.check_train(0, tmp_path, unpacked, 2, 40).detail
    fp32 = [_probe(0, param_dtypes=["float32"]), _probe(1)]
    assert "weights" in gpu_check.check_train(0, tmp_path, fp32, 2, 40).detail
    short = [_probe(0, global_step=12), _probe(1, global_step=12)]
    assert "12 steps" in gpu_check.check_train(0, tmp_path, short, 2, 40).detail


def test_loss_check() -> None:
    assert gpu_check.check_loss([8.0] * 5 + [6.0] * 5).status == PASS
    assert gpu_check.check_loss([6.0] * 5 + [8.0] * 5).status == FAIL
    assert gpu_check.check_loss([8.0] * 5 + [math.nan] * 5).status == FAIL
    assert gpu_check.check_loss([8.0, 7.0]).status == FAIL


def test_measurements_on_two_gpus(tmp_path: Path) -> None:
    plan = _plan(tmp_path)
    metrics = {"train/tokens_per_sec": [1.0] * 5 + [400_000.0, 500_000.0, 600_000.0]}
    rows, check = gpu_check.measure(
        plan,
        [_probe(0), _probe(1)],
        metrics,
        146_000_000,
        {0: 20_000.0, 1: 19_000.0},
        None,
        "flash_attn 2.8 found",
        {"train + hf eval": 95.0},
    )
    values = {row["metric"]: row["value"] for row in rows}
    assert values["devices"] == "2 × NVIDIA H200"
    assert values["tokens/s (all ranks)"] == "500,000"
    assert values["tokens/s per device"] == "250,000"
    mfu = 6 * 146e6 * 500_000 / (2 * 989e12)
    assert values["MFU"] == f"{100 * mfu:.1f}%"
    assert values["peak memory allocated (training)"] == "9,000 MiB"
    assert values["peak memory used (whole run)"] == "GPU0 20,000 MiB, GPU1 19,000 MiB"
    assert check.status == PASS and values["MFU"] in check.detail


def test_measurements_without_a_known_peak_or_a_log(tmp_path: Path) -> None:
    probes = [_probe(0, device_name="Tesla T4")]
    _, check = gpu_check.measure(
        _plan(tmp_path), probes, {"train/tokens_per_sec": [10.0]}, 1, None, None, "", {}
    )
    assert check.status == SKIP and "--peak-tflops" in check.detail
    rows, check = gpu_check.measure(_plan(tmp_path), [], {}, None, None, None, "", {})
    assert check.status == FAIL
    values = {row["metric"]: row["value"] for row in rows}
    assert values["peak memory used (whole run)"] == "n/a"


def _results(**generation) -> dict:
    return {
        "n_tasks": 8,
        "pass@1_percent": {"humaneval": 12.5, "humaneval_plus": 0.0},
        "generation": {"backend": "hf", "dtype": "bfloat16", **generation},
    }


def test_eval_check_reads_where_generation_ran() -> None:
    check = gpu_check.check_eval("eval-hf", _results(device="cuda:0"), "hf", "cuda", 8)
    assert check.status == PASS and "hf on cuda:0" in check.detail
    on_cpu = gpu_check.check_eval("eval-hf", _results(device="cpu"), "hf", "cuda", 8)
    assert on_cpu.status == FAIL and "generated on cpu" in on_cpu.detail
    unknown = gpu_check.check_eval("eval-hf", _results(), "hf", "cuda", 8)
    assert unknown.status == FAIL and "no generation.device" in unknown.detail
    assert gpu_check.check_eval("eval-hf", None, "hf", "cuda", 8).status == FAIL
    assert gpu_check.check_eval("eval-hf", _results(device="cuda:0"), "hf", "cuda", 4).status == (
        FAIL
    )
    vllm = _results(backend="vllm", device="vllm engine")
    assert gpu_check.check_eval("eval-vllm", vllm, "vllm", None, 8).status == PASS


def _report(tmp_path: Path) -> dict:
    return {
        "mode": "gpu",
        "machine": "NVIDIA H200, 16 cores",
        "work_dir": str(tmp_path / "work"),
        "commands": ["python -m magicoder.cli.train experiment=gpu-check"],
        "mfu_formula": gpu_check.MFU_FORMULA,
        "measurements": [{"metric": "tokens/s (all ranks)", "value": "1,000", "how": "median"}],
        "checks": [
            {"check": "train", "status": PASS, "detail": "ok"},
            {"check": "eval-vllm", "status": SKIP, "detail": "vllm not installed"},
            {"check": "rope-fp32", "status": FAIL, "detail": "a | b"},
        ],
    }


def test_report_renders_both_tables_the_formula_and_the_commands(tmp_path: Path) -> None:
    text = gpu_check.render(_report(tmp_path))
    assert "| metric | value | how |" in text
    assert "| tokens/s (all ranks) | 1,000 | median |" in text
    assert "| check | status | detail |" in text
    assert "| eval-vllm | SKIP | vllm not installed |" in text
    assert "| rope-fp32 | FAIL | a \\| b |" in text  # a cell cannot break the table
    assert gpu_check.MFU_FORMULA in text
    assert "python -m magicoder.cli.train experiment=gpu-check" in text
    assert gpu_check.failed(_report(tmp_path)) == ["rope-fp32"]


def test_report_is_written_as_json_markdown_and_artifacts(tmp_path: Path) -> None:
    report = _report(tmp_path)
    log = Path(report["work_dir"]) / "train" / "metrics.json"
    log.parent.mkdir(parents=True)
    log.write_text("{}")
    out = tmp_path / "out"
    gpu_check.write_report(report, out, [log, Path(report["work_dir"]) / "missing.log"])
    assert json.loads((out / "gpu_check.json").read_text())["checks"] == report["checks"]
    assert (out / "gpu_check.md").read_text() == gpu_check.render(report)
    assert (out / "artifacts" / "train" / "metrics.json").read_text() == "{}"
    assert not (out / "artifacts" / "missing.log").exists()


def test_a_command_is_logged_and_killed_at_its_timeout(tmp_path: Path) -> None:
    rc, _ = gpu_check.run_logged(
        [sys.executable, "-c", "print('hello')"], tmp_path / "a.log", timeout_s=60
    )
    assert rc == 0 and (tmp_path / "a.log").read_text() == "hello\n"
    rc, seconds = gpu_check.run_logged(
        [sys.executable, "-c", "import time; time.sleep(60)"], tmp_path / "b.log", timeout_s=1
    )
    assert rc == -9 and seconds < 30


def test_the_probe_sees_bf16_true_round_rope_unless_the_module_keeps_it(tmp_path: Path) -> None:
    """A real bf16-true fit on CPU (a Llama of a few thousand parameters): the probe records
    the rounded inv_freq of a plain module, and SFTModule's float32 buffers."""
    import lightning as L
    from torch.utils.data import DataLoader
    from transformers import LlamaConfig, LlamaForCausalLM

    from magicoder.training.module import SFTModule

    class Plain(L.LightningModule):
        def __init__(self, model: torch.nn.Module):
            super().__init__()
            self.model = model

        def training_step(self, batch, batch_idx):
            return self.model(**batch).loss

        def configure_optimizers(self):
            return torch.optim.SGD(self.parameters(), lr=0.1)

    def fit(wrap, root: Path) -> Check:
        torch.manual_seed(0)
        config = LlamaConfig(
            vocab_size=64,
            hidden_size=16,
            intermediate_size=32,
            num_hidden_layers=1,
            num_attention_heads=2,
            num_key_value_heads=2,
        )
        ids = torch.randint(0, 64, (2, 8))
        batch = {"input_ids": ids, "attention_mask": torch.ones_like(ids), "labels": ids}
        trainer = cpu_trainer(
            precision="bf16-true",
            max_steps=2,
            default_root_dir=str(root),
            callbacks=[gpu_check.GpuProbe()],
        )
        trainer.fit(
            wrap(LlamaForCausalLM(config)),
            train_dataloaders=DataLoader([batch, batch], batch_size=None),
        )
        return gpu_check.check_rope(gpu_check.read_probes(root))

    plain = fit(Plain, tmp_path / "plain")
    assert plain.status == FAIL and "bfloat16" in plain.detail
    kept = fit(lambda m: SFTModule(m, lambda p: torch.optim.SGD(p, lr=0.1)), tmp_path / "sft")
    assert kept.status == PASS
    (probe,) = gpu_check.read_probes(tmp_path / "sft")
    assert probe["param_dtypes"] == ["bfloat16"] and probe["global_step"] == 2
    assert probe["batches"] == 2 and probe["packed_batches"] == 0


@pytest.mark.slow
def test_cpu_smoke_runs_every_check_end_to_end(tmp_path: Path, tiny_cache: Path) -> None:
    """The whole check on CPU: magicoder-train in DDP (gloo, one rank) with bf16-true and
    packing, evaluation, and the table read back from the run's files."""
    out = tmp_path / "out"
    proc = subprocess.run(
        [
            sys.executable,
            str(ROOT / "benchmarks" / "gpu_check.py"),
            "--cpu-smoke",
            "--work-dir",
            str(tmp_path / "work"),
            "--out",
            str(out),
        ],
        capture_output=True,
        text=True,
        timeout=900,
        cwd=tmp_path,
        env={**os.environ, "MAGICODER_CACHE": str(tiny_cache)},
    )
    assert proc.returncode == 0, proc.stdout[-4000:] + proc.stderr[-4000:]
    report = json.loads((out / "gpu_check.json").read_text())
    statuses = {c["check"]: c["status"] for c in report["checks"]}
    assert set(statuses) == set(gpu_check.CHECKS)
    assert statuses == {
        "train": PASS,
        "loss-falls": PASS,
        "rope-fp32": PASS,
        "eval-hf": PASS,
        "eval-vllm": SKIP,  # no vllm on CPU
        "throughput": SKIP,  # no peak FLOP/s for a CPU
    }
    assert "| check | status | detail |" in proc.stdout
    assert (out / "gpu_check.md").is_file()
    assert (out / "artifacts" / "train" / "gpu_check" / "probe-rank0.json").is_file()
    assert (out / "artifacts" / "train.log").is_file()
