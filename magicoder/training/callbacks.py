"""Training callbacks: throughput, learning rate and gradient norm; progress lines for logs."""

from __future__ import annotations

import logging
import math
import sys
import time
from collections.abc import Iterable
from typing import Any

import lightning as L
import torch

from magicoder.progress import Progress, is_terminal

log = logging.getLogger(__name__)


def _is_deepspeed(strategy: Any) -> bool:
    from lightning.pytorch.strategies import DeepSpeedStrategy

    return isinstance(strategy, DeepSpeedStrategy)


def _grads_are_sharded(strategy: Any) -> bool:
    """Whether each rank holds only a shard of the gradients (plain tensors, not DTensors).

    True for Lightning's FSDPStrategy (torch FSDP1) under every sharding strategy but
    NO_SHARD: after backward each rank's ``p.grad`` is a 1-D view of its slice of the
    reduce-scattered flat gradient (None where a weight lies wholly on another rank). Under
    DDP, NO_SHARD and a single device the gradients are all-reduced, whole on every rank.
    """
    from lightning.pytorch.strategies import FSDPStrategy

    if not isinstance(strategy, FSDPStrategy):
        return False
    sharding = strategy.sharding_strategy
    return getattr(sharding, "name", str(sharding)) != "NO_SHARD"


def _shard_replicas(strategy: Any) -> int:
    """How many ranks hold each gradient shard under a sharded FSDP strategy.

    One, except under hybrid sharding: it shards within each shard group (a node) and
    replicates across them, so a sum over every rank counts each shard once per group.
    """
    sharding = strategy.sharding_strategy
    if getattr(sharding, "name", str(sharding)) not in ("HYBRID_SHARD", "_HYBRID_SHARD_ZERO2"):
        return 1
    group = getattr(strategy.model, "process_group", None)  # the root FSDP unit's shard group
    return torch.distributed.get_world_size() // torch.distributed.get_world_size(group)


def global_grad_norm(
    parameters: Iterable[torch.nn.Parameter], strategy: Any
) -> torch.Tensor | None:
    """The L2 norm of the whole model's gradient, the same on every rank.

    - DDP, a single device, FSDP's NO_SHARD: gradients are whole on every rank (all-reduced
      before this is called), so the local norm is the global one.
    - FSDP with a sharded strategy (:func:`_grads_are_sharded`): each rank's sum of squares
      over its shard, summed over ranks with ``strategy.reduce`` (every rank takes part,
      even one whose shard holds no gradient), divided by :func:`_shard_replicas`.
    - DTensor gradients (Lightning's ModelParallelStrategy: FSDP2, tensor parallelism):
      ``torch.nn.utils.get_total_norm``, whose DTensor result knows its own sharding and
      replication, made whole with ``full_tensor()``.
    - DeepSpeed: None, since ``p.grad`` does not hold ZeRO's gradients (see
      :class:`TrainMetrics` for where its norm comes from).

    Args:
        parameters: The module's parameters (after backward, before the optimizer step).
        strategy: ``trainer.strategy``.

    Returns:
        A float32 scalar tensor, or None when no parameter has a gradient (or DeepSpeed).
    """
    if _is_deepspeed(strategy):
        return None
    grads = [p.grad.detach() for p in parameters if p.grad is not None]
    if torch.distributed.is_available():
        from torch.distributed.tensor import DTensor

        if any(isinstance(g, DTensor) for g in grads):
            norm = torch.nn.utils.get_total_norm([g.float() for g in grads])
            return norm.full_tensor() if isinstance(norm, DTensor) else norm
    if _grads_are_sharded(strategy):
        device = grads[0].device if grads else strategy.root_device
        squares = torch.zeros((), dtype=torch.float32, device=device)
        for g in grads:
            squares += torch.linalg.vector_norm(g, dtype=torch.float32).square()
        total = strategy.reduce(squares, reduce_op="sum") / _shard_replicas(strategy)
        return total.sqrt()
    if not grads:
        return None
    return torch.linalg.vector_norm(
        torch.stack([torch.linalg.vector_norm(g, dtype=torch.float32) for g in grads])
    )


class TrainMetrics(L.Callback):
    """Logs ``train/lr``, ``train/grad_norm``, ``train/tokens_per_sec``, ``train/tokens`` and
    ``train/pad_fraction``.

    Throughput counts non-pad tokens (the 2D attention mask every collator returns), summed
    over ranks, per second of wall time between optimizer steps, so padding never inflates
    it. The pad fraction is the share of the step's token slots (batch × length of each
    micro-batch) that hold padding, with or without packing.

    ``train/grad_norm`` is the L2 norm of the whole model's gradient, the same number on
    every rank, before any clipping (see :func:`global_grad_norm`). Under DeepSpeed the
    gradients live in ZeRO's partitions, not in ``p.grad``, and the engine computes their
    global norm only inside its ``step()``, after ``on_before_optimizer_step`` (at that hook
    ``get_global_grad_norm()`` still holds the previous step's norm, or None); the norm is
    therefore read from the engine after the step, in ``on_train_batch_end``, once per step
    the engine applies.
    """

    def __init__(self) -> None:
        self._tokens_since_step = 0
        self._slots_since_step = 0
        self._tokens_total = 0
        self._last_step_time: float | None = None
        self._last_global_step = -1
        self._deepspeed_steps: int | None = None

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
        if _is_deepspeed(trainer.strategy):
            self._log_deepspeed_grad_norm(trainer, pl_module)
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
        norm = global_grad_norm(pl_module.parameters(), trainer.strategy)
        if norm is not None:
            pl_module.log("train/grad_norm", norm, on_step=True)
        pl_module.log("train/lr", optimizer.param_groups[0]["lr"], on_step=True)

    def _log_deepspeed_grad_norm(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        """Log the global norm DeepSpeed computed in the step it last applied, once per step.

        Lightning calls the engine's ``step()`` on every micro-batch (DeepSpeed accumulates
        itself); the engine counts in ``global_steps`` the steps it applied, and sets the
        norm returned by ``get_global_grad_norm()`` in each of them.
        """
        strategy: Any = trainer.strategy  # a DeepSpeedStrategy
        engine = strategy.deepspeed_engine
        steps = getattr(engine, "global_steps", None)
        if steps is None or steps == self._deepspeed_steps:
            return
        self._deepspeed_steps = steps
        norm = engine.get_global_grad_norm()
        if norm is not None:
            pl_module.log("train/grad_norm", float(norm), on_step=True)

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
