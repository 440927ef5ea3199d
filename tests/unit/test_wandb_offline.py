"""Tests for magicoder.tracking.wandb_offline: read real offline W&B runs back from disk."""

from __future__ import annotations

import math
import re
import shutil
import struct
import zlib
from pathlib import Path

import pytest

from magicoder.tracking.wandb_offline import (
    OfflineRun,
    find_offline_runs,
    iter_records,
    read_offline_run,
)

BLOCK = 32 * 1024
FILE_HEADER = b":W&B" + struct.pack("<HB", 0xBEE1, 0)

CONFIG = {
    "seed": 7,
    "model": {"name": "tiny-coder", "lr": 1e-4, "betas": [0.9, 0.95]},
    "data": {"sources": ["oss-instruct", "evol"], "max_len": 1024},
    # > 32 KiB: its run record must be split into FIRST/MIDDLE/LAST chunks across blocks.
    "blob": "x" * 100_000,
}
LATE_CONFIG = {"late": {"flag": True}}
# step -> metrics logged at that step.
LOGGED = {
    0: {"train/loss": 2.5, "train/lr": 1e-4},
    5: {"train/loss": 1.75, "train/lr": 9e-5, "eval": {"acc": 0.25}},
    10: {"train/loss": 1.0, "train/lr": 8e-5, "note": "done"},
}
PASS_AT_1 = 12.5


def _make_offline_run(root: Path) -> None:
    import wandb

    settings = wandb.Settings(
        x_disable_stats=True,
        x_disable_meta=True,
        x_disable_machine_info=True,
        disable_git=True,
        console="off",
        x_save_requirements=False,
    )
    run = wandb.init(mode="offline", dir=root, project="t", config=CONFIG, settings=settings)
    run.config.update(LATE_CONFIG)
    for step, metrics in LOGGED.items():
        run.log(metrics, step=step)
    run.summary["eval/sft/humaneval/pass@1"] = PASS_AT_1
    run.finish()
    wandb.teardown()  # stop wandb-core and forget this session's settings (env, dirs)


