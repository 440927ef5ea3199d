"""Training throughput: this trainer against the paper's setup, side by side.

The paper's setup is Magicoder's ``train.py``: a Hugging Face ``Trainer`` fed by a collator
that right-pads each micro-batch to its longest example. Against it run this framework's
Lightning trainer (``SFTDataModule`` + ``SFTModule`` + ``TrainMetrics``) with plain batching,
with ``group_by_length``, and with ``packing``. All four train the same tiny model
(``TinyLlama(name="tiny")``, fp32) on the same examples (docstring → function pairs of the
first ``--max-files`` standard-library files, encoded with the Magicoder prompt), with the
same optimizer, learning rate, accumulation and global batch in examples: ``--batch-size``
examples per micro-batch, or with packing as many packed sequences as hold that many examples
on average (``--packed-rows`` sets it instead).

Measured per configuration, after ``--warmup`` optimizer steps, over ``--steps`` steps:
non-pad tokens per second (what the model actually learns from), examples per second, the
padding fraction of the token slots computed, and the peak memory of the training loop.
Each configuration runs in its own process, the configurations interleaved for ``--rounds``
rounds; the table shows medians over rounds.

    python benchmarks/train_throughput.py                  # about 4 minutes on 2 CPU cores
    python benchmarks/train_throughput.py --steps 40 --rounds 3 --out train.json
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
from pathlib import Path
from typing import Any

from _common import PeakMemory, emit, interleave, machine, markdown_table, median, run_worker

CONFIGS = ("hf-trainer", "ours", "ours-group-by-length", "ours-packing")
BASELINE = "hf-trainer"


def _examples(max_files: int, max_seq_len: int) -> tuple[Any, Any, list[dict[str, list[int]]]]:
    from magicoder.data.datamodule import encode_rows
    from magicoder.data.stdlib import stdlib_pairs
    from magicoder.models import TinyLlama

    model, tokenizer = TinyLlama(name="tiny", dtype="float32").load()
    encoded, _ = encode_rows(stdlib_pairs(max_files), tokenizer, max_seq_len)
    return model, tokenizer, encoded


def _summary(
    step_times: list[float], step_tokens: list[int], step_slots: list[int], step_examples: list[int]
) -> dict[str, float]:
    """Rates over the steps after warm-up: entry 0 is the end of the last warm-up step."""
    elapsed = step_times[-1] - step_times[0]
    tokens, slots = sum(step_tokens[1:]), sum(step_slots[1:])
    return {
        "tokens_per_s": tokens / elapsed,
        "examples_per_s": sum(step_examples[1:]) / elapsed,
        "pad_fraction": 1.0 - tokens / slots,
        "seconds": elapsed,
        "tokens": tokens,
    }


def run_hf_trainer(args: argparse.Namespace) -> dict[str, Any]:
    """Magicoder's own setup: transformers.Trainer + right-padding collator."""
    import torch
    from datasets import Dataset
    from transformers import Trainer, TrainerCallback, TrainingArguments

    from magicoder.data.sft import IGNORE_INDEX

    model, tokenizer, encoded = _examples(args.max_files, args.max_seq_len)
    pad = tokenizer.pad_token_id

    def collate(examples: list[dict[str, list[int]]]) -> dict[str, torch.Tensor]:
        # Magicoder's get_data_collator with pad_to_max_length=False (its default).
        longest = max(len(e["input_ids"]) for e in examples)
        input_ids = torch.tensor(
            [e["input_ids"] + [pad] * (longest - len(e["input_ids"])) for e in examples]
        )
        labels = torch.tensor(
            [e["labels"] + [IGNORE_INDEX] * (longest - len(e["labels"])) for e in examples]
        )
        return {"input_ids": input_ids, "labels": labels, "attention_mask": input_ids.ne(pad)}

    counts: dict[str, list[int]] = {"tokens": [0], "slots": [0], "examples": [0]}
    times: list[float] = []

    def count(_module: Any, _args: Any, kwargs: dict[str, Any]) -> None:
        # The forward's own inputs: exact even though the data loader fetches ahead.
        mask = kwargs["attention_mask"]
        counts["tokens"][-1] += int(mask.sum())
        counts["slots"][-1] += mask.numel()
        counts["examples"][-1] += mask.shape[0]

    class StepClock(TrainerCallback):
        def on_step_end(self, targs: Any, state: Any, control: Any, **kwargs: Any) -> None:
            if state.global_step >= args.warmup:
                times.append(time.perf_counter())
                for values in counts.values():
                    values.append(0)

    model.register_forward_pre_hook(count, with_kwargs=True)
    training_args = TrainingArguments(
        output_dir=str(Path(args.tmp) / "hf-trainer"),
        per_device_train_batch_size=args.batch_size,
        gradient_accumulation_steps=args.accumulate,
        max_steps=args.warmup + args.steps,
        learning_rate=args.lr,
        optim="adamw_torch",
        lr_scheduler_type="constant",
        weight_decay=0.0,
        max_grad_norm=0.0,  # the paper clips nothing (and neither does ours)
        logging_strategy="no",
        save_strategy="no",
        report_to="none",
        disable_tqdm=True,
        use_cpu=not torch.cuda.is_available(),
        dataloader_num_workers=0,
        dataloader_pin_memory=False,
        seed=0,
    )
    trainer = Trainer(
        model=model,
        args=training_args,
        train_dataset=Dataset.from_list(encoded),
        data_collator=collate,
        callbacks=[StepClock()],
    )
    with PeakMemory() as memory:
        trainer.train()
    # Counts are appended after each step's clock reading: drop the trailing empty bucket.
    result = _summary(times, counts["tokens"][:-1], counts["slots"][:-1], counts["examples"][:-1])
    return {
        **result,
        "sequences_per_micro_batch": args.batch_size,
        "examples_per_step": sum(counts["examples"][1:-1]) / args.steps,
        "peak_mib": memory.peak_mib,
        "increase_mib": memory.increase_mib,
    }


