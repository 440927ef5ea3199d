"""How a run fine-tunes: every weight (``full``), LoRA adapters (``lora``) or LoRA adapters on
4-bit NF4 base weights (``qlora``), built on ``peft`` and ``bitsandbytes``.

Each ``conf/finetune/<mode>.yaml`` instantiates :class:`Finetune`. The training app asks it
three things: which quantization the base model loads with (:meth:`Finetune.quantization`),
how to wrap the loaded model (:meth:`Finetune.wrap`), and how to turn a saved adapter into the
merged full model that ``model/<stage>/`` holds (:func:`merge_adapter`).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from transformers import PreTrainedModel

log = logging.getLogger(__name__)

MODES = ("full", "lora", "qlora")
STAGE_INITS = ("adapters", "merged")
ADAPTER_DIR = "adapter"
"""Inside ``model/<stage>/``: the stage's adapter (``PeftModel.save_pretrained``)."""


@dataclass
class Finetune:
    """Which weights train.

    Attributes:
        mode: ``full`` (every weight), ``lora`` (low-rank adapters, base frozen in the model's
            dtype) or ``qlora`` (the same adapters on a base quantized to 4-bit NF4; CUDA only).
        r: LoRA rank.
        alpha: LoRA scaling numerator (the update is scaled by ``alpha / r``).
        dropout: Dropout on the adapter's input.
        target_modules: Module names that get adapters (``[q_proj, v_proj]``), or
            ``all-linear``: every linear layer but the output head.
        modules_to_save: Modules trained in full and saved beside the adapter (e.g.
            ``[embed_tokens, lm_head]`` when tokens are added to the vocabulary).
        stage_init: From the second stage on: ``adapters`` keeps training the previous
            stage's adapters on the same base; ``merged`` starts fresh adapters on the
            previous stage's merged model.
        quant_type: 4-bit data type for ``qlora``: ``nf4`` or ``fp4``.
        double_quant: ``qlora``: quantize the quantization constants too (about 0.4 bit per
            weight less).
    """

    mode: str = "full"
    r: int = 16
    alpha: int = 32
    dropout: float = 0.05
    target_modules: list[str] | str = "all-linear"
    modules_to_save: list[str] = field(default_factory=list)
    stage_init: str = "adapters"
    quant_type: str = "nf4"
    double_quant: bool = True

    def __post_init__(self) -> None:
        if self.mode not in MODES:
            raise ValueError(f"finetune.mode={self.mode!r} is not allowed: use one of {MODES}")
        if self.stage_init not in STAGE_INITS:
            raise ValueError(
                f"finetune.stage_init={self.stage_init!r} is not allowed: use one of {STAGE_INITS}"
            )

    @property
    def uses_adapters(self) -> bool:
        """Whether the run trains adapters (``lora``, ``qlora``) rather than every weight."""
        return self.mode != "full"

    def check(self) -> None:
        """Raise before anything loads if this machine cannot run the mode.

        Raises:
            RuntimeError: ``qlora`` without a CUDA device.
            ImportError: ``qlora`` without bitsandbytes, or an adapter mode without peft.
        """
        if not self.uses_adapters:
            return
        try:
            import peft  # noqa: F401
        except ImportError as err:
            raise ImportError(
                f"finetune={self.mode} needs the peft package: pip install 'peft>=0.17,<1'"
            ) from err
        if self.mode != "qlora":
            return
        if not torch.cuda.is_available():
            raise RuntimeError(
                "finetune=qlora needs a CUDA GPU: bitsandbytes' 4-bit NF4 weights and kernels "
                "run on CUDA only, and no CUDA device is visible here. Use finetune=lora (the "
                "same adapters on a 16/32-bit base, on any device), or run on a CUDA machine."
            )
        try:
            import bitsandbytes  # noqa: F401
        except ImportError as err:
            raise ImportError(
                "finetune=qlora needs the bitsandbytes package: pip install 'magicoder[qlora]'"
            ) from err

    def quantization(self, dtype: torch.dtype) -> Any:
        """The ``quantization_config`` the base model loads with (None unless ``qlora``).

        Args:
            dtype: The model's dtype, which the 4-bit layers compute in.
        """
        if self.mode != "qlora":
            return None
        from transformers import BitsAndBytesConfig

        return BitsAndBytesConfig(
            load_in_4bit=True,
            bnb_4bit_quant_type=self.quant_type,
            bnb_4bit_use_double_quant=self.double_quant,
            bnb_4bit_compute_dtype=dtype,
        )

    def wrap(self, model: PreTrainedModel) -> torch.nn.Module:
        """Freeze ``model`` and add fresh adapters (``full``: return ``model`` unchanged).

        Gradient checkpointing recomputes blocks whose inputs come from frozen embeddings;
        with reentrant checkpointing those blocks would get no gradient, so the embeddings'
        output is made to require one.
        """
        if not self.uses_adapters:
            return model
        from peft import LoraConfig, get_peft_model, prepare_model_for_kbit_training

        # transformers 5 names it is_activation_checkpointing (the old name warns); 4.x does not.
        checkpointing = getattr(model, "is_activation_checkpointing", None)
        if checkpointing is None:
            checkpointing = getattr(model, "is_gradient_checkpointing", False)
        if self.mode == "qlora":
            model = prepare_model_for_kbit_training(model, use_gradient_checkpointing=checkpointing)
        elif checkpointing:
            model.enable_input_require_grads()
        target = self.target_modules
        config = LoraConfig(
            r=self.r,
            lora_alpha=self.alpha,
            lora_dropout=self.dropout,
            target_modules=target if isinstance(target, str) else list(target),
            modules_to_save=list(self.modules_to_save) or None,
            task_type="CAUSAL_LM",
        )
        peft_model = get_peft_model(model, config)
        trainable, total = count_parameters(peft_model)
        log.info(
            "finetune=%s: %s of %s parameters train (%.3f%%), rank %d, alpha %d, targets %s",
            self.mode,
            f"{trainable:,}",
            f"{total:,}",
            100.0 * trainable / max(total, 1),
            self.r,
            self.alpha,
            target,
        )
        return peft_model


