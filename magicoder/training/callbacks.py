"""Training callbacks: throughput, learning rate and gradient norm; progress lines for logs."""

from __future__ import annotations

import logging
import math
import sys
import time
from typing import Any

import lightning as L
import torch

from magicoder.progress import Progress, is_terminal

log = logging.getLogger(__name__)


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


class LogProgress(L.Callback):
    """Plain progress lines for training whose stdout is not a terminal (SLURM, nohup, CI).

    Lightning's progress bar draws only on a terminal, so a run writing to a file shows
    nothing between the start and the end of an epoch. This callback logs (``logging``, so
    the console and Hydra's run log both get it) one line when training starts, one every
    ``every_n_seconds`` seconds or every ``every_n_steps`` optimizer steps (whichever comes
    first; either may be None), and one when it ends or fails::

        train: start, 0/1200 steps, epoch=0
        train: 250/1200 (21%) 1.62 steps/s, elapsed 02:34, ETA 09:46, epoch=0, loss=0.912,
            lr=1.9e-5, tokens/s=41230
        train: done, 1200/1200 steps in 12:20 (1.62 steps/s), epoch=1, loss=0.655, ...

    ``loss`` is ``train/loss`` as the module logs it, ``tokens/s`` what :class:`TrainMetrics`
    logs (shown when it is among the callbacks) and ``lr`` the first parameter group's. The
    total is ``trainer.estimated_stepping_batches``; a resumed run starts at its global step,
    and its rate and ETA count only the steps done since. On a terminal with a progress bar
    it does nothing; only rank zero logs.

    Args:
        every_n_steps: Also log when the global step reaches a multiple of this (None: by
            time only).
        every_n_seconds: Log when this many seconds passed since the last line (None: by
            steps only).

    Raises:
        ValueError: If ``every_n_steps`` < 1 or ``every_n_seconds`` <= 0.
    """

    def __init__(
        self, every_n_steps: int | None = None, every_n_seconds: float | None = 30.0
    ) -> None:
        if every_n_steps is not None and (isinstance(every_n_steps, bool) or every_n_steps < 1):
            raise ValueError(
                f"LogProgress every_n_steps={every_n_steps!r} must be an integer >= 1 or null"
            )
        if every_n_seconds is not None and every_n_seconds <= 0:
            raise ValueError(f"LogProgress every_n_seconds={every_n_seconds!r} must be > 0 or null")
        self.every_n_steps = every_n_steps
        self.every_n_seconds = every_n_seconds
        self.desc = "train"
        """Starts each line; a multi-stage run may name the stage here ("train sft")."""
        self._progress: Progress | None = None

    def on_train_start(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        self._close()
        if not trainer.is_global_zero:
            return
        if is_terminal(sys.stdout) and trainer.progress_bar_callback is not None:
            return  # Lightning's bar shows the progress
        total = trainer.estimated_stepping_batches
        self._progress = Progress(
            desc=self.desc,
            total=total if math.isfinite(total) else None,
            initial=trainer.global_step,
            unit="steps",
            every_n=self.every_n_steps,
            every_seconds=self.every_n_seconds,
            plain=True,
            logger=log,
            postfix={"epoch": trainer.current_epoch},
        )

    def on_train_batch_end(
        self,
        trainer: L.Trainer,
        pl_module: L.LightningModule,
        outputs: Any,
        batch: Any,
        batch_idx: int,
    ) -> None:
        progress = self._progress
        if progress is None or trainer.global_step == progress.n:  # still accumulating
            return
        progress.update(trainer.global_step - progress.n, **self._fields(trainer))

    def on_train_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        self._close()  # "done, <steps> in <time>", with the last step's fields

    def on_exception(
        self, trainer: L.Trainer, pl_module: L.LightningModule, exception: BaseException
    ) -> None:
        self._close()  # "stopped at <step>"

    def _close(self) -> None:
        if self._progress is not None:
            self._progress.close()
            self._progress = None

    @staticmethod
    def _fields(trainer: L.Trainer) -> dict[str, Any]:
        """What a line shows after the counts: epoch, loss, lr, tokens/s (when known)."""
        metrics = trainer.callback_metrics
        fields: dict[str, Any] = {"epoch": trainer.current_epoch}
        if "train/loss" in metrics:
            fields["loss"] = float(metrics["train/loss"])
        if trainer.optimizers:
            fields["lr"] = float(trainer.optimizers[0].param_groups[0]["lr"])
        if "train/tokens_per_sec" in metrics:
            fields["tokens/s"] = round(float(metrics["train/tokens_per_sec"]))
        return fields
