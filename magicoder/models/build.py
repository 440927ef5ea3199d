"""Model specs: each ``conf/model/<name>.yaml`` instantiates one of these.

A spec is cheap to instantiate (nothing is loaded); :meth:`ModelSpec.load` does the work.
Everything model-specific lives in the YAML, so adding a base model is a config file.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, ClassVar

import torch
from transformers import (
    AutoModelForCausalLM,
    AutoTokenizer,
    LlamaConfig,
    LlamaForCausalLM,
    PreTrainedModel,
    PreTrainedTokenizerBase,
    PreTrainedTokenizerFast,
)

log = logging.getLogger(__name__)

_DTYPES = {"float32": torch.float32, "bfloat16": torch.bfloat16, "float16": torch.float16}


def _dtype(name: str) -> torch.dtype:
    if name not in _DTYPES:
        raise ValueError(f"model.dtype={name!r} is not supported; use one of {sorted(_DTYPES)}")
    return _DTYPES[name]


def ensure_pad_token(tokenizer: PreTrainedTokenizerBase, pad_token: str | None = None) -> None:
    """Give tokenizers that lack one a pad token (``pad_token`` if set, else EOS).

    Padding positions are always masked out of attention and labels, so reusing EOS is safe.
    """
    if pad_token is not None:
        tokenizer.pad_token = pad_token
    elif tokenizer.pad_token is None:
        if tokenizer.eos_token is None:
            raise ValueError(
                f"tokenizer {tokenizer.name_or_path!r} has neither a pad nor an EOS token; "
                "set model.pad_token in the model config"
            )
        tokenizer.pad_token = tokenizer.eos_token


@dataclass
class ModelSpec:
    """Fields common to every model config.

    Attributes:
        name: Short name used in run names and reports.
        dtype: Weights dtype: float32, bfloat16 or float16.
        attn_implementation: "eager", "sdpa" or "flash_attention_2".
        gradient_checkpointing: Trade compute for activation memory.
        max_position_embeddings: Longest sequence the model accepts; training refuses more.
        pad_token: Token to pad with; None keeps the tokenizer's or falls back to EOS.
    """

    name: str
    dtype: str = "float32"
    attn_implementation: str = "sdpa"
    gradient_checkpointing: bool = False
    max_position_embeddings: int | None = None
    pad_token: str | None = None

    _tokenizer_class: ClassVar[Any] = AutoTokenizer

    def load(
        self, packed: bool = False, quantization: Any = None, path: str | Path | None = None
    ) -> tuple[PreTrainedModel, PreTrainedTokenizerBase]:
        """Load (or build) the model and tokenizer.

        Args:
            packed: The model will train on packed sequences: an SDPA model then gets the
                per-example attention of :func:`magicoder.data.packing.use_packed_sdpa`
                (results of calls without sequence boundaries, such as generation, do not
                change, and the choice is not saved with the model).
            quantization: A ``transformers`` quantization config (4-bit for ``qlora``).
            path: Load the weights of this ``save_pretrained`` directory (an earlier stage's
                ``model/<stage>/``) with this spec's settings, instead of the spec's own.
        """
        raise NotImplementedError

    def check(self) -> None:
        """Raise early, before any training, if the model cannot be loaded."""

    def _from_pretrained(
        self, path: str | Path, packed: bool, quantization: Any, **kwargs: Any
    ) -> tuple[PreTrainedModel, PreTrainedTokenizerBase]:
        tokenizer = self._tokenizer_class.from_pretrained(path, **kwargs)
        if quantization is not None:
            # bitsandbytes places the 4-bit weights on the GPU as they load.
            kwargs = {**kwargs, "quantization_config": quantization, "device_map": {"": 0}}
        model = AutoModelForCausalLM.from_pretrained(
            path, dtype=_dtype(self.dtype), attn_implementation=self.attn_implementation, **kwargs
        )
        return self._finish(model, tokenizer, packed)

    def _finish(
        self, model: PreTrainedModel, tokenizer: PreTrainedTokenizerBase, packed: bool
    ) -> tuple[PreTrainedModel, PreTrainedTokenizerBase]:
        ensure_pad_token(tokenizer, self.pad_token)
        if packed and model.config._attn_implementation == "sdpa":
            from magicoder.data.packing import use_packed_sdpa

            use_packed_sdpa(model)
        model.config.pad_token_id = tokenizer.pad_token_id
        if model.generation_config is not None:
            model.generation_config.pad_token_id = tokenizer.pad_token_id
        if self.gradient_checkpointing:
            model.gradient_checkpointing_enable()
            model.config.use_cache = False
        n_params = sum(p.numel() for p in model.parameters())
        log.info("Model %s: %.2fM parameters, dtype %s", self.name, n_params / 1e6, model.dtype)
        return model, tokenizer


@dataclass
class HubModel(ModelSpec):
    """A pretrained model from the Hugging Face hub (by id) or a local directory.

    Attributes:
        name_or_path: Hub id such as ``deepseek-ai/deepseek-coder-6.7b-base`` or a local path.
        revision: Hub revision (branch, tag or commit) to pin.
        trust_remote_code: Passed to ``from_pretrained``.
        adapter_path: A LoRA adapter (a run's ``model/<stage>/adapter``, or any
            ``PeftModel.save_pretrained`` directory) merged into the weights after loading,
            so the model evaluates as the merged ``model/<stage>/`` would.
    """

    name_or_path: str = "???"
    revision: str | None = None
    trust_remote_code: bool = False
    adapter_path: str | None = None

    def _is_local(self) -> bool:
        p = self.name_or_path
        return p.startswith(("/", ".", "~")) or os.sep in p.strip("/").replace("/", "", 1)

    def check(self) -> None:
        path = Path(self.name_or_path).expanduser()
        if self._is_local() and not path.is_dir():
            raise FileNotFoundError(
                f"model directory {self.name_or_path!r} does not exist; set "
                "model.name_or_path to a directory saved with save_pretrained, or to a hub id"
            )
        adapter = self.adapter_path
        config = Path(adapter or ".").expanduser() / "adapter_config.json"
        if adapter is not None and not config.is_file():
            raise FileNotFoundError(
                f"model.adapter_path={adapter!r} holds no adapter_config.json; point it at a "
                "directory written by PeftModel.save_pretrained (a run's model/<stage>/adapter)"
            )

    def load(
        self, packed: bool = False, quantization: Any = None, path: str | Path | None = None
    ) -> tuple[PreTrainedModel, PreTrainedTokenizerBase]:
        self.check()
        kwargs: dict[str, Any] = {} if path is not None else {"revision": self.revision}
        if self.trust_remote_code:
            kwargs["trust_remote_code"] = True
        source = path if path is not None else self.name_or_path
        try:
            model, tokenizer = self._from_pretrained(source, packed, quantization, **kwargs)
        except OSError as err:
            raise OSError(
                f"could not load model.name_or_path={str(source)!r}: {err}. Offline, "
                "point model.name_or_path at a local copy (or use model=tiny)."
            ) from err
        if self.adapter_path is not None and path is None:
            from magicoder.training.finetune import merge_adapter

            log.info("Merging the adapter %s into %s", self.adapter_path, source)
            model = merge_adapter(model, Path(self.adapter_path).expanduser())
        return model, tokenizer


@dataclass
class TinyLlama(ModelSpec):
    """A small Llama initialised from config with a byte-level BPE tokenizer trained on the
    standard library's sources; both built deterministically on first use and cached.

    Attributes:
        vocab_size: BPE vocabulary size (special tokens included).
        tokenizer_files: Number of standard-library files the tokenizer is trained on.
        hidden_size, intermediate_size, num_hidden_layers, num_attention_heads,
        num_key_value_heads: Llama shape.
        seed: Seed for weight initialisation.
        cache_dir: Where the built model directory is cached.
    """

    vocab_size: int = 4096
    tokenizer_files: int = 200
    hidden_size: int = 128
    intermediate_size: int = 344
    num_hidden_layers: int = 4
    num_attention_heads: int = 4
    num_key_value_heads: int = 4
    seed: int = 0
    cache_dir: str = "~/.cache/magicoder/models"
    extra_config: dict[str, Any] = field(default_factory=dict)

    # The tokenizer trained here is a plain fast tokenizer, whatever the model's type says.
    _tokenizer_class: ClassVar[Any] = PreTrainedTokenizerFast

    def fingerprint(self) -> str:
        """Hash of everything that determines the built model."""
        keys = asdict(self)
        for k in ("name", "cache_dir", "dtype", "attn_implementation", "gradient_checkpointing"):
            keys.pop(k)
        keys["format"] = 1
        return hashlib.sha256(json.dumps(keys, sort_keys=True).encode()).hexdigest()[:12]

    @property
    def path(self) -> Path:
        """Directory of the cached model (``save_pretrained`` layout)."""
        return Path(self.cache_dir).expanduser() / f"tiny-llama-{self.fingerprint()}"

    def build(self) -> Path:
        """Build and save the model directory unless it is cached; returns its path."""
        from magicoder.models.tiny import train_tokenizer

        path = self.path
        if (path / "config.json").is_file() and (path / "tokenizer.json").is_file():
            return path
        log.info("Building tiny model at %s", path)
        tokenizer = train_tokenizer(self.vocab_size, self.tokenizer_files)
        config = LlamaConfig(
            vocab_size=len(tokenizer),
            hidden_size=self.hidden_size,
            intermediate_size=self.intermediate_size,
            num_hidden_layers=self.num_hidden_layers,
            num_attention_heads=self.num_attention_heads,
            num_key_value_heads=self.num_key_value_heads,
            max_position_embeddings=self.max_position_embeddings or 2048,
            bos_token_id=tokenizer.bos_token_id,
            eos_token_id=tokenizer.eos_token_id,
            pad_token_id=tokenizer.pad_token_id,
            tie_word_embeddings=True,
            **self.extra_config,
        )
        # A private RNG stream: building on a cold cache must not move the global one, or a
        # run's later draws (LoRA adapter init, dropout) would depend on whether it was cached.
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(self.seed)
            model = LlamaForCausalLM(config)
        # Write to a temporary sibling and rename, so a crash never leaves a half cache.
        tmp = path.with_name(path.name + f".tmp{os.getpid()}")
        model.save_pretrained(tmp)
        tokenizer.save_pretrained(tmp)
        tmp.rename(path) if not path.exists() else None
        return path

    def load(
        self, packed: bool = False, quantization: Any = None, path: str | Path | None = None
    ) -> tuple[PreTrainedModel, PreTrainedTokenizerBase]:
        return self._from_pretrained(path or self.build(), packed, quantization)
