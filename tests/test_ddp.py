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


class AuxHead(torch.nn.Module):
    """A stand-in auxiliary head: one 1x1 conv per stride-8/16/32 map."""

    def __init__(self):
        super().__init__()
        self.convs = torch.nn.ModuleList(torch.nn.Conv2d(c, 2, 1) for c in CFG["channels"][1:])

    def forward(self, maps: list[torch.Tensor]) -> list[torch.Tensor]:
        return [conv(m) for conv, m in zip(self.convs, maps)]


def make_model(aux: float = 0.0) -> RevCol:
    """Identical weights in every process, with non-trivial layer scales so every column matters."""
    torch.manual_seed(0)
    model = RevCol(**CFG, aux=aux).train()
    model.attach_aux_heads([AuxHead() for _ in model.supervised_columns])
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
    """Mean over the batch, so DDP's gradient averaging reproduces the full-batch gradient; auxiliary outputs (if
    any) add their weighted sums."""
    loss = sum((o * wi).sum() for o, wi in zip(model(x), w))
    revcol = getattr(model, "module", model)
    for weight, maps in revcol.pop_aux_outputs():
        loss = loss + weight * sum(m.square().sum() for m in maps)
    return loss / x.shape[0]


class WithLoss(torch.nn.Module):
    """Model and loss in one forward, as Ultralytics' models compute their loss: DDP then sees the auxiliary heads'
    part of the graph too (outputs consumed outside the wrapped forward would look unused to it)."""

    def __init__(self, model: RevCol):
        super().__init__()
        self.model = model

    def forward(self, x: torch.Tensor, w: list[torch.Tensor]) -> torch.Tensor:
        return batch_loss(self.model, x, w)


def worker(rank: int, init_file: str, find_unused: bool, out_file: str, aux: float) -> None:
    """One DDP rank: train step on its half of the batch, rank 0 saves the gradients."""
    dist.init_process_group("gloo", init_method=f"file://{init_file}", rank=rank, world_size=WORLD)
    try:
        torch.set_num_threads(1)
        model = make_model(aux)
        x, w = global_batch()
        part = slice(rank * 2, rank * 2 + 2)
        if aux:
            ddp = torch.nn.parallel.DistributedDataParallel(WithLoss(model), find_unused_parameters=find_unused)
            loss = ddp(x[part], [wi[part] for wi in w])
        else:
            ddp = torch.nn.parallel.DistributedDataParallel(model, find_unused_parameters=find_unused)
            loss = batch_loss(ddp, x[part], [wi[part] for wi in w])
        loss.backward()
        uses_reversible = type(model(x[part])[0].grad_fn).__name__ == "ReversibleColumnsBackward"
        if rank == 0:
            torch.save({"grads": [p.grad for p in model.parameters()], "reversible": uses_reversible}, out_file)
    finally:
        dist.destroy_process_group()


@pytest.mark.parametrize("find_unused, aux", [(True, 0.0), (False, 0.0), (True, 0.5), (False, 0.5)])
def test_ddp_gradients_equal_single_process(tmp_path, find_unused, aux):
    if not dist.is_available() or not dist.is_gloo_available():
        pytest.skip("torch.distributed with gloo is not available")
    out_file = str(tmp_path / "grads.pt")
    mp.start_processes(
        worker, args=(str(tmp_path / "init"), find_unused, out_file, aux), nprocs=WORLD, join=True, start_method="spawn"
    )
    result = torch.load(out_file)
    assert result["reversible"]

    model = make_model(aux)
    x, w = global_batch()
    batch_loss(model, x, w).backward()
    reference = [p.grad for p in model.parameters()]
    assert all(g is not None for g in result["grads"])
    assert relative_error(reference, result["grads"]) < 1e-5
