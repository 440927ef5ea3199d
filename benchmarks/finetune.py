"""Fine-tuning modes side by side: trainable parameters, peak memory and tokens/s of ``full``
against ``lora`` (and ``qlora`` where CUDA and bitsandbytes are present).

Each mode wraps the same model exactly as a run does (:class:`magicoder.training.finetune.
Finetune`: LoRA rank 16, alpha 32, every linear layer but lm_head) and trains it with the
run's step (``SFTModule._step``, AdamW over the trainable parameters) on the same right-padded
micro-batches of docstring → function pairs from the standard library. Measured after
``--warmup`` steps over ``--steps`` steps: non-pad tokens per second, and the peak memory of
the training loop: on a GPU the CUDA allocator's peak (weights included), on the CPU the
resident set's growth over the loaded model (gradients, optimizer state and activations).
Each mode runs in its own process, the modes interleaved for ``--rounds`` rounds; the table
shows medians and each figure as a ratio against ``full``.

    python benchmarks/finetune.py                                   # tiny model, CPU, ~5 min
    python benchmarks/finetune.py --model small-llama --dtype bfloat16 --modes full,lora,qlora
    python benchmarks/finetune.py --model deepseek-ai/deepseek-coder-1.3b-base --dtype bfloat16 \\
        --max-seq-len 1024 --batch-size 4 --gradient-checkpointing   # a GPU and a real model
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import time
from pathlib import Path
from typing import Any

from _common import REPO, PeakMemory, emit, interleave, machine, markdown_table, median, run_worker

BASELINE = "full"


def _model_config(name: str) -> Any:
    """The model spec of ``conf/model/<name>.yaml``, composed as the apps compose it."""
    from hydra import compose, initialize_config_dir
    from hydra.utils import instantiate

    from magicoder.config import config_dir, register_configs

    register_configs()
    with initialize_config_dir(str(config_dir()), version_base="1.3"):
        cfg = compose("evaluate", overrides=[f"model={name}", "logger=none"])
    return instantiate(cfg.model)


def _load(args: argparse.Namespace, mode: str) -> tuple[Any, Any]:
    import torch

    from magicoder.models import HubModel
    from magicoder.training.finetune import Finetune

    if (REPO / "conf" / "model" / f"{args.model}.yaml").is_file():
        spec: Any = _model_config(args.model)
    else:
        spec = HubModel(name="bench", name_or_path=args.model)
    spec = dataclasses.replace(
        spec, dtype=args.dtype, gradient_checkpointing=args.gradient_checkpointing
    )
    finetune = Finetune(mode=mode, r=args.rank, alpha=2 * args.rank)
    finetune.check()
    model, tokenizer = spec.load(quantization=finetune.quantization(getattr(torch, args.dtype)))
    device = "cuda" if torch.cuda.is_available() else "cpu"
    if mode != "qlora":  # bitsandbytes put the 4-bit model on the GPU as it loaded
        model = model.to(device)
    return finetune.wrap(model), tokenizer


def worker(args: argparse.Namespace) -> None:
    import torch

    from magicoder.data.datamodule import encode_rows
    from magicoder.data.sft import collate
    from magicoder.data.stdlib import stdlib_pairs
    from magicoder.training.finetune import count_parameters
    from magicoder.training.module import SFTModule

    torch.manual_seed(0)
    model, tokenizer = _load(args, args.worker)
    trainable, total = count_parameters(model)
    encoded, _ = encode_rows(stdlib_pairs(args.max_files), tokenizer, args.max_seq_len)
    device = next(p.device for p in model.parameters())
    batches = [
        {
            k: v.to(device)
            for k, v in collate(encoded[i : i + args.batch_size], tokenizer.pad_token_id).items()
        }
        for i in range(0, args.batch_size * (args.warmup + args.steps), args.batch_size)
    ]
    module = SFTModule(model, lambda params: torch.optim.AdamW(params, lr=args.lr))
    optimizer = module.configure_optimizers()
    autocast = torch.autocast(
        device.type, dtype=torch.bfloat16, enabled=device.type == "cuda" and args.dtype != "float32"
    )
    times, tokens = [], []
    with PeakMemory() as memory:
        for batch in batches:
            with autocast:
                loss = module._step(batch)[0]
            loss.backward()
            optimizer.step()
            optimizer.zero_grad(set_to_none=True)
            if device.type == "cuda":
                torch.cuda.synchronize()
            times.append(time.perf_counter())
            tokens.append(int(batch["attention_mask"].sum()))
    measured = times[args.warmup - 1 :]
    emit(
        {
            "trainable": trainable,
            "total": total,
            "tokens_per_s": sum(tokens[args.warmup :]) / (measured[-1] - measured[0]),
            "peak_mib": memory.peak_mib if memory.cuda else memory.increase_mib,
            "memory_kind": "CUDA peak allocated" if memory.cuda else "RSS growth",
            "final_loss": float(loss),
        }
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--model", default="tiny", help="a conf/model name (tiny), a hub id or a model dir"
    )
    parser.add_argument("--dtype", default="float32", help="float32 | bfloat16 | float16")
    parser.add_argument("--modes", default="full,lora", help="comma-separated: full,lora,qlora")
    parser.add_argument("--rank", type=int, default=16)
    parser.add_argument("--lr", type=float, default=1e-4)
    parser.add_argument("--batch-size", type=int, default=8)
    parser.add_argument("--max-seq-len", type=int, default=512)
    parser.add_argument("--max-files", type=int, default=300)
    parser.add_argument("--steps", type=int, default=12)
    parser.add_argument("--warmup", type=int, default=2)
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--gradient-checkpointing", action="store_true")
    parser.add_argument("--timeout", type=float, default=1800)
    parser.add_argument("--out", type=Path, help="write the results as JSON here")
    parser.add_argument("--worker", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.worker:
        worker(args)
        return
    passthrough = [
        f"--{key.replace('_', '-')}={value}"
        for key, value in vars(args).items()
        if key not in ("modes", "rounds", "timeout", "out", "worker", "gradient_checkpointing")
        and value is not None
    ] + (["--gradient-checkpointing"] if args.gradient_checkpointing else [])
    modes = args.modes.split(",")
    results = interleave(
        modes,
        args.rounds,
        lambda mode: run_worker(Path(__file__), [f"--worker={mode}", *passthrough], args.timeout),
    )
    base = {key: median(results[BASELINE], key) for key in ("tokens_per_s", "peak_mib")}
    rows = []
    for mode in modes:
        first = results[mode][0]
        tps, peak = median(results[mode], "tokens_per_s"), median(results[mode], "peak_mib")
        rows.append(
            [
                mode,
                f"{first['trainable']:,} ({100 * first['trainable'] / first['total']:.2f}%)",
                f"{peak:,.0f} ({peak / base['peak_mib']:.2f}x)",
                f"{tps:,.0f} ({tps / base['tokens_per_s']:.2f}x)",
            ]
        )
    kind = results[modes[0]][0]["memory_kind"]
    print(f"\n{args.model}, {args.dtype}, batch {args.batch_size} × {args.max_seq_len} tokens")
    print(machine())
    header = ["mode", "trainable parameters", f"peak memory, MiB ({kind})", "non-pad tokens/s"]
    print(markdown_table(header, rows))
    if args.out:
        args.out.write_text(json.dumps({"args": vars(args) | {"out": str(args.out)}, **results}))


if __name__ == "__main__":
    main()
