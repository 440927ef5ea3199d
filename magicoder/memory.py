"""Hand memory back between phases of one process (training stages, evaluation engines)."""

from __future__ import annotations

import gc

import torch


def release_memory() -> None:
    """Collect unreachable objects (trainers and engines sit in reference cycles) and hand the
    accelerator's cached blocks back to the driver."""
    gc.collect()
    if torch.cuda.is_available():
        torch.cuda.empty_cache()
