"""Training callbacks: throughput, learning rate and gradient norm."""

from __future__ import annotations

import time
from typing import Any

import lightning as L
import torch


class TrainMetrics(L.Callback):
    """Logs ``train/lr``, ``train/grad_norm``, ``train/tokens_per_sec``, ``train/tokens`` and
    ``train/pad_fraction``.

    Throughput counts non-pad tokens (the 2D attention mask every collator returns), summed
    over ranks, per second of wall time between optimizer steps, so padding never inflates
    it. The pad fraction is the share of the step's token slots (batch × length of each
    micro-batch) that hold padding, with or without packing.
    """

    def __init__(self) -> None:
        self._tokens_since_step = 0
        self._slots_since_step = 0
        self._tokens_total = 0
        self._last_step_time: float | None = None
        self._last_global_step = -1

    def on_train_start(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        # A run resumed mid-epoch gets no on_train_epoch_start for that epoch.
        self.on_train_epoch_start(trainer, pl_module)

    def on_train_epoch_start(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        self._last_step_time = time.perf_counter()
        self._last_global_step = trainer.global_step
        self._tokens_since_step = 0
        self._slots_since_step = 0

    def on_train_batch_end(
        self,
        trainer: L.Trainer,
        pl_module: L.LightningModule,
        outputs: Any,
        batch: dict[str, torch.Tensor],
        batch_idx: int,
    ) -> None:
        mask = batch["attention_mask"]
        counts = torch.stack([mask.sum(), torch.tensor(mask.numel(), device=mask.device)])
        if trainer.world_size > 1:
            counts = trainer.strategy.reduce(counts.float(), reduce_op="sum")
        tokens, slots = (int(c) for c in counts.tolist())
        self._tokens_since_step += tokens
        self._slots_since_step += slots
        if trainer.global_step == self._last_global_step:  # still accumulating
            return
        self._last_global_step = trainer.global_step
        now = time.perf_counter()
        assert self._last_step_time is not None
        elapsed = max(now - self._last_step_time, 1e-9)
        self._tokens_total += self._tokens_since_step
        pl_module.log("train/tokens_per_sec", self._tokens_since_step / elapsed, on_step=True)
        pl_module.log("train/tokens", float(self._tokens_total), on_step=True)
        pad_fraction = 1.0 - self._tokens_since_step / max(self._slots_since_step, 1)
        pl_module.log("train/pad_fraction", pad_fraction, on_step=True)
        self._tokens_since_step = 0
        self._slots_since_step = 0
        self._last_step_time = now

    def on_before_optimizer_step(
        self, trainer: L.Trainer, pl_module: L.LightningModule, optimizer: torch.optim.Optimizer
    ) -> None:
        grads = [p.grad for p in pl_module.parameters() if p.grad is not None]
        if grads:
            norm = torch.linalg.vector_norm(
                torch.stack([torch.linalg.vector_norm(g.detach().float()) for g in grads])
            )
            pl_module.log("train/grad_norm", norm, on_step=True)
        pl_module.log("train/lr", optimizer.param_groups[0]["lr"], on_step=True)

    def state_dict(self) -> dict[str, Any]:
        return {"tokens_total": self._tokens_total}

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        self._tokens_total = state_dict["tokens_total"]
