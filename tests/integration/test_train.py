"""Training end to end on the tiny model: overfitting, the full run, resume, bad input."""

from __future__ import annotations

import csv
import json
import sys
from pathlib import Path

import pytest
import torch
from hydra.utils import instantiate
from safetensors.torch import load_file

from magicoder.data.datamodule import encode_rows
from magicoder.data.sft import collate
from magicoder.data.stdlib import stdlib_pairs
from magicoder.models import TinyLlama
from magicoder.prompts import MAGICODER_PROMPT
from magicoder.tracking.wandb_runs import read_run
from magicoder.training.app import run_train
from magicoder.training.module import SFTModule

QUICK = [
    "experiment=smoke",
    "trainer.max_steps=6",
    "callbacks.model_checkpoint.every_n_train_steps=2",
    "trainer.enable_progress_bar=false",
]


def test_tiny_model_is_built_deterministically_and_loads_back(tmp_path: Path):
    a = TinyLlama(name="tiny", cache_dir=str(tmp_path / "a"), vocab_size=512, tokenizer_files=5)
    b = TinyLlama(name="tiny", cache_dir=str(tmp_path / "b"), vocab_size=512, tokenizer_files=5)
    model_a, tok_a = a.load()
    model_b, tok_b = b.load()
    assert (a.path / "model.safetensors").is_file() and (a.path / "tokenizer.json").is_file()
    assert tok_a.get_vocab() == tok_b.get_vocab()
    assert len(tok_a) == model_a.config.vocab_size == 512
    for (name, pa), pb in zip(
        model_a.state_dict().items(), model_b.state_dict().values(), strict=True
    ):
        assert torch.equal(pa, pb), name
    assert tok_a.pad_token_id is not None and tok_a.eos_token_id is not None
    c = TinyLlama(
        name="tiny", cache_dir=str(tmp_path / "a"), vocab_size=512, tokenizer_files=5, seed=1
    )
    assert c.path != a.path  # the fingerprint covers every field that changes the model


@pytest.mark.slow
def test_tiny_model_overfits_a_batch(tmp_path: Path):
    model, tokenizer = TinyLlama(name="tiny").load()
    rows = stdlib_pairs(max_files=10)[:4]
    encoded, _ = encode_rows(rows, tokenizer, 256)
    batch = collate(encoded, tokenizer.pad_token_id)
    module = SFTModule(model, lambda params: torch.optim.AdamW(params, lr=3e-3))
    optimizer = module.optimizer_factory(module.model.parameters())
    losses = []
    for _ in range(40):
        loss = module._step(batch)[0]
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        losses.append(loss.item())
    assert losses[-1] < 0.5 * losses[0], losses


