"""``train/grad_norm`` is the whole model's gradient norm under every strategy.

Pinned three ways: one process through a real Trainer; the callback with a stand-in
trainer whose strategy is Lightning's real FSDPStrategy and whose ``reduce`` adds the other
rank's share (and a stand-in DeepSpeed engine: DeepSpeed needs GPUs); and real two-process
FSDP on CPU (torch's FSDP over gloo, with Lightning's FSDPStrategy doing the all-reduce),
against the norm one process computes.
"""

from __future__ import annotations

import json
import socket
import types
from pathlib import Path
from typing import Any

import lightning as L
import pytest
import torch
import torch.multiprocessing as mp
from lightning.pytorch.strategies import DDPStrategy, FSDPStrategy
from torch.utils.data import DataLoader
from transformers.optimization import Adafactor

from magicoder.training import callbacks
from magicoder.training.callbacks import TrainMetrics, global_grad_norm


class _Tiny(L.LightningModule):
    """Two linear layers (2-D weights and 1-D biases, so FSDP splits weights across ranks)."""

    def __init__(self) -> None:
        super().__init__()
        torch.manual_seed(0)
        self.net = torch.nn.Sequential(torch.nn.Linear(5, 7), torch.nn.Linear(7, 3))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(x)

    def training_step(self, batch: dict[str, torch.Tensor], batch_idx: int) -> torch.Tensor:
        return self(batch["x"]).pow(2).mean()

    def configure_optimizers(self) -> torch.optim.Optimizer:
        return torch.optim.SGD(self.parameters(), lr=0.1)


def _batches() -> list[dict[str, torch.Tensor]]:
    torch.manual_seed(1)
    return [{"x": torch.randn(4, 5), "attention_mask": torch.ones(4, 3, dtype=torch.long)}]


def _reference_norm() -> float:
    """The norm of the first step's gradient, computed in one process without Lightning."""
    module = _Tiny()
    module.training_step(_batches()[0], 0).backward()
    grads = [p.grad for p in module.parameters()]
    return float(torch.linalg.vector_norm(torch.cat([g.flatten() for g in grads])))


class _LocalNorm(L.Callback):
    """Records the norm of this rank's ``p.grad`` alone: what the callback used to log."""

    def __init__(self) -> None:
        self.local: float | None = None

    def on_before_optimizer_step(self, trainer, pl_module, optimizer) -> None:
        grads = [p.grad.flatten() for p in pl_module.parameters() if p.grad is not None]
        self.local = float(torch.linalg.vector_norm(torch.cat(grads))) if grads else 0.0


def _fit(strategy: Any, devices: int) -> tuple[float, float | None]:
    local = _LocalNorm()
    trainer = L.Trainer(
        accelerator="cpu",
        devices=devices,
        strategy=strategy,
        max_steps=1,
        callbacks=[TrainMetrics(), local],
        use_distributed_sampler=False,  # every rank sees the same batch: grads = one process's
        logger=False,
        enable_checkpointing=False,
        enable_progress_bar=False,
        enable_model_summary=False,
    )
    trainer.fit(_Tiny(), train_dataloaders=DataLoader(_batches(), batch_size=None))
    return float(trainer.callback_metrics["train/grad_norm"]), local.local


def test_one_process_logs_the_norm_of_every_gradient():
    logged, local = _fit("auto", devices=1)
    assert logged == pytest.approx(_reference_norm(), rel=1e-6)
    assert local == pytest.approx(logged, rel=1e-6)


class _Recorder:
    """A LightningModule stand-in: its parameters, and what it was asked to log."""

    def __init__(self, params: list[torch.nn.Parameter]) -> None:
        self.params = params
        self.logged: dict[str, float] = {}

    def parameters(self):
        return iter(self.params)

    def log(self, name: str, value: Any, **kwargs: Any) -> None:
        self.logged[name] = float(value)


def _param(grad: torch.Tensor) -> torch.nn.Parameter:
    p = torch.nn.Parameter(torch.zeros_like(grad))
    p.grad = grad
    return p


def _two_rank_fsdp(sharding: str, other_rank_squares: float) -> tuple[FSDPStrategy, list]:
    """Lightning's real FSDPStrategy whose ``reduce`` sums this rank's value and rank 1's."""
    strategy = FSDPStrategy(auto_wrap_policy={torch.nn.Linear}, sharding_strategy=sharding)
    strategy.parallel_devices = [torch.device("cpu")] * 2
    calls: list[str] = []

    def reduce(tensor: torch.Tensor, group: Any = None, reduce_op: str = "mean") -> torch.Tensor:
        calls.append(reduce_op)
        return tensor + other_rank_squares

    strategy.reduce = reduce  # type: ignore[method-assign]
    return strategy, calls


