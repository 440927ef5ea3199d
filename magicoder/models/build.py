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
from typing import Any

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

    def load(self, packed: bool = False) -> tuple[PreTrainedModel, PreTrainedTokenizerBase]:
        """Load (or build) the model and tokenizer.

        Args:
            packed: The model will train on packed sequences: an SDPA model then gets the
                per-example attention of :func:`magicoder.data.packing.use_packed_sdpa`
                (results of calls without sequence boundaries, such as generation, do not
                change, and the choice is not saved with the model).
        """
        raise NotImplementedError

    def check(self) -> None:
        """Raise early, before any training, if the model cannot be loaded."""

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
    """

    name_or_path: str = "???"
    revision: str | None = None
    trust_remote_code: bool = False

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

    def load(self, packed: bool = False) -> tuple[PreTrainedModel, PreTrainedTokenizerBase]:
        self.check()
        kwargs: dict[str, Any] = {"revision": self.revision}
        if self.trust_remote_code:
            kwargs["trust_remote_code"] = True
        try:
            tokenizer = AutoTokenizer.from_pretrained(self.name_or_path, **kwargs)
            model = AutoModelForCausalLM.from_pretrained(
                self.name_or_path,
                dtype=_dtype(self.dtype),
                attn_implementation=self.attn_implementation,
                **kwargs,
            )
        except OSError as err:
            raise OSError(
                f"could not load model.name_or_path={self.name_or_path!r}: {err}. Offline, "
                "point model.name_or_path at a local copy (or use model=tiny)."
            ) from err
        return self._finish(model, tokenizer, packed)


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
        torch.manual_seed(self.seed)
        model = LlamaForCausalLM(config)
        # Write to a temporary sibling and rename, so a crash never leaves a half cache.
        tmp = path.with_name(path.name + f".tmp{os.getpid()}")
        model.save_pretrained(tmp)
        tokenizer.save_pretrained(tmp)
        tmp.rename(path) if not path.exists() else None
        return path

    def load(self, packed: bool = False) -> tuple[PreTrainedModel, PreTrainedTokenizerBase]:
        path = self.build()
        tokenizer: PreTrainedTokenizerBase = PreTrainedTokenizerFast.from_pretrained(path)
        model = AutoModelForCausalLM.from_pretrained(
            path, dtype=_dtype(self.dtype), attn_implementation=self.attn_implementation
        )
        return self._finish(model, tokenizer, packed)
