"""A Lightning callback that simulates a crash mid-training (used by the resume test)."""

from __future__ import annotations

import lightning as L


class SimulatedCrash(RuntimeError):
    """Raised by :class:`CrashAtStep`."""


class CrashAtStep(L.Callback):
    """Raise once the trainer reaches ``step`` optimizer steps, as a killed job would stop."""

    def __init__(self, step: int):
        self.step = step

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx) -> None:
        if trainer.global_step >= self.step:
            raise SimulatedCrash(f"simulated crash at step {trainer.global_step}")
