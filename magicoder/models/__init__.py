"""Build a causal LM and its tokenizer from a ``conf/model/*.yaml`` node."""

from magicoder.models.build import HubModel, ModelSpec, TinyLlama

__all__ = ["HubModel", "ModelSpec", "TinyLlama"]