def count_parameters(model: torch.nn.Module) -> tuple[int, int]:
    """(trainable, total) parameter counts; a 4-bit weight counts its unpacked elements."""
    trainable = total = 0
    for param in model.parameters():
        n = param.numel()
        quant_state = getattr(param, "quant_state", None)
        if quant_state is not None:  # bitsandbytes packs two 4-bit values per byte
            n = int(quant_state.shape.numel())
        total += n
        trainable += n if param.requires_grad else 0
    return trainable, total


def base_model(model: torch.nn.Module) -> PreTrainedModel:
    """The Hugging Face model inside a ``PeftModel`` (``model`` itself when not wrapped)."""
    get_base = getattr(model, "get_base_model", None)
    return get_base() if callable(get_base) else model  # type: ignore[return-value]


def save_adapter(model: torch.nn.Module, path: Path, state_dict: dict[str, Any]) -> None:
    """Save a ``PeftModel``'s adapter to ``path``, its values taken from ``state_dict``.

    Args:
        model: The ``PeftModel`` (its config names the base and the adapter's shape).
        path: Directory to write ``adapter_config.json`` and ``adapter_model.safetensors`` to.
        state_dict: The full state dict with the ``PeftModel``'s key names, as the training
            strategy gathered it (sharded strategies hold no full weights in the module).
    """
    model.save_pretrained(path, state_dict=state_dict)  # type: ignore[operator]
    log.info("Saved the adapter to %s", path)


def load_adapter_weights(model: torch.nn.Module, path: Path) -> None:
    """Load a saved adapter's weights into the ``PeftModel`` ``model`` (same shape)."""
    from peft import set_peft_model_state_dict
    from peft.utils import load_peft_weights

    result = set_peft_model_state_dict(model, load_peft_weights(str(path), device="cpu"))
    unexpected = list(getattr(result, "unexpected_keys", []))
    if unexpected:
        raise ValueError(
            f"the adapter in {path} does not match this run's finetune settings (unexpected "
            f"keys {unexpected[:3]}); resume with the finetune settings it was "
            "trained with"
        )


def merge_adapter(base: PreTrainedModel, adapter_dir: Path) -> PreTrainedModel:
    """``base`` with the adapter saved in ``adapter_dir`` merged into its weights.

    Args:
        base: The unquantized base model the adapter trained on (for ``qlora``: the same
            weights in their 16-bit form; merging into the bf16 original rather than the NF4
            copy is the usual practice, and keeps the merged model loadable anywhere).
        adapter_dir: A directory written by :func:`save_adapter`.
    """
    from peft import PeftModel

    return PeftModel.from_pretrained(base, str(adapter_dir)).merge_and_unload()