@pytest.mark.slow
def test_run_train_end_to_end_logs_to_wandb_offline(tmp_path: Path, compose, data_dir):
    cfg = compose(
        "train",
        [*QUICK, "eval.limit=3", "eval.max_new_tokens=24", "eval.batch_size=3"],
        tmp_path / "run",
    )
    metrics = run_train(cfg)
    run = tmp_path / "run"

    for bench in ("humaneval", "mbpp"):
        samples = (run / "eval" / "sft" / bench / "samples.jsonl").read_text().splitlines()
        assert len(samples) == 3
        assert set(json.loads(samples[0])) == {"task_id", "solution"}
        results = json.loads((run / "eval" / "sft" / bench / "results.json").read_text())
        assert len(results["tasks"]) == 3
        # The logged metric is the share of tasks results.json says passed.
        passed = sum(t["base_status"] == "pass" for t in results["tasks"])
        assert metrics[f"eval/sft/{bench}/pass@1"] == pytest.approx(100.0 * passed / 3)
        assert metrics[f"eval/sft/{bench}/pass@1"] == results["pass@1_percent"][bench]
    assert (run / "model" / "sft" / "config.json").is_file()
    assert (run / "model" / "sft" / "tokenizer.json").is_file()
    card = json.loads((run / "model" / "sft" / "magicoder_run.json").read_text())
    assert card["prompt_template"] == MAGICODER_PROMPT
    assert card["config"]["optimizer"]["lr"] == cfg.optimizer.lr
    assert (run / "checkpoints" / "sft" / "last.ckpt").is_file()
    assert metrics["train/sft/global_step"] == 6
    on_disk = json.loads((run / "metrics.json").read_text())
    provenance = on_disk.pop("provenance")
    assert on_disk == pytest.approx(metrics)
    assert set(provenance["protocols"]) == {"eval/sft/humaneval", "eval/sft/mbpp"}

    wandb_run = read_run(run)
    assert wandb_run.config["optimizer"]["lr"] == cfg.optimizer.lr
    assert wandb_run.config["data"]["name"] == "stdlib-pairs"
    losses = [row["train/loss"] for row in wandb_run.history if "train/loss" in row]
    assert losses and all(loss > 0 for loss in losses)
    assert any("train/tokens_per_sec" in row for row in wandb_run.history)
    assert any("train/grad_norm" in row for row in wandb_run.history)
    assert any("train/lr" in row for row in wandb_run.history)
    # Six steps end mid-epoch, before any scheduled validation: the stage's last step is
    # validated all the same, so the final val/loss is the trained model's.
    validated = [row for row in wandb_run.history if "val/loss" in row]
    last_train_step = max(r["trainer/global_step"] for r in wandb_run.history if "train/loss" in r)
    assert [row["trainer/global_step"] for row in validated] == [last_train_step]
    assert metrics["val/sft/final_loss"] == pytest.approx(validated[-1]["val/loss"])
    for key in ("eval/sft/humaneval/pass@1", "eval/sft/mbpp_plus/pass@1"):
        assert wandb_run.summary[key] == pytest.approx(metrics[key])
        assert any(row.get(key) == pytest.approx(metrics[key]) for row in wandb_run.history)


@pytest.mark.slow
@pytest.mark.parametrize("batching", ["plain", "packing", "group_by_length"])
def test_resume_continues_global_step_and_data_position(tmp_path: Path, compose, batching: str):
    modes = {
        "plain": ["data.packing=false"],
        "packing": ["data.packing=true"],
        "group_by_length": ["data.packing=false", "data.group_by_length=true"],
    }
    base = [*QUICK, "eval=none", "logger=csv", *modes[batching]]
    straight = compose("train", base, tmp_path / "straight")
    run_train(straight)

    crashed = compose(
        "train",
        [*base, "+callbacks.crash._target_=crash_callback.CrashAtStep", "+callbacks.crash.step=3"],
        tmp_path / "crashed",
    )
    with pytest.raises(Exception, match="simulated crash"):
        run_train(crashed)
    ckpt = torch.load(tmp_path / "crashed/checkpoints/sft/last.ckpt", weights_only=False)
    assert ckpt["global_step"] == 2

    resumed = compose("train", [*base, f"ckpt_path={tmp_path / 'crashed'}"], tmp_path / "resumed")
    metrics = run_train(resumed)
    assert metrics["train/sft/global_step"] == 6
    # Same data order and optimizer state after the restart: the weights match the run that
    # never stopped, for plain, packed and length-grouped batches alike.
    a = load_file(tmp_path / "straight/model/sft/model.safetensors")
    b = load_file(tmp_path / "crashed/model/sft/model.safetensors")
    for name in a:
        torch.testing.assert_close(a[name], b[name], rtol=1e-5, atol=1e-6)
    if batching != "plain":
        # Both cut the padding that plain batching wastes (about 45% on these pairs).
        pad = _logged(tmp_path / "straight", "train/pad_fraction")
        assert pad and all(0.0 <= f < 0.25 for f in pad) and sum(pad) / len(pad) < 0.15, pad


def _logged(run: Path, key: str) -> list[float]:
    """Values of ``key`` in a run's CSV logs."""
    with (run / "csv" / "version_0" / "metrics.csv").open() as f:
        return [float(row[key]) for row in csv.DictReader(f) if row.get(key)]


def test_missing_benchmark_file_fails_before_training(tmp_path: Path, compose):
    cfg = compose("train", [*QUICK, "eval.humaneval_path=/nonexistent/he.jsonl.gz"], tmp_path)
    with pytest.raises(FileNotFoundError, match=r"eval\.humaneval_path"):
        run_train(cfg)
    assert not (tmp_path / "checkpoints").exists()