def test_fsdp_shards_are_summed_over_ranks_not_taken_from_one():
    """Rank 0 holds [3, 4] of a flat gradient whose rank-1 shard is [12] (as FSDP gives each
    rank 1-D slices): the norm is sqrt(3² + 4² + 12²) = 13, not rank 0's 5."""
    strategy, calls = _two_rank_fsdp("FULL_SHARD", other_rank_squares=12.0**2)
    module = _Recorder([_param(torch.tensor([3.0])), _param(torch.tensor([4.0]))])
    trainer = types.SimpleNamespace(strategy=strategy)
    optimizer = types.SimpleNamespace(param_groups=[{"lr": 0.5}])
    TrainMetrics().on_before_optimizer_step(trainer, module, optimizer)  # type: ignore[arg-type]
    assert module.logged["train/grad_norm"] == pytest.approx(13.0)
    assert calls == ["sum"]
    assert module.logged["train/lr"] == 0.5


def test_a_rank_whose_shard_has_no_gradient_still_takes_part_in_the_sum():
    """Skipping the reduce on such a rank would hang every other rank in it."""
    strategy, calls = _two_rank_fsdp("SHARD_GRAD_OP", other_rank_squares=25.0)
    empty = torch.nn.Parameter(torch.zeros(0))  # a weight that lies wholly on the other rank
    norm = global_grad_norm([empty], strategy)
    assert calls == ["sum"] and norm is not None and float(norm) == pytest.approx(5.0)


def test_hybrid_sharding_counts_each_replicated_shard_once(monkeypatch):
    """HYBRID_SHARD on 2 nodes × 2 ranks: each shard is on 2 ranks, so the world sum holds
    each square twice. (A fake process group: this needs two nodes.)"""
    strategy, _ = _two_rank_fsdp("HYBRID_SHARD", other_rank_squares=0.0)
    strategy.reduce = lambda t, group=None, reduce_op="mean": t * 4  # type: ignore[method-assign]
    strategy.model = types.SimpleNamespace(process_group="shard-group")  # type: ignore[assignment]
    monkeypatch.setattr(
        torch.distributed, "get_world_size", lambda group=None: 2 if group == "shard-group" else 4
    )
    norm = global_grad_norm([_param(torch.tensor([3.0, 4.0]))], strategy)
    # Two shards of squares 25 each, each on two ranks: world sum 100, over 2 replicas = 50.
    assert norm is not None and float(norm) == pytest.approx(50.0**0.5)


@pytest.mark.parametrize(
    "strategy", [DDPStrategy(), FSDPStrategy(sharding_strategy="NO_SHARD")], ids=["ddp", "no-shard"]
)
def test_whole_gradients_give_the_local_norm_without_a_collective(strategy):
    strategy.reduce = lambda *a, **k: pytest.fail("gradients are whole: nothing to reduce")
    norm = global_grad_norm([_param(torch.tensor([3.0])), _param(torch.tensor([4.0]))], strategy)
    assert norm is not None and float(norm) == pytest.approx(5.0)


def test_without_gradients_nothing_is_logged():
    assert global_grad_norm([torch.nn.Parameter(torch.zeros(2))], DDPStrategy()) is None


class _Engine:
    """Stands in for a DeepSpeedEngine (DeepSpeed needs GPUs): it applies a step every second
    micro-batch, and sets its global norm in that step, as DeepSpeedEngine._take_model_step does."""

    def __init__(self) -> None:
        self.global_steps = 0
        self._norm: float | None = None

    def micro_step(self, norm: float) -> None:
        if self._pending:
            self.global_steps += 1
            self._norm = norm
        self._pending = not self._pending

    _pending = False

    def get_global_grad_norm(self) -> float | None:
        return self._norm


def test_deepspeed_logs_the_engines_norm_once_per_applied_step(monkeypatch):
    monkeypatch.setattr(callbacks, "_is_deepspeed", lambda strategy: True)
    engine = _Engine()
    strategy = types.SimpleNamespace(deepspeed_engine=engine)
    trainer = types.SimpleNamespace(strategy=strategy, world_size=1, global_step=0)
    metrics = TrainMetrics()
    metrics._last_step_time = 0.0
    batch = {"attention_mask": torch.ones(2, 3, dtype=torch.long)}
    logged: list[float] = []
    optimizer = types.SimpleNamespace(param_groups=[{"lr": 1.0}])
    # p.grad stays None under ZeRO: the hook before the step logs no norm.
    module = _Recorder([torch.nn.Parameter(torch.zeros(2))])
    for i, norm in enumerate([1.0, 2.0, 3.0, 4.0]):
        module.logged.clear()
        metrics.on_before_optimizer_step(trainer, module, optimizer)  # type: ignore[arg-type]
        assert "train/grad_norm" not in module.logged
        engine.micro_step(norm)
        trainer.global_step += 1  # Lightning counts every micro-batch under DeepSpeed
        metrics.on_train_batch_end(trainer, module, None, batch, i)  # type: ignore[arg-type]
        if "train/grad_norm" in module.logged:
            logged.append(module.logged["train/grad_norm"])
    assert logged == [2.0, 4.0]  # the norm of each applied step, once


