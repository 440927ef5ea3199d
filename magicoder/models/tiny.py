"""Byte-level BPE tokenizer for the tiny model, trained on the standard library's sources."""

from __future__ import annotations

import logging

from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
from transformers import PreTrainedTokenizerFast

from magicoder.data.stdlib import iter_corpus

log = logging.getLogger(__name__)

EOS_TOKEN = "<|endoftext|>"
PAD_TOKEN = "<|pad|>"


def train_tokenizer(vocab_size: int, n_files: int) -> PreTrainedTokenizerFast:
    """Train a byte-level BPE tokenizer on the first ``n_files`` standard-library files.

    Args:
        vocab_size: Target vocabulary size, special tokens included.
        n_files: Number of source files (in sorted order) to train on.

    Returns:
        A fast tokenizer with ``<|endoftext|>`` as BOS/EOS and ``<|pad|>`` for padding.
    """
    if vocab_size < 300:
        raise ValueError(
            f"model.vocab_size={vocab_size} is too small for a byte-level BPE; use at least 300"
        )
    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=vocab_size,
        special_tokens=[EOS_TOKEN, PAD_TOKEN],
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        show_progress=False,
    )
    tok.train_from_iterator(iter_corpus(n_files), trainer=trainer)
    log.info("Trained a %d-token byte-level BPE on %d stdlib files", tok.get_vocab_size(), n_files)
    return PreTrainedTokenizerFast(
        tokenizer_object=tok,
        bos_token=EOS_TOKEN,
        eos_token=EOS_TOKEN,
        pad_token=PAD_TOKEN,
        model_max_length=1 << 20,
    )