def run_ours(args: argparse.Namespace, packing: bool, group_by_length: bool) -> dict[str, Any]:
    """This framework's trainer, as ``run_train`` builds it (without saving and evaluation)."""
    from dataclasses import dataclass

    import lightning as L
    import torch

    from magicoder.data.datamodule import SFTDataModule
    from magicoder.data.sources import Source
    from magicoder.models import TinyLlama
    from magicoder.training.callbacks import TrainMetrics
    from magicoder.training.module import SFTModule

    model, tokenizer = TinyLlama(name="tiny", dtype="float32").load()

    @dataclass
    class Pairs(Source):
        def load(self) -> list[dict[str, Any]]:
            from magicoder.data.stdlib import stdlib_pairs

            return stdlib_pairs(args.max_files)

    datamodule = SFTDataModule(
        [Pairs(name="stdlib")],
        tokenizer,
        max_seq_len=args.max_seq_len,
        batch_size=args.batch_size,
        seed=0,
        packing=packing,
        group_by_length=group_by_length,
    )
    counts: dict[str, list[int]] = {"tokens": [0], "slots": [0], "examples": [0]}
    times: list[float] = []

    class StepClock(L.Callback):
        def on_train_batch_end(self, trainer: Any, module: Any, outputs: Any, batch: Any, i: int):
            mask = batch["attention_mask"]
            counts["tokens"][-1] += int(mask.sum())
            counts["slots"][-1] += mask.numel()
            if "position_ids" in batch:  # packed: each example starts at position 0
                counts["examples"][-1] += int(((batch["position_ids"] == 0) & (mask == 1)).sum())
            else:
                counts["examples"][-1] += mask.shape[0]
            if (i + 1) % args.accumulate == 0 and trainer.global_step >= args.warmup:
                times.append(time.perf_counter())
                for values in counts.values():
                    values.append(0)

    trainer = L.Trainer(
        accelerator="auto",
        devices=1,
        precision="32-true",
        max_steps=args.warmup + args.steps,
        accumulate_grad_batches=args.accumulate,
        logger=False,
        enable_checkpointing=False,
        enable_progress_bar=False,
        enable_model_summary=False,
        num_sanity_val_steps=0,
        limit_val_batches=0,
        use_distributed_sampler=False,
        callbacks=[TrainMetrics(), StepClock()],
    )
    module = SFTModule(
        model, lambda params: torch.optim.AdamW(params, lr=args.lr, weight_decay=0.0)
    )
    datamodule.setup("fit")  # tokenize and pack before the clock starts, as for the baseline
    if packing:
        assert datamodule.train_set is not None
        per_row = datamodule.stats["train"].examples / len(datamodule.train_set)
        # The same global batch in examples: as many packed rows as hold batch_size examples.
        datamodule.batch_size = args.packed_rows or max(1, round(args.batch_size / per_row))
    with PeakMemory() as memory:
        trainer.fit(module, datamodule=datamodule)
    result = _summary(times, counts["tokens"][:-1], counts["slots"][:-1], counts["examples"][:-1])
    return {
        **result,
        "sequences_per_micro_batch": datamodule.batch_size,
        "examples_per_step": sum(counts["examples"][1:-1]) / args.steps,
        "peak_mib": memory.peak_mib,
        "increase_mib": memory.increase_mib,
    }