def test_vllm_backend_without_vllm_fails_before_training(tmp_path: Path, compose, monkeypatch):
    monkeypatch.setitem(sys.modules, "vllm", None)  # as on a machine without vllm
    cfg = compose("train", [*QUICK, "eval.backend=vllm"], tmp_path)
    with pytest.raises(ImportError, match=r"eval\.backend=vllm needs the vllm package"):
        run_train(cfg)
    assert not (tmp_path / "checkpoints").exists()


def test_missing_dataset_file_fails_before_training(tmp_path: Path, compose):
    cfg = compose("train", ["data=jsonl", "data.path=/nonexistent/rows.jsonl"], tmp_path)
    with pytest.raises(FileNotFoundError, match=r"data\.path"):
        run_train(cfg)
    assert not (tmp_path / "checkpoints").exists()


def test_missing_model_dir_fails_before_training(tmp_path: Path, compose):
    cfg = compose(
        "train",
        [*QUICK, "model=local", "model.name_or_path=/nonexistent/model", "recipe=paper"],
        tmp_path,
    )
    with pytest.raises(FileNotFoundError, match=r"model\.name_or_path"):
        run_train(cfg)


def test_trains_on_a_local_jsonl_with_bad_rows_skipped(tmp_path: Path, compose, caplog):
    rows = [
        {"instruction": f"Return {n}.", "response": f"def f():\n    return {n}\n"}
        for n in range(40)
    ]
    rows += [{"instruction": "no response"}, {"text": "neither"}]
    path = tmp_path / "rows.jsonl"
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    cfg = compose(
        "train",
        [
            "data=jsonl",
            f"data.path={path}",
            "data.stages.sft.max_seq_len=128",
            "eval=none",
            "logger=none",
            "trainer.max_steps=2",
            "trainer.enable_progress_bar=false",
        ],
        tmp_path / "run",
    )
    metrics = run_train(cfg)
    assert metrics["train/sft/global_step"] == 2
    assert "skipped 2 rows" in caplog.text
    spec = instantiate(cfg.model)
    assert spec.name == "tiny"


def test_dataset_override_without_a_source_class_is_an_error(tmp_path: Path, compose):
    cfg = compose("train", [*QUICK, "data=jsonl", "data.path=/tmp/x.jsonl"], tmp_path)
    with pytest.raises(ValueError, match=r"datasets\.stdlib has no _target_"):
        run_train(cfg)


def test_trains_on_the_papers_comment_function_pairs_from_seed_documents(tmp_path: Path, compose):
    body = "\n".join(f"    x = x + {i}" for i in range(6))
    documents = [
        {
            "content": f"def f{n}(x):\n    '''Add {n}.'''\n{body}\n    return x + {n}\n",
            "seed": f"def f{n}(x):\n",
            "lang": "python",
        }
        for n in range(12)
    ]
    documents += [
        {"content": f"// Get {n}.\nint g{n}() {{\n  return {n};\n}}\n", "seed": "", "lang": "cpp"}
        for n in range(12)
    ]
    path = tmp_path / "seed-documents.jsonl"
    path.write_text("".join(json.dumps(d) + "\n" for d in documents))
    paper = compose(
        "train",
        ["experiment=paper-recipe", "model=codellama-7b-python", "data=comment-function-75k"],
        tmp_path,
    )
    assert paper.data.stages["comment-function"].max_seq_len == 1024
    assert (paper.trainer.max_epochs, paper.data.global_batch_size) == (2, 512)
    cfg = compose(
        "train",
        [
            "data=comment-function-75k",
            f"data.path={path}",
            "data.stages.comment-function.datasets.pairs.n=20",
            "data.stages.comment-function.max_seq_len=128",
            "data.num_workers=0",
            "eval=none",
            "logger=none",
            "trainer.max_steps=2",
            "trainer.enable_progress_bar=false",
        ],
        tmp_path / "run",
    )
    rows = instantiate(cfg.data.stages["comment-function"].datasets.pairs).load()
    assert len(rows) == 20 and [r["lang"] for r in rows[:12]] == ["python"] * 12  # covered first
    metrics = run_train(cfg)
    assert metrics["train/comment-function/global_step"] == 2
