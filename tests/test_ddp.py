"""The reversible path under DistributedDataParallel: 2 gloo processes on CPU give single-process gradients."""

from __future__ import annotations

import pytest
import torch
import torch.distributed as dist
import torch.multiprocessing as mp
from conftest import relative_error

from yolo_revcol import RevCol

CFG = dict(c1=3, channels=[8, 16, 24, 32], layers=[1, 1, 2, 1], columns=3, mlp_ratio=2)
WORLD = 2


def make_model() -> RevCol:
    """Identical weights in every process, with non-trivial layer scales so every column matters."""
    torch.manual_seed(0)
    model = RevCol(**CFG).train()
    with torch.no_grad():
        for name, p in model.named_parameters():
            if name.endswith("gamma.weight"):
                p.normal_(0.0, 0.3)
    return model


def global_batch() -> tuple[torch.Tensor, list[torch.Tensor]]:
    """The full batch and the loss weights, the same in every process."""
    g = torch.Generator().manual_seed(1)
    x = torch.randn(4, 3, 64, 64, generator=g)
    w = [torch.randn(4, c, 64 // s, 64 // s, generator=g) for c, s in zip(CFG["channels"], (4, 8, 16, 32))]
    return x, w


def batch_loss(model: torch.nn.Module, x: torch.Tensor, w: list[torch.Tensor]) -> torch.Tensor:
    """Mean over the batch, so DDP's gradient averaging reproduces the full-batch gradient."""
    return sum((o * wi).sum() for o, wi in zip(model(x), w)) / x.shape[0]


def worker(rank: int, init_file: str, find_unused: bool, out_file: str) -> None:
    """One DDP rank: train step on its half of the batch, rank 0 saves the gradients."""
    dist.init_process_group("gloo", init_method=f"file://{init_file}", rank=rank, world_size=WORLD)
    try:
        torch.set_num_threads(1)
        model = make_model()
        ddp = torch.nn.parallel.DistributedDataParallel(model, find_unused_parameters=find_unused)
        x, w = global_batch()
        part = slice(rank * 2, rank * 2 + 2)
        loss = batch_loss(ddp, x[part], [wi[part] for wi in w])
        loss.backward()
        uses_reversible = type(model(x[part])[0].grad_fn).__name__ == "ReversibleColumnsBackward"
        if rank == 0:
            torch.save({"grads": [p.grad for p in model.parameters()], "reversible": uses_reversible}, out_file)
    finally:
        dist.destroy_process_group()


@pytest.mark.parametrize("find_unused", [True, False])
def test_ddp_gradients_equal_single_process(tmp_path, find_unused):
    if not dist.is_available() or not dist.is_gloo_available():
        pytest.skip("torch.distributed with gloo is not available")
    out_file = str(tmp_path / "grads.pt")
    mp.start_processes(
        worker, args=(str(tmp_path / "init"), find_unused, out_file), nprocs=WORLD, join=True, start_method="spawn"
    )
    result = torch.load(out_file)
    assert result["reversible"]

    model = make_model()
    x, w = global_batch()
    batch_loss(model, x, w).backward()
    reference = [p.grad for p in model.parameters()]
    assert all(g is not None for g in result["grads"])
    assert relative_error(reference, result["grads"]) < 1e-5
