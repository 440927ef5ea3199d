"""The LightningModule: the training step around a Hugging Face causal LM, nothing else."""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import Any

import lightning as L
import torch
from transformers import PreTrainedModel

from magicoder.data.sft import IGNORE_INDEX

OptimizerFactory = Callable[[Iterable[torch.nn.Parameter]], torch.optim.Optimizer]
SchedulerFactory = Callable[..., Any]


class SFTModule(L.LightningModule):
    """Supervised fine-tuning of a causal LM on masked-label batches.

    Args:
        model: The model; its forward takes ``input_ids``, ``attention_mask``, ``labels``.
        optimizer: Partial optimizer taking the parameters (from ``conf/optimizer``).
        scheduler: Partial scheduler taking the optimizer and ``num_training_steps`` (from
            ``conf/scheduler``), stepped every optimizer step; None keeps the lr constant.
    """

    def __init__(
        self,
        model: PreTrainedModel,
        optimizer: OptimizerFactory,
        scheduler: SchedulerFactory | None = None,
    ):
        super().__init__()
        self.model = model
        # from_pretrained returns the model in eval mode; training needs dropout etc. active.
        self.model.train()
        self.optimizer_factory = optimizer
        self.scheduler_factory = scheduler

    def _step(self, batch: dict[str, torch.Tensor]) -> tuple[torch.Tensor, int]:
        out = self.model(
            input_ids=batch["input_ids"],
            attention_mask=batch["attention_mask"],
            labels=batch["labels"],
        )
        # Labels are shifted inside the model: the first position never carries a target.
        n_targets = int((batch["labels"][:, 1:] != IGNORE_INDEX).sum())
        return out.loss, n_targets

    def training_step(self, batch: dict[str, torch.Tensor], batch_idx: int) -> torch.Tensor:
        loss, _ = self._step(batch)
        self.log("train/loss", loss, on_step=True, prog_bar=True)
        return loss

    def validation_step(self, batch: dict[str, torch.Tensor], batch_idx: int) -> None:
        loss, n_targets = self._step(batch)
        # Weight each batch by its target tokens so val/loss is the per-token mean.
        self.log("val/loss", loss, on_epoch=True, batch_size=n_targets, sync_dist=True)

    def configure_optimizers(self) -> Any:
        optimizer = self.optimizer_factory(self.model.parameters())
        if self.scheduler_factory is None:
            return optimizer
        total = int(self.trainer.estimated_stepping_batches)
        scheduler = self.scheduler_factory(optimizer, num_training_steps=total)
        return {
            "optimizer": optimizer,
            "lr_scheduler": {"scheduler": scheduler, "interval": "step"},
        }
