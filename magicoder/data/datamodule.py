"""The Lightning data module of one training stage."""

from __future__ import annotations

import hashlib
import logging
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from functools import partial
from typing import Any

import lightning as L
import torch
from torch.utils.data import DataLoader, Dataset, Sampler
from transformers import PreTrainedTokenizerBase

from magicoder.data.batching import length_grouped_batch_count, length_grouped_batches
from magicoder.data.packing import collate_packed, pack_dataset
from magicoder.data.sft import IGNORE_INDEX, collate, encode_row, row_parts
from magicoder.data.sources import Source

log = logging.getLogger(__name__)


def is_validation(instruction: str, val_fraction: float) -> bool:
    """Deterministic held-out split by a hash of the instruction.

    Hashing (rather than shuffling) keeps a row on the same side of the split when the data
    grows or is reordered.
    """
    digest = hashlib.sha1(instruction.encode("utf-8")).digest()
    return int.from_bytes(digest[:8], "big") / 2**64 < val_fraction


@dataclass
class EncodeStats:
    """Counts from encoding a split, logged and returned to the caller."""

    examples: int = 0
    truncated: int = 0
    dropped_prompt_too_long: int = 0
    tokens: int = 0
    label_tokens: int = 0


def encode_rows(
    rows: Sequence[dict[str, Any]], tokenizer: PreTrainedTokenizerBase, max_seq_len: int
) -> tuple[list[dict[str, list[int]]], EncodeStats]:
    """Encode rows, dropping those whose prompt alone fills ``max_seq_len``."""
    stats = EncodeStats()
    encoded = []
    for row in rows:
        ex = encode_row(tokenizer, row, max_seq_len)
        if all(label == IGNORE_INDEX for label in ex.labels):
            stats.dropped_prompt_too_long += 1
            continue
        stats.examples += 1
        stats.truncated += ex.truncated
        stats.tokens += len(ex.input_ids)
        stats.label_tokens += sum(label != IGNORE_INDEX for label in ex.labels)
        encoded.append({"input_ids": ex.input_ids, "labels": ex.labels})
    return encoded, stats


class ListDataset(Dataset):
    """A list of encoded examples (or packed rows)."""

    def __init__(self, items: list[dict[str, list[int]]]):
        self.items = items

    def __len__(self) -> int:
        return len(self.items)

    def __getitem__(self, i: int) -> dict[str, list[int]]:
        return self.items[i]

    def lengths(self) -> list[int]:
        """Token count of each item."""
        return [len(item["input_ids"]) for item in self.items]


class ResumableSampler(Sampler[int]):
    """Seeded per-epoch shuffle, sharded over ranks, that can start mid-epoch.

    ``skip_fn`` is asked at the start of every pass how many of this rank's samples were
    already consumed in the current epoch; on a resumed run Lightning has restored that count
    by then, so training continues at the same data position instead of replaying the
    epoch's first batches.
    """

    def __init__(
        self,
        n: int,
        seed: int,
        shuffle: bool = True,
        rank: int = 0,
        world_size: int = 1,
        skip_fn: Callable[[], int] | None = None,
    ):
        self.n, self.seed, self.shuffle = n, seed, shuffle
        self.rank, self.world_size = rank, world_size
        self.skip_fn = skip_fn
        self.epoch = 0

    def set_epoch(self, epoch: int) -> None:
        """Called by Lightning before each epoch."""
        self.epoch = epoch

    def epoch_indices(self) -> list[int]:
        """This rank's indices for the current epoch, before skipping."""
        if self.shuffle:
            g = torch.Generator().manual_seed(self.seed + self.epoch)
            order = torch.randperm(self.n, generator=g).tolist()
        else:
            order = list(range(self.n))
        usable = self.n - self.n % self.world_size
        return order[self.rank : usable : self.world_size]

    def __iter__(self) -> Iterator[int]:
        skip = self.skip_fn() if self.skip_fn else 0
        return iter(self.epoch_indices()[skip:])

    def __len__(self) -> int:
        return self.n // self.world_size