@pytest.fixture(scope="module")
def offline_root(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A directory with ``wandb/offline-run-*/`` produced by a real offline wandb run."""
    root = tmp_path_factory.mktemp("wandb_offline")
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("WANDB_SILENT", "true")
        mp.setenv("WANDB_MODE", "offline")
        mp.setenv("WANDB_CONFIG_DIR", str(root / "_config"))
        mp.setenv("WANDB_CACHE_DIR", str(root / "_cache"))
        mp.setenv("WANDB_DATA_DIR", str(root / "_data"))
        mp.delenv("WANDB_RUN_ID", raising=False)
        mp.delenv("WANDB_RESUME", raising=False)
        _make_offline_run(root)
    return root


@pytest.fixture(scope="module")
def offline_run(offline_root: Path) -> OfflineRun:
    return read_offline_run(offline_root)


# -- real run -------------------------------------------------------------------------------------


def test_real_run_file_format(offline_root: Path) -> None:
    (run_dir,) = find_offline_runs(offline_root)
    (run_file,) = run_dir.glob("run-*.wandb")
    data = run_file.read_bytes()
    assert data[:7] == FILE_HEADER == b":W&B\xe1\xbe\x00"
    assert len(data) > BLOCK  # the big config spans blocks
    # First chunk: IEEE CRC-32 (zlib) over type byte + payload, unmasked.
    crc, length, ctype = struct.unpack_from("<IHB", data, 7)
    assert ctype == 1
    assert crc == zlib.crc32(data[13 : 14 + length])


def test_real_run_config(offline_run: OfflineRun) -> None:
    assert offline_run.project == "t"
    assert offline_run.run_id and offline_run.path.name == f"run-{offline_run.run_id}.wandb"
    for key, value in {**CONFIG, **LATE_CONFIG}.items():
        assert offline_run.config[key] == value
    assert offline_run.exit_code == 0


def test_real_run_history(offline_run: OfflineRun) -> None:
    assert [row["_step"] for row in offline_run.history] == list(LOGGED)
    for row, (step, metrics) in zip(offline_run.history, LOGGED.items(), strict=True):
        assert row["_step"] == step
        assert row["train/loss"] == metrics["train/loss"]
        assert row["train/lr"] == pytest.approx(metrics["train/lr"])
        assert "_runtime" in row and "_timestamp" in row
    assert offline_run.history[1]["eval/acc"] == 0.25  # nested dict -> "/"-joined key
    assert offline_run.history[2]["note"] == "done"
    assert offline_run.metric("train/loss") == [(0, 2.5), (5, 1.75), (10, 1.0)]
    assert offline_run.metric("eval/acc") == [(5, 0.25)]


def test_real_run_summary(offline_run: OfflineRun) -> None:
    summary = offline_run.summary
    assert summary["eval/sft/humaneval/pass@1"] == PASS_AT_1
    assert summary["train/loss"] == 1.0
    assert summary["_step"] == 10
    assert summary["eval"] == {"acc": 0.25}


def test_read_paths_agree(offline_root: Path, offline_run: OfflineRun) -> None:
    run_dir = offline_run.path.parent
    for path in (offline_run.path, run_dir, offline_root / "wandb", str(offline_root)):
        assert read_offline_run(path) == offline_run


def test_real_run_records(offline_run: OfflineRun) -> None:
    kinds = [record.WhichOneof("record_type") for record in iter_records(offline_run.path)]
    assert kinds[0] == "header" and "run" in kinds and kinds[-1] == "exit"
    assert kinds.count("history") == len(LOGGED)


def test_latest_of_several_runs(offline_root: Path, tmp_path: Path) -> None:
    (run_dir,) = find_offline_runs(offline_root)
    older = tmp_path / "wandb" / "offline-run-20000101_000000-old"
    shutil.copytree(run_dir, older)
    newer = tmp_path / "wandb" / "offline-run-29991231_235959-new"
    _write_log(newer / "run-new.wandb", [_run_record("new")])
    (tmp_path / "wandb" / "offline-run-29991231_235959-empty").mkdir()  # no .wandb: ignored
    assert find_offline_runs(tmp_path) == [older, newer]
    assert find_offline_runs(tmp_path / "wandb") == [older, newer]
    assert read_offline_run(tmp_path).run_id == "new"
    assert read_offline_run(older).config["seed"] == 7


# -- framing, with a LevelDB-log writer mirroring wandb-core's ------------------------------------


def _write_log(path: Path, payloads: list[bytes]) -> bytes:
    """Write ``payloads`` the way wandb-core does; return the bytes written."""
    out = bytearray(FILE_HEADER)
    for payload in payloads:
        first, rest = True, payload
        while True:
            left = BLOCK - len(out) % BLOCK
            if left < 7:
                out += b"\0" * left
                left = BLOCK
            chunk, rest = rest[: left - 7], rest[left - 7 :]
            ctype = (1 if first else 4) if not rest else (2 if first else 3)
            crc = zlib.crc32(bytes([ctype]) + chunk)
            out += struct.pack("<IHB", crc, len(chunk), ctype) + chunk
            first = False
            if not rest:
                break
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(out)
    return bytes(out)


def _run_record(run_id: str, **config: str) -> bytes:
    from wandb.proto import wandb_internal_pb2

    record = wandb_internal_pb2.Record()
    record.run.run_id = run_id
    for key, value in config.items():
        item = record.run.config.update.add()
        item.key = key
        item.value_json = f'"{value}"'
    return record.SerializeToString()


def _history_record(step: int, **values: float) -> bytes:
    from wandb.proto import wandb_internal_pb2

    record = wandb_internal_pb2.Record()
    record.history.step.num = step
    for key, value in values.items():
        item = record.history.item.add()
        item.nested_key.extend(key.split("."))
        item.value_json = repr(value)
    return record.SerializeToString()


def test_synthetic_multiblock_and_padding(tmp_path: Path) -> None:
    # Sizes chosen so records straddle blocks and one block ends with < 7 spare bytes (padding).
    payloads = [_run_record("abc", big="y" * 70_000)]
    payloads += [_history_record(i, **{"train.loss": i / 3}) for i in range(3000)]
    data = _write_log(tmp_path / "run-abc.wandb", payloads)
    assert len(data) > 4 * BLOCK
    run = read_offline_run(tmp_path / "run-abc.wandb")
    assert run.run_id == "abc" and run.config["big"] == "y" * 70_000
    assert len(run.history) == 3000
    assert all(row == {"_step": i, "train/loss": i / 3} for i, row in enumerate(run.history))


def _sized_run_record(size: int) -> bytes:
    """A serialized run record of exactly ``size`` bytes."""
    for n in range(max(0, size - 12), size):
        payload = _run_record("r" * n)
        if len(payload) == size:
            return payload
    raise AssertionError(f"cannot build a {size}-byte record")


@pytest.mark.parametrize("spare", [0, 3, 6, 7])
def test_block_tail(tmp_path: Path, spare: int) -> None:
    # Fill block 0 so that `spare` bytes are left after its second chunk: < 7 spare bytes are
    # zero padding; exactly 7 hold an empty FIRST chunk whose record continues in block 1.
    head = _history_record(0, a=1.0)
    filler = _sized_run_record(BLOCK - 7 - (7 + len(head)) - 7 - spare)
    path = tmp_path / "run-p.wandb"
    data = _write_log(path, [head, filler, _history_record(1, a=2.0)])
    if spare < 7:
        assert data[BLOCK - spare : BLOCK] == b"\0" * spare
    else:
        assert data[BLOCK - 7 : BLOCK] == struct.pack("<IHB", zlib.crc32(b"\x02"), 0, 2)
    run = read_offline_run(path)
    assert [row["a"] for row in run.history] == [1.0, 2.0]
    assert set(run.run_id) == {"r"}


def test_checksum_mismatch_raises(tmp_path: Path) -> None:
    path = tmp_path / "run-c.wandb"
    data = bytearray(_write_log(path, [_history_record(0, a=1.0), _run_record("c", k="abc")]))
    data[data.rindex(b"abc")] = ord("A")  # still a valid protobuf, but the CRC no longer matches
    path.write_bytes(data)
    with pytest.raises(ValueError, match=rf"{re.escape(str(path))}: corrupt .* checksum mismatch"):
        list(iter_records(path))
    unchecked = read_offline_run(path, verify_checksums=False)
    assert unchecked.config == {"k": "Abc"} and len(unchecked.history) == 1


def test_truncated_tail(tmp_path: Path) -> None:
    path = tmp_path / "run-t.wandb"
    data = _write_log(path, [_run_record("t"), _history_record(0, a=1.0)])
    path.write_bytes(data[:-3])
    assert [r.WhichOneof("record_type") for r in iter_records(path)] == ["run"]
    with pytest.raises(ValueError, match=re.escape(str(path))):
        list(iter_records(path, allow_truncated=False))


@pytest.mark.parametrize(
    "content",
    [b"", b":W&", b"hello world, not a wandb file", b":W&B\x00\x00\x00" + b"\0" * 20],
)
def test_not_a_wandb_file(tmp_path: Path, content: bytes) -> None:
    path = tmp_path / "run-bogus.wandb"
    path.write_bytes(content)
    with pytest.raises(ValueError, match=r"run-bogus\.wandb.*not a W&B run file"):
        list(iter_records(path))
    with pytest.raises(ValueError, match="not a W&B run file"):
        read_offline_run(path)


def test_unsupported_version(tmp_path: Path) -> None:
    path = tmp_path / "run-v.wandb"
    path.write_bytes(b":W&B\xe1\xbe\x01")
    with pytest.raises(ValueError, match="version 1"):
        list(iter_records(path))


def test_missing_run(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError):
        read_offline_run(tmp_path)
    with pytest.raises(FileNotFoundError):
        read_offline_run(tmp_path / "nope")
    assert find_offline_runs(tmp_path) == []


def test_nan_and_typed_history_values(tmp_path: Path) -> None:
    from wandb.proto import wandb_internal_pb2

    record = wandb_internal_pb2.Record()
    record.history.step.num = 4
    for key, value_json in {"loss": "NaN", "x": "Infinity"}.items():
        item = record.history.item.add()
        item.key = key
        item.value_json = value_json
    item = record.history.item.add()
    item.key = "typed"
    item.integer = 3
    path = tmp_path / "run-n.wandb"
    _write_log(path, [record.SerializeToString()])
    (row,) = read_offline_run(path).history
    assert math.isnan(row["loss"]) and row["x"] == math.inf
    assert row["typed"] == 3 and row["_step"] == 4
