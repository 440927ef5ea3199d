"""Label masking, truncation and collation of SFT examples."""

from __future__ import annotations

import pytest
from tokenizers import Tokenizer, decoders, models, pre_tokenizers
from transformers import PreTrainedTokenizerFast

from magicoder.data.datamodule import encode_rows
from magicoder.data.sft import IGNORE_INDEX, collate, encode_example, encode_row
from magicoder.prompts import format_prompt


@pytest.fixture(scope="module")
def tokenizer() -> PreTrainedTokenizerFast:
    """A byte-level tokenizer with no merges: one token per byte, so counts are predictable."""
    tok = Tokenizer(
        models.BPE(
            vocab={c: i for i, c in enumerate(pre_tokenizers.ByteLevel.alphabet())}, merges=[]
        )
    )
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    tok.add_special_tokens(["<eos>", "<pad>"])
    return PreTrainedTokenizerFast(tokenizer_object=tok, eos_token="<eos>", pad_token="<pad>")


def test_prompt_tokens_are_masked_and_response_plus_eos_kept(tokenizer):
    ex = encode_example(tokenizer, "Add two numbers.", "def add(a, b):\n    return a + b", 10_000)
    n_prompt = len(format_prompt("Add two numbers.").encode())
    n_response = len(b"def add(a, b):\n    return a + b")
    assert len(ex.input_ids) == n_prompt + n_response + 1
    assert ex.labels[:n_prompt] == [IGNORE_INDEX] * n_prompt
    assert ex.labels[n_prompt:] == ex.input_ids[n_prompt:]
    assert ex.input_ids[-1] == tokenizer.eos_token_id
    assert tokenizer.decode(ex.input_ids[n_prompt:-1]) == "def add(a, b):\n    return a + b"
    assert not ex.truncated


def test_prompt_ends_with_the_response_header(tokenizer):
    ex = encode_example(tokenizer, "Say hi.", "hi", 10_000)
    n_prompt = sum(label == IGNORE_INDEX for label in ex.labels)
    assert tokenizer.decode(ex.input_ids[:n_prompt]).endswith("@@ Response\n")


def test_truncation_cuts_from_the_right_and_is_counted(tokenizer):
    n_prompt = len(format_prompt("Echo.").encode())
    ex = encode_example(tokenizer, "Echo.", "x" * 50, n_prompt + 10)
    assert ex.truncated
    assert len(ex.input_ids) == len(ex.labels) == n_prompt + 10
    assert sum(label != IGNORE_INDEX for label in ex.labels) == 10
    assert tokenizer.eos_token_id not in ex.labels  # EOS was cut with the tail


def test_encode_rows_counts_truncated_and_drops_prompt_only(tokenizer):
    n_prompt = len(format_prompt("Echo.").encode())
    rows = [
        {"instruction": "Echo.", "response": "x" * 5},  # fits
        {"instruction": "Echo.", "response": "x" * 50},  # truncated
        {"instruction": "Echo." + "y" * 100, "response": "z"},  # prompt alone too long
    ]
    encoded, stats = encode_rows(rows, tokenizer, n_prompt + 10)
    assert len(encoded) == stats.examples == 2
    assert stats.truncated == 1
    assert stats.dropped_prompt_too_long == 1
    assert stats.label_tokens == 6 + 10


def test_collate_right_pads_and_masks(tokenizer):
    batch = collate(
        [{"input_ids": [5, 6, 7], "labels": [-100, 6, 7]}, {"input_ids": [8], "labels": [8]}],
        pad_token_id=tokenizer.pad_token_id,
    )
    assert batch["input_ids"].tolist() == [
        [5, 6, 7],
        [8, tokenizer.pad_token_id, tokenizer.pad_token_id],
    ]
    assert batch["labels"].tolist() == [[-100, 6, 7], [8, -100, -100]]
    assert batch["attention_mask"].tolist() == [[1, 1, 1], [1, 0, 0]]


def test_completion_style_rows_have_no_template_and_learn_only_the_body(tokenizer):
    # The paper's comment-function baseline: code up to the docstring, then the body.
    prompt = 'def add(a, b):\n    """Add two numbers."""'
    body = "\n    return a + b"
    ex = encode_row(tokenizer, {"prompt": prompt, "completion": body}, 10_000)
    assert tokenizer.decode(ex.input_ids) == prompt + body + "<eos>"  # nothing else
    n_prompt = len(prompt.encode())
    assert ex.labels[:n_prompt] == [IGNORE_INDEX] * n_prompt
    assert ex.labels[n_prompt:] == ex.input_ids[n_prompt:]
    assert tokenizer.decode(ex.labels[n_prompt:-1]) == body
    # An instruction row through the same entry is templated.
    templated = encode_row(tokenizer, {"instruction": "Add.", "response": "x"}, 10_000)
    assert tokenizer.decode(templated.input_ids).startswith(format_prompt("Add."))
    with pytest.raises(KeyError, match="prompt/completion"):
        encode_row(tokenizer, {"text": "neither"}, 10_000)


def test_the_baseline_data_option_is_completion_style_on_the_stdlib(tmp_path, compose):
    from hydra.utils import instantiate

    cfg = compose("train", ["data=stdlib-completion-baseline"], tmp_path)
    (source_cfg,) = cfg.data.stages.sft.datasets.values()
    source = instantiate(source_cfg, max_files=5)
    rows = source.load()
    assert rows and all(set(row) >= {"prompt", "completion"} for row in rows)
    assert all('"""' in row["prompt"] or "'''" in row["prompt"] for row in rows)
    assert not any("@@ Instruction" in row["prompt"] for row in rows)
