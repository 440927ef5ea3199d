"""Learning-rate schedules with the signature ``(optimizer, num_training_steps) -> scheduler``."""

from __future__ import annotations

import torch
from transformers import get_cosine_schedule_with_warmup, get_linear_schedule_with_warmup


def _warmup(num_warmup_steps: int, warmup_ratio: float, num_training_steps: int) -> int:
    if num_warmup_steps < 0 or not 0 <= warmup_ratio < 1:
        raise ValueError(
            f"scheduler.num_warmup_steps={num_warmup_steps} / warmup_ratio={warmup_ratio} "
            "must be >= 0 and in [0, 1)"
        )
    return max(num_warmup_steps, int(warmup_ratio * num_training_steps))


def linear_warmup(
    optimizer: torch.optim.Optimizer,
    num_training_steps: int,
    num_warmup_steps: int = 0,
    warmup_ratio: float = 0.0,
) -> torch.optim.lr_scheduler.LambdaLR:
    """Linear warmup then linear decay to 0 (the paper: 15 warmup steps)."""
    warmup = _warmup(num_warmup_steps, warmup_ratio, num_training_steps)
    return get_linear_schedule_with_warmup(optimizer, warmup, num_training_steps)


def cosine(
    optimizer: torch.optim.Optimizer,
    num_training_steps: int,
    num_warmup_steps: int = 0,
    warmup_ratio: float = 0.0,
    num_cycles: float = 0.5,
) -> torch.optim.lr_scheduler.LambdaLR:
    """Linear warmup then cosine decay to 0."""
    warmup = _warmup(num_warmup_steps, warmup_ratio, num_training_steps)
    return get_cosine_schedule_with_warmup(optimizer, warmup, num_training_steps, num_cycles)
