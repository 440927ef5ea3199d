"""Strategy builders for configs that cannot be written as a plain ``_target_`` call."""

from __future__ import annotations

import importlib
from typing import Any


def auto() -> str:
    """Lightning's automatic strategy choice."""
    return "auto"


def _import(dotted: str) -> type:
    module, _, name = dotted.rpartition(".")
    try:
        return getattr(importlib.import_module(module), name)
    except (ImportError, AttributeError) as err:
        raise ValueError(
            f"strategy.layer_classes entry {dotted!r} cannot be imported; give the dotted path "
            "of the model's decoder-layer class"
        ) from err


def fsdp(
    layer_classes: list[str],
    sharding_strategy: str = "FULL_SHARD",
    activation_checkpointing: bool = False,
    state_dict_type: str = "full",
    **kwargs: Any,
) -> Any:
    """An FSDP strategy wrapping each decoder layer (given by dotted class path) as a unit.

    The training app refuses ``state_dict_type="sharded"`` at compose time (see
    :func:`magicoder.config.validate_config`): it saves the Hugging Face model from the
    strategy's state dict, which would then hold one rank's shard.

    Raises:
        ValueError: For a ``state_dict_type`` other than ``full`` or ``sharded``, or a layer
            class that cannot be imported.
    """
    from lightning.pytorch.strategies import FSDPStrategy

    if state_dict_type not in ("full", "sharded"):
        raise ValueError(f"strategy.state_dict_type={state_dict_type!r} is not allowed: use full")
    classes = {_import(c) for c in layer_classes}
    options: dict[str, Any] = {"sharding_strategy": sharding_strategy, **kwargs}
    return FSDPStrategy(
        auto_wrap_policy=classes,
        activation_checkpointing_policy=classes if activation_checkpointing else None,
        state_dict_type="sharded" if state_dict_type == "sharded" else "full",
        **options,
    )
