"""The LightningModule: the training step around a Hugging Face causal LM, nothing else."""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import Any

import lightning as L
import torch
import torch.nn.functional as F
from transformers import PreTrainedModel

from magicoder.data.packing import packed_model_inputs
from magicoder.data.sft import IGNORE_INDEX

OptimizerFactory = Callable[[Iterable[torch.nn.Parameter]], torch.optim.Optimizer]
SchedulerFactory = Callable[..., Any]


def causal_lm_loss(logits: torch.Tensor, labels: torch.Tensor) -> tuple[torch.Tensor, int]:
    """Mean next-token cross-entropy over the target tokens of a micro-batch.

    Position ``t`` predicts ``labels[t + 1]``; positions whose next label is ``IGNORE_INDEX``
    (prompt, padding, the first token of a packed example) carry no loss. The mean is taken
    over every target token of the micro-batch at once, so a packed micro-batch and the same
    examples unpadded give the same loss and gradients.

    Args:
        logits: (batch, length, vocab).
        labels: (batch, length), aligned with the inputs (not shifted).

    Returns:
        The loss (0 with no target, keeping the graph) and the number of target tokens.
    """
    # Shift the labels rather than the logits: slicing the logits would copy all of them.
    targets = F.pad(labels[:, 1:], (0, 1), value=IGNORE_INDEX).reshape(-1)
    n_targets = int((targets != IGNORE_INDEX).sum())
    flat_logits = logits.reshape(-1, logits.shape[-1]).float()
    total = F.cross_entropy(flat_logits, targets, ignore_index=IGNORE_INDEX, reduction="sum")
    return total / max(n_targets, 1), n_targets


class SFTModule(L.LightningModule):
    """Supervised fine-tuning of a causal LM on masked-label batches.

    Batches come from :func:`magicoder.data.sft.collate` (padded examples) or
    :func:`magicoder.data.packing.collate_packed` (packed rows, recognised by their
    ``position_ids``); either way the loss is :func:`causal_lm_loss`, the per-token mean over
    the micro-batch's target tokens. How packed examples are kept apart follows the model's
    attention implementation, chosen when the model loads (``ModelSpec.load(packed=True)``).

    Args:
        model: A Hugging Face causal LM.
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
        # With adapters (finetune=lora|qlora) the frozen base weights stay out of the
        # checkpoint: they come back from the base model, not from last.ckpt.
        self._trainable = {f"model.{n}" for n, p in model.named_parameters() if p.requires_grad}
        self._frozen_base = len(self._trainable) < sum(1 for _ in model.parameters())
        self.strict_loading = not self._frozen_base
        # Float32 buffers (RoPE's inverse frequencies) as loaded, restored after the
        # precision plugin casts the whole module (see on_fit_start).
        self._fp32_buffers = {
            name: buffer.detach().clone()
            for name, buffer in model.named_buffers()
            if buffer.dtype == torch.float32
        }

    def on_fit_start(self) -> None:
        """Put float32 buffers back to float32 once the strategy has set the module up.

        ``precision=bf16-true`` (or 16-true) casts the module with ``.to(dtype)``, buffers
        included, while ``from_pretrained(dtype=...)`` keeps RoPE's ``inv_freq`` in float32
        (transformers #25681): rounded to bf16, the rotary angle at position p is off by up
        to p × 2⁻⁹ × inv_freq, over a radian at CodeLlama's positions beyond 1,000, and the
        saved model (the buffer is not saved) would run with other angles than it trained
        with. The values restored are the ones the model was handed over with.
        """
        for name, original in self._fp32_buffers.items():
            owner_name, _, attr = name.rpartition(".")
            owner = self.model.get_submodule(owner_name)
            current = getattr(owner, attr)
            if current.dtype != torch.float32:
                setattr(owner, attr, original.to(current.device))

    def _step(self, batch: dict[str, torch.Tensor]) -> tuple[torch.Tensor, int]:
        if "position_ids" in batch:
            inputs, labels = packed_model_inputs(
                batch, self.model.config._attn_implementation, self.model.dtype
            )
        else:
            inputs = {"input_ids": batch["input_ids"], "attention_mask": batch["attention_mask"]}
            labels = batch["labels"]
        out = self.model(**inputs, use_cache=False)
        return causal_lm_loss(out.logits, labels)

    def training_step(self, batch: dict[str, torch.Tensor], batch_idx: int) -> torch.Tensor:
        loss, _ = self._step(batch)
        self.log("train/loss", loss, on_step=True, prog_bar=True)
        return loss

    def validation_step(self, batch: dict[str, torch.Tensor], batch_idx: int) -> None:
        loss, n_targets = self._step(batch)
        # Weight each batch by its target tokens so val/loss is the per-token mean.
        self.log("val/loss", loss, on_epoch=True, batch_size=n_targets, sync_dist=True)

    def on_train_batch_end(self, outputs: Any, batch: Any, batch_idx: int) -> None:
        """Have the stage's last optimizer step validated, so its final ``val/loss`` is final.

        Lightning validates by itself every ``val_check_interval`` batches and at an epoch's
        end, so a stage that stops at ``max_steps`` mid-epoch would otherwise report the loss
        of an earlier validation, or none. Asking the trainer to stop at the step where
        training ends anyway makes its loop validate there (a stop request is one of the
        conditions its epoch loop validates on); a step that validates on schedule is not
        validated twice.
        """
        trainer = self.trainer
        last_step = 0 < trainer.max_steps <= trainer.global_step
        last_epoch = 0 < (trainer.max_epochs or 0) <= trainer.current_epoch + 1
        if last_step or (last_epoch and trainer.is_last_batch):
            trainer.should_stop = True

    def on_save_checkpoint(self, checkpoint: dict[str, Any]) -> None:
        """Keep only the trained weights in the checkpoint when the base is frozen."""
        if self._frozen_base:
            state = checkpoint["state_dict"]
            checkpoint["state_dict"] = {k: v for k, v in state.items() if k in self._trainable}

    def on_load_checkpoint(self, checkpoint: dict[str, Any]) -> None:
        """Refuse a checkpoint whose trained weights are not this module's (other adapter
        settings, or a full fine-tuning checkpoint resumed with adapters, or the reverse)."""
        if not self._frozen_base:
            return
        saved = set(checkpoint["state_dict"])
        if saved != self._trainable:
            odd = sorted(saved ^ self._trainable)[:3]
            raise ValueError(
                f"the checkpoint's trained weights do not match this run's (e.g. {odd}): "
                "resume with the finetune settings the checkpoint was trained with"
            )

    def configure_optimizers(self) -> Any:
        # Frozen weights (the base under LoRA) get no optimizer state.
        optimizer = self.optimizer_factory([p for p in self.model.parameters() if p.requires_grad])
        if self.scheduler_factory is None:
            return optimizer
        total = int(self.trainer.estimated_stepping_batches)
        scheduler = self.scheduler_factory(optimizer, num_training_steps=total)
        return {
            "optimizer": optimizer,
            "lr_scheduler": {"scheduler": scheduler, "interval": "step"},
        }