def worker(args: argparse.Namespace) -> None:
    import logging
    import warnings

    # Every worker imports what any configuration needs, so their memory baselines match.
    import datasets  # noqa: F401
    import lightning  # noqa: F401
    import torch
    from transformers import Trainer  # noqa: F401

    import magicoder.training.module  # noqa: F401

    logging.disable(logging.WARNING)
    warnings.filterwarnings("ignore")
    if args.threads:
        torch.set_num_threads(args.threads)
    if args.worker == "hf-trainer":
        result = run_hf_trainer(args)
    else:
        result = run_ours(
            args,
            packing=args.worker == "ours-packing",
            group_by_length=args.worker == "ours-group-by-length",
        )
    emit({"config": args.worker, **result})


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument(
        "--max-files", type=int, default=300, help="stdlib files to take pairs from"
    )
    parser.add_argument("--max-seq-len", type=int, default=512, help="longest sequence")
    parser.add_argument("--batch-size", type=int, default=8, help="examples per micro-batch")
    parser.add_argument(
        "--packed-rows",
        type=int,
        default=0,
        help="packed sequences per micro-batch (0: as many as hold --batch-size examples)",
    )
    parser.add_argument(
        "--accumulate", type=int, default=1, help="micro-batches per optimizer step"
    )
    parser.add_argument("--warmup", type=int, default=2, help="optimizer steps not measured")
    parser.add_argument("--steps", type=int, default=16, help="optimizer steps measured")
    parser.add_argument("--rounds", type=int, default=2, help="interleaved repetitions")
    parser.add_argument("--lr", type=float, default=2e-3, help="AdamW learning rate")
    parser.add_argument(
        "--threads",
        type=int,
        default=1,
        help="torch threads per worker (1: steady timings on a shared machine; 0: torch's default)",
    )
    parser.add_argument("--configs", default=",".join(CONFIGS), help="comma-separated subset")
    parser.add_argument("--out", type=Path, default=None, help="also write the results as JSON")
    parser.add_argument(
        "--tmp", default=str(Path(tempfile.gettempdir()) / "magicoder-bench"), help="scratch dir"
    )
    parser.add_argument("--worker", choices=CONFIGS, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.worker:
        worker(args)
        return

    configs = [c for c in args.configs.split(",") if c]
    passthrough = [
        f"--max-files={args.max_files}",
        f"--max-seq-len={args.max_seq_len}",
        f"--batch-size={args.batch_size}",
        f"--packed-rows={args.packed_rows}",
        f"--accumulate={args.accumulate}",
        f"--warmup={args.warmup}",
        f"--steps={args.steps}",
        f"--lr={args.lr}",
        f"--threads={args.threads}",
        f"--tmp={args.tmp}",
    ]
    script = Path(__file__).resolve()
    print(
        f"Training throughput on {machine()}: tiny Llama fp32, stdlib pairs of {args.max_files} "
        f"files, max_seq_len {args.max_seq_len}, micro-batch {args.batch_size} x accumulate "
        f"{args.accumulate}, {args.steps} steps measured after {args.warmup}, {args.rounds} "
        "interleaved rounds",
        flush=True,
    )
    results = interleave(
        configs,
        args.rounds,
        lambda c: run_worker(script, [*passthrough, f"--worker={c}"], timeout_s=900),
        log=lambda line: print(line, flush=True),
    )
    base = median(results[BASELINE], "tokens_per_s") if BASELINE in results else None
    rows = []
    for config in configs:
        tps = median(results[config], "tokens_per_s")
        rows.append(
            [
                config,
                f"{tps:,.0f}",
                f"{tps / base:.2f}x" if base else "-",
                f"{median(results[config], 'examples_per_s'):.1f}",
                f"{results[config][0]['sequences_per_micro_batch']}",
                f"{median(results[config], 'examples_per_step'):.1f}",
                f"{median(results[config], 'pad_fraction'):.3f}",
                f"{median(results[config], 'increase_mib'):,.0f}",
                f"{median(results[config], 'peak_mib'):,.0f}",
            ]
        )
    header = [
        "config",
        "non-pad tokens/s",
        f"vs {BASELINE}",
        "examples/s",
        "sequences/micro-batch",
        "examples/step",
        "pad fraction",
        "peak memory increase (MiB)",
        f"peak {PeakMemory().kind} (MiB)",
    ]
    print(markdown_table(header, rows))
    if args.out:
        args.out.write_text(
            json.dumps({"args": vars(args) | {"out": str(args.out)}, "results": results}, indent=2)
        )


if __name__ == "__main__":
    main()