class LengthGroupedBatchSampler(Sampler[list[int]]):
    """Micro-batches of similar-length items (:func:`length_grouped_batches`), resumable.

    Seeded per epoch and sharded over ranks like :class:`ResumableSampler`; ``skip_fn`` is
    asked at the start of every pass how many of this rank's *batches* were already consumed
    in the current epoch, and those are skipped.
    """

    def __init__(
        self,
        lengths: Sequence[int],
        batch_size: int,
        seed: int,
        rank: int = 0,
        world_size: int = 1,
        skip_fn: Callable[[], int] | None = None,
    ):
        self.lengths = list(lengths)
        self.batch_size, self.seed = batch_size, seed
        self.rank, self.world_size = rank, world_size
        self.skip_fn = skip_fn
        self.epoch = 0
        # Lightning calls set_epoch on `dataloader.batch_sampler.sampler`, not on the batch
        # sampler itself.
        self.sampler = self

    def set_epoch(self, epoch: int) -> None:
        """Called by Lightning before each epoch."""
        self.epoch = epoch

    def epoch_batches(self) -> list[list[int]]:
        """This rank's batches for the current epoch, before skipping."""
        return length_grouped_batches(
            self.lengths,
            self.batch_size,
            seed=self.seed,
            epoch=self.epoch,
            rank=self.rank,
            world_size=self.world_size,
        )

    def __iter__(self) -> Iterator[list[int]]:
        # A generator, so the skip is read at the first batch: Lightning creates the
        # DataLoader iterator before it restores the progress of a resumed run.
        skip = self.skip_fn() if self.skip_fn else 0
        yield from self.epoch_batches()[skip:]

    def __len__(self) -> int:
        return length_grouped_batch_count(len(self.lengths), self.batch_size, self.world_size)


