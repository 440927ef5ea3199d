"""A Lightning callback that simulates a crash mid-training (used by the resume tests)."""

from __future__ import annotations

from pathlib import Path

import lightning as L


class SimulatedCrash(RuntimeError):
    """Raised by :class:`CrashAtStep`."""


class CrashAtStep(L.Callback):
    """Raise once the trainer reaches ``step`` optimizer steps, as a killed job would stop.

    Args:
        step: Optimizer steps after which to raise.
        stage: Raise only while this stage trains (its checkpoints go to
            ``checkpoints/<stage>``); None raises in whichever stage gets there first.
    """

    def __init__(self, step: int, stage: str | None = None):
        self.step = step
        self.stage = stage

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx) -> None:
        if self.stage is not None:
            dirpath = getattr(trainer.checkpoint_callback, "dirpath", None)
            if dirpath is None or Path(dirpath).name != self.stage:
                return
        if trainer.global_step >= self.step:
            raise SimulatedCrash(f"simulated crash at step {trainer.global_step}")