def _fsdp_worker(rank: int, port: int, out_dir: str) -> None:
    """One rank: torch's FSDP (FULL_SHARD, each Linear a unit, original parameters exposed as
    Lightning sets it up), one backward, then the callback with Lightning's FSDPStrategy,
    whose ``reduce`` is the real gloo all-reduce. (Lightning's Trainer refuses FSDP on a
    CPU, so the strategy object is used without it.)"""
    import torch.distributed as dist
    from lightning.pytorch.strategies import ModelParallelStrategy
    from torch.distributed.device_mesh import init_device_mesh
    from torch.distributed.fsdp import FullyShardedDataParallel as FSDP
    from torch.distributed.fsdp.wrap import ModuleWrapPolicy
    from torch.distributed.tensor import Replicate, Shard, distribute_tensor

    torch.set_num_threads(1)
    dist.init_process_group("gloo", init_method=f"tcp://127.0.0.1:{port}", rank=rank, world_size=2)
    try:
        module = _Tiny()
        sharded = FSDP(
            module,
            auto_wrap_policy=ModuleWrapPolicy({torch.nn.Linear}),
            use_orig_params=True,
            device_id=torch.device("cpu"),
        )
        batch = _batches()[0]  # the same batch on both ranks: the gradient is one process's
        sharded(batch["x"]).pow(2).mean().backward()
        shapes = [tuple(p.grad.shape) for p in module.parameters() if p.grad is not None]
        strategy = FSDPStrategy(auto_wrap_policy={torch.nn.Linear})
        strategy.parallel_devices = [torch.device("cpu")] * 2
        recorder = _Recorder(list(module.parameters()))
        optimizer = types.SimpleNamespace(param_groups=[{"lr": 0.1}])
        trainer = types.SimpleNamespace(strategy=strategy)
        TrainMetrics().on_before_optimizer_step(trainer, recorder, optimizer)  # type: ignore[arg-type]
        local = [p.grad.flatten() for p in module.parameters() if p.grad is not None]
        # What Adafactor keeps for these parameters (why config.py refuses it on sharded FSDP).
        adafactor = Adafactor(
            module.parameters(), lr=1e-3, scale_parameter=False, relative_step=False
        )
        adafactor.step()
        moments = sorted({key for state in adafactor.state.values() for key in state})
        result = {
            "logged": recorder.logged["train/grad_norm"],
            "local": float(torch.linalg.vector_norm(torch.cat(local))) if local else 0.0,
            "shapes": shapes,
            "moments": moments,
        }
        # DTensor gradients (ModelParallelStrategy): a row-sharded weight, a replicated bias.
        mesh = init_device_mesh("cpu", (2,))
        weight = torch.nn.Parameter(distribute_tensor(torch.zeros(4, 3), mesh, [Shard(0)]))
        bias = torch.nn.Parameter(distribute_tensor(torch.zeros(2), mesh, [Replicate()]))
        weight.grad = distribute_tensor(torch.arange(12.0).reshape(4, 3), mesh, [Shard(0)])
        bias.grad = distribute_tensor(torch.tensor([3.0, 4.0]), mesh, [Replicate()])
        result["dtensor"] = float(global_grad_norm([weight, bias], ModelParallelStrategy()))
        Path(out_dir, f"rank{rank}.json").write_text(json.dumps(result))
    finally:
        dist.destroy_process_group()


def test_two_rank_fsdp_on_cpu_logs_the_one_process_norm(tmp_path: Path):
    """Real FSDP over two gloo processes: each rank's ``p.grad`` is a 1-D slice of the
    gradient, yet both log the norm that one process computes for the same batch. The same
    processes check DTensor gradients (FSDP2 and tensor parallelism under Lightning's
    ModelParallelStrategy) and what Adafactor keeps for FSDP's slices."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    # Forked, not spawned: a fresh interpreter spends ~8 s importing Lightning on 2 cores.
    # Each child first sets one torch thread, as DataLoader's forked workers do.
    mp.start_processes(
        _fsdp_worker, args=(port, str(tmp_path)), nprocs=2, join=True, start_method="fork"
    )
    reference = _reference_norm()
    for rank in (0, 1):
        result = json.loads((tmp_path / f"rank{rank}.json").read_text())
        assert result["shapes"] and all(len(shape) == 1 for shape in result["shapes"])
        assert result["logged"] == pytest.approx(reference, rel=1e-5)
        assert result["local"] < reference * 0.99  # one rank's slice: what used to be logged
        # Adafactor sees 1-D slices, so it keeps whole second moments, never factored ones.
        assert "exp_avg_sq" in result["moments"] and "exp_avg_sq_row" not in result["moments"]
        # DTensors know their placements: the replicated bias is counted once, not per rank.
        expected = torch.cat([torch.arange(12.0), torch.tensor([3.0, 4.0])]).norm()
        assert result["dtensor"] == pytest.approx(float(expected))
    unsharded = Adafactor(_Tiny().parameters(), lr=1e-3, scale_parameter=False, relative_step=False)
    for p in unsharded.param_groups[0]["params"]:
        p.grad = torch.ones_like(p)
    unsharded.step()
    assert any("exp_avg_sq_row" in state for state in unsharded.state.values())
