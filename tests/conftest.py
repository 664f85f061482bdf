"""Shared test settings: keep tests offline and quiet, and small helpers used by several test files."""

from __future__ import annotations

import os

import pytest
import torch

# Never let Ultralytics reach the network or write settings into the user's home during tests.
os.environ.setdefault("YOLO_OFFLINE", "1")
os.environ.setdefault("ULTRALYTICS_OFFLINE", "1")

torch.set_num_threads(min(2, os.cpu_count() or 1))


def saved_bytes(fn) -> int:
    """Return the distinct bytes autograd saves for backward while ``fn()`` runs (each storage counted once)."""
    seen: dict[int, int] = {}

    def pack(t: torch.Tensor):
        storage = t.untyped_storage()
        seen[storage.data_ptr()] = storage.nbytes()
        return t

    with torch.autograd.graph.saved_tensors_hooks(pack, lambda t: t):
        fn()
    return sum(seen.values())


def relative_error(a: list[torch.Tensor], b: list[torch.Tensor]) -> float:
    """Return ||a - b|| / ||a|| over all tensors of two equally shaped lists."""
    num = sum(((x.double() - y.double()) ** 2).sum() for x, y in zip(a, b))
    den = sum((x.double() ** 2).sum() for x in a)
    return float((num / den).sqrt())


@pytest.fixture
def tiny_cfg() -> dict:
    """A small RevCol configuration that runs in milliseconds on CPU."""
    return dict(c1=3, channels=[8, 16, 24, 32], layers=[1, 1, 2, 1], columns=3, kernel=3, mlp_ratio=2)
