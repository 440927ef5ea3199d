"""The global batch a user states, and the gradient accumulation that follows from it."""

from __future__ import annotations


def gradient_accumulation(global_batch: int, micro_batch: int, devices: int, nodes: int) -> int:
    """Micro-batches to accumulate per optimizer step so that each step sees ``global_batch``.

    The paper states 512 examples per step; on 2 GPUs with 2 per device that is 128
    accumulation steps, on 16 GPUs 16 (litgpt's ``gradient_accumulation_iters`` does the same).

    Args:
        global_batch: Examples (or packed sequences) per optimizer step over all devices.
        micro_batch: ``data.batch_size``, per device.
        devices: Devices per node.
        nodes: Nodes.

    Raises:
        ValueError: When ``global_batch`` is not a multiple of micro_batch × devices × nodes,
            naming the numbers and the nearest global batches that would divide.
    """
    per_step = micro_batch * devices * nodes
    if global_batch < 1 or micro_batch < 1 or devices < 1 or nodes < 1:
        raise ValueError(
            f"data.global_batch_size={global_batch}, data.batch_size={micro_batch}, "
            f"{devices} devices, {nodes} nodes: all must be >= 1"
        )
    if global_batch % per_step:
        lower = max(per_step, global_batch - global_batch % per_step)
        raise ValueError(
            f"data.global_batch_size={global_batch} is not a multiple of data.batch_size "
            f"({micro_batch}) × devices ({devices}) × nodes ({nodes}) = {per_step}; use "
            f"{lower} or {lower + per_step}, or change data.batch_size"
        )
    return global_batch // per_step
