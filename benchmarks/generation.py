"""Generation throughput against `transformers serve --continuous-batching` with the tiny model.

Runs ``magicoder-generate``'s pipeline for the same rows at ``teacher.concurrency=1`` and at a
higher concurrency (default 16) against one server, cache off, and prints rows/s and their
ratio. The tiny model never writes both sections, so every row lands in the rejects file; the
throughput is the same either way.

    python benchmarks/generation.py                      # CPU
    python benchmarks/generation.py --device cuda:0 --rows 256 --max-tokens 256
"""

from __future__ import annotations

import argparse
import logging
import os
import tempfile
import time
from pathlib import Path

from hydra import compose, initialize_config_dir
from hydra.core.global_hydra import GlobalHydra
from omegaconf import open_dict

from magicoder.config import config_dir, register_configs
from magicoder.generation.app import run_generate
from magicoder.generation.serve import TransformersServer, with_chat_template
from magicoder.models import TinyLlama


def run(base_url: str, model: str, work: Path, concurrency: int, rows: int, max_tokens: int):
    GlobalHydra.instance().clear()
    with initialize_config_dir(str(config_dir()), version_base="1.3"):
        cfg = compose(
            "generate",
            [
                "teacher=transformers-serve",
                f"teacher.base_url={base_url}",
                f"teacher.model={model}",
                f"teacher.max_tokens={max_tokens}",
                f"teacher.concurrency={concurrency}",
                f"num_rows={rows}",
                f"output_dir={work / f'c{concurrency}'}",
                "cache=false",
                "logger=none",
                "progress_bar=false",
            ],
        )
    with open_dict(cfg):
        cfg.paths.output_dir = str(work / f"run-c{concurrency}")
    start = time.perf_counter()
    metrics = run_generate(cfg)
    elapsed = time.perf_counter() - start
    assert metrics["generate/rows"] == rows, metrics
    return rows / elapsed, metrics["generate/completion_tokens"] / elapsed


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=48, help="rows per measurement")
    parser.add_argument("--max-tokens", type=int, default=64, help="teacher.max_tokens")
    parser.add_argument("--concurrency", type=int, default=16, help="the concurrent setting")
    parser.add_argument("--device", default="cpu", help="transformers serve --device")
    args = parser.parse_args()
    logging.basicConfig(level=logging.WARNING)
    register_configs()
    os.environ.setdefault("WANDB_MODE", "disabled")

    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        served = with_chat_template(TinyLlama(name="tiny").build(), work / "tiny-chat")
        server = TransformersServer(
            served, continuous_batching=True, device=args.device, log_path=work / "server.log"
        )
        with server:
            # Warm up (first request loads kernels and the paged cache).
            run(server.base_url, server.model, work / "warmup", 4, 8, args.max_tokens)
            results = {}
            for concurrency in (1, args.concurrency):
                results[concurrency] = run(
                    server.base_url, server.model, work, concurrency, args.rows, args.max_tokens
                )
    print(
        f"transformers serve --continuous-batching, tiny model, device={args.device}, "
        f"{args.rows} rows, max_tokens={args.max_tokens}"
    )
    for concurrency, (rows_s, tokens_s) in results.items():
        print(
            f"  teacher.concurrency={concurrency:>3}: {rows_s:8.2f} rows/s "
            f"({tokens_s:8.1f} completion tokens/s)"
        )
    ratio = results[args.concurrency][0] / results[1][0]
    print(f"  speed-up concurrency {args.concurrency} vs 1: {ratio:.1f}x")


if __name__ == "__main__":
    main()