class SFTDataModule(L.LightningDataModule):
    """Loads a stage's sources, splits off validation, tokenizes with label masking, and
    batches plainly, by length (``group_by_length``) or as packed sequences (``packing``).

    Args:
        sources: The stage's datasets.
        tokenizer: Tokenizer of the model being trained.
        max_seq_len: Longest sequence; longer examples are cut (and counted).
        batch_size: Micro-batch size per device.
        val_fraction: Fraction of rows held out for ``val/loss`` (0 disables validation).
        seed: Shuffle seed.
        num_workers: DataLoader workers.
        packing: Pack several examples into each sequence of up to ``max_seq_len`` tokens
            (best-fit decreasing, attention kept within each example); ``batch_size`` then
            counts packed sequences.
        group_by_length: Batch items of similar length together (batch order still shuffled)
            so less of each micro-batch is padding.
    """

    def __init__(
        self,
        sources: Sequence[Source],
        tokenizer: PreTrainedTokenizerBase,
        max_seq_len: int,
        batch_size: int,
        val_fraction: float = 0.0,
        seed: int = 0,
        num_workers: int = 0,
        packing: bool = False,
        group_by_length: bool = False,
    ):
        super().__init__()
        if not sources:
            raise ValueError("a training stage needs at least one dataset under `datasets:`")
        if max_seq_len < 8:
            raise ValueError(f"max_seq_len={max_seq_len} is too small; use at least 8")
        self.sources = list(sources)
        self.tokenizer = tokenizer
        self.max_seq_len = max_seq_len
        self.batch_size = batch_size
        self.val_fraction = val_fraction
        self.seed = seed
        self.num_workers = num_workers
        self.packing = packing
        self.group_by_length = group_by_length
        self.train_set: ListDataset | None = None
        self.val_set: ListDataset | None = None
        self.stats: dict[str, EncodeStats] = {}

    def check(self) -> None:
        """Fail before training when a source cannot be read."""
        for source in self.sources:
            source.check()

    def setup(self, stage: str | None = None) -> None:
        if self.train_set is not None:
            return
        rows: list[dict[str, Any]] = []
        for source in self.sources:
            loaded = source.load()
            log.info("Dataset %s: %d rows", source.name, len(loaded))
            rows.extend(loaded)
        held_out = [is_validation(row_parts(r)[0], self.val_fraction) for r in rows]
        train_rows = [r for r, val in zip(rows, held_out, strict=True) if not val]
        val_rows = [r for r, val in zip(rows, held_out, strict=True) if val]
        train, self.stats["train"] = encode_rows(train_rows, self.tokenizer, self.max_seq_len)
        val, self.stats["val"] = encode_rows(val_rows, self.tokenizer, self.max_seq_len)
        for split, s in self.stats.items():
            log.info(
                "%s split: %d examples, %d tokens (%d in labels), %d truncated to %d tokens, "
                "%d dropped (prompt alone exceeds max_seq_len)",
                split,
                s.examples,
                s.tokens,
                s.label_tokens,
                s.truncated,
                self.max_seq_len,
                s.dropped_prompt_too_long,
            )
        if not train:
            raise ValueError(
                f"no training example fits max_seq_len={self.max_seq_len}; raise the stage's "
                "max_seq_len or check the data"
            )
        if self.packing:
            n_train = len(train)
            train = pack_dataset(train, self.max_seq_len)
            val = pack_dataset(val, self.max_seq_len)
            per_row = n_train / len(train)
            log.info(
                "Packed %d training examples into %d sequences of up to %d tokens (%.1f%% full, "
                "%.2f examples each): a micro-batch of %d sequences holds about %.1f examples "
                "(data.batch_size=%d would keep about %d, as without packing)",
                n_train,
                len(train),
                self.max_seq_len,
                100.0 * self.stats["train"].tokens / (len(train) * self.max_seq_len),
                per_row,
                self.batch_size,
                self.batch_size * per_row,
                max(1, round(self.batch_size / per_row)),
                self.batch_size,
            )
        self.train_set, self.val_set = ListDataset(train), ListDataset(val)

    def _collate(self) -> Callable[[list[dict]], dict[str, torch.Tensor]]:
        pad_token_id = self.tokenizer.pad_token_id
        if self.packing:
            return partial(collate_packed, pad_token_id=pad_token_id)
        return partial(collate, pad_token_id=pad_token_id)

    def _batches_consumed_in_epoch(self) -> int:
        """Micro-batches of this rank already trained on in the current epoch (restored on
        resume)."""
        trainer = self.trainer
        if trainer is None:
            return 0
        return int(trainer.fit_loop.epoch_loop.batch_progress.current.ready)

    def _consumed_in_epoch(self) -> int:
        """Samples of this rank already trained on in the current epoch (restored on resume)."""
        return self._batches_consumed_in_epoch() * self.batch_size

    def train_dataloader(self) -> DataLoader:
        assert self.train_set is not None, "setup() must run first"
        trainer = self.trainer
        rank = trainer.global_rank if trainer else 0
        world_size = trainer.world_size if trainer else 1
        if self.group_by_length:
            batch_sampler = LengthGroupedBatchSampler(
                self.train_set.lengths(),
                self.batch_size,
                seed=self.seed,
                rank=rank,
                world_size=world_size,
                skip_fn=self._batches_consumed_in_epoch,
            )
            return DataLoader(
                self.train_set,
                batch_sampler=batch_sampler,
                collate_fn=self._collate(),
                num_workers=self.num_workers,
            )
        sampler = ResumableSampler(
            len(self.train_set),
            seed=self.seed,
            rank=rank,
            world_size=world_size,
            skip_fn=self._consumed_in_epoch,
        )
        return DataLoader(
            self.train_set,
            batch_size=self.batch_size,
            sampler=sampler,
            collate_fn=self._collate(),
            num_workers=self.num_workers,
        )

    def val_dataloader(self) -> DataLoader | list:
        if not self.val_set:
            return []
        trainer = self.trainer
        sampler = ResumableSampler(
            len(self.val_set),
            seed=self.seed,
            shuffle=False,
            rank=trainer.global_rank if trainer else 0,
            world_size=trainer.world_size if trainer else 1,
        )
        return DataLoader(
            self.val_set,
            batch_size=self.batch_size,
            sampler=sampler,
            collate_fn=self._collate(),
            num_workers=self.num_workers,
        )
