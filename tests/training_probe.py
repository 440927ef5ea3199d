"""A Lightning callback recording what each rank trained: the batches it saw, its losses, which
parameters trained and were optimized, and its final trainable weights (the LoRA tests)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import lightning as L
import torch


class RecordTraining(L.Callback):
    """Write ``<path>/rank<R>.json`` and ``<path>/rank<R>.pt`` when training ends on rank R.

    The JSON holds, per training batch, its rows (``input_ids.shape[0]``), its examples (for a
    packed batch, the real tokens whose position restarts at 0; else the rows), whether it was
    packed, and the step's loss; and the model's class, attention implementation, trainable
    parameter names and the names of the parameters the optimizer updates. The ``.pt`` file
    holds ``{name: tensor}`` of the trainable parameters after the last step.
    """

    def __init__(self, path: str):
        self.path = Path(path)
        self.batches: list[dict[str, Any]] = []

    def on_train_batch_start(self, trainer, pl_module, batch, batch_idx) -> None:
        rows = int(batch["input_ids"].shape[0])
        packed = "position_ids" in batch
        if packed:
            starts = (batch["position_ids"] == 0) & (batch["attention_mask"] == 1)
            examples = int(starts.sum())
        else:
            examples = rows
        self.batches.append({"rows": rows, "examples": examples, "packed": packed})

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx) -> None:
        loss = outputs["loss"] if isinstance(outputs, dict) else outputs
        self.batches[-1]["loss"] = float(loss.detach())

    def on_train_end(self, trainer, pl_module) -> None:
        model = pl_module.model
        names = {id(p): name for name, p in model.named_parameters()}
        optimized = [
            names[id(p)]
            for optimizer in trainer.optimizers
            for group in optimizer.param_groups
            for p in group["params"]
        ]
        trainable = {
            n: p.detach().cpu().clone() for n, p in model.named_parameters() if p.requires_grad
        }
        summary = {
            "rank": trainer.global_rank,
            "world_size": trainer.world_size,
            "model_class": type(model).__name__,
            "attn_implementation": model.config._attn_implementation,
            "trainable": sorted(trainable),
            "optimized": sorted(optimized),
            "global_step": trainer.global_step,
            "batches": self.batches,
        }
        self.path.mkdir(parents=True, exist_ok=True)
        rank = trainer.global_rank
        torch.save(trainable, self.path / f"rank{rank}.pt")
        (self.path / f"rank{rank}.json").write_text(json.dumps(summary, indent=2) + "\n")
