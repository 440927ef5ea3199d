"""A Lightning callback recording a parameter at the start of every fit (stage-carryover test)."""

from __future__ import annotations

from pathlib import Path

import lightning as L
import torch


class RecordFirstParameter(L.Callback):
    """Save the model's first parameter when each fit starts, as ``<dir>/fit<N>.pt``."""

    def __init__(self, directory: str):
        self.directory = Path(directory)

    def on_fit_start(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        self.directory.mkdir(parents=True, exist_ok=True)
        n = len(list(self.directory.glob("fit*.pt")))
        name, param = next(iter(pl_module.named_parameters()))
        torch.save({"name": name, "value": param.detach().clone()}, self.directory / f"fit{n}.pt")


class RecordStart(L.Callback):
    """Save ``{name: tensor}`` of the trainable parameters when a stage starts training, as
    ``<path>/<stage>.pt`` (the stage is its checkpoint directory's name): what a stage
    inherited from the one before (the multi-stage LoRA tests)."""

    def __init__(self, path: str):
        self.path = Path(path)

    def on_train_start(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        stage = Path(trainer.checkpoint_callback.dirpath).name  # type: ignore[union-attr]
        self.path.mkdir(parents=True, exist_ok=True)
        weights = {
            name: p.detach().cpu().clone()
            for name, p in pl_module.model.named_parameters()  # type: ignore[union-attr]
            if p.requires_grad
        }
        torch.save(weights, self.path / f"{stage}.pt")
