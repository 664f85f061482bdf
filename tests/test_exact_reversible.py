"""The reversible path reconstructs every column exactly: gradients equal plain backprop's, memory flat in columns."""

from __future__ import annotations

import math
import warnings

import pytest
import torch
from conftest import relative_error, saved_bytes

from yolo_revcol import RevCol
from yolo_revcol.nn import ChannelScale, ReversibleScale
from yolo_revcol.nn import reversible as rev

CHANNELS = [8, 16, 24, 32]
SIZE = 64


@pytest.fixture(autouse=True)
def one_thread():
    """Tiny models are many small ops: one thread is faster than two, and far steadier on busy cores."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


def config(block: str, columns: int, **options) -> dict:
    """A tiny RevCol of either block family."""
    if block == "convnext":
        return dict(c1=3, channels=CHANNELS, layers=[1, 1, 1, 1], columns=columns, mlp_ratio=2, **options)
    return dict(c1=3, channels=CHANNELS, layers=[1, 1, 1, 1], columns=columns, block="c2f", stem="yolo", **options)


def trained_like(model: RevCol, seed: int = 0) -> RevCol:
    """Weights that make reconstruction hard, as ``yolo-revcol memory`` does: |alpha| uniform in [0.1, 1], layer
    scales 1 * (1 + 0.1 N(0, 1)), and BatchNorms with non-trivial affine parameters."""
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for m in model.modules():
            if isinstance(m, ReversibleScale):
                m.weight.copy_(torch.empty(m.weight.shape).uniform_(0.1, 1.0, generator=g))
            elif isinstance(m, ChannelScale):
                m.weight.copy_(1.0 + 0.1 * torch.randn(m.weight.shape, generator=g))
            elif isinstance(m, torch.nn.BatchNorm2d):
                m.weight.copy_(0.5 + torch.rand(m.weight.shape, generator=g))
                m.bias.copy_(0.2 * torch.randn(m.bias.shape, generator=g))
    return model


def step(model: RevCol, x: torch.Tensor, autocast: torch.dtype | None, seed: int = 1, aside: bool = False):
    """One forward/backward with a fixed seed; returns outputs, [input grad, *parameter grads] and saved bytes."""
    model.zero_grad(set_to_none=True)
    x = x.detach().clone().requires_grad_()
    g = torch.Generator().manual_seed(123)
    torch.manual_seed(seed)
    with torch.autocast("cpu", dtype=autocast or torch.bfloat16, enabled=autocast is not None):
        holder = []
        nbytes = saved_bytes(lambda: holder.append(model(x)))
        out = holder[0]
        loss = sum((o.float() * torch.randn(o.shape, generator=g)).sum() for o in out)
    if model.reversible:  # unless provoked, nothing kept aside: states within their brackets, no stack overflowed
        assert bool(out[0].grad_fn.lost[1]) == aside
    loss.backward()
    return [o.detach() for o in out], [x.grad] + [p.grad for p in model.parameters()], nbytes


@pytest.mark.parametrize("autocast, tol", [(None, 1e-4), (torch.bfloat16, 1e-2)], ids=["float32", "bf16-autocast"])
@pytest.mark.parametrize("block", ["convnext", "c2f"])
def test_default_arguments_are_exact_and_flat_in_columns(block, autocast, tol):
    x = torch.randn(2, 3, SIZE, SIZE, generator=torch.Generator().manual_seed(0))
    saved = {}
    for columns in (2, 4, 8, 16):
        torch.manual_seed(0)
        model = trained_like(RevCol(**config(block, columns))).train()  # only the model's defaults otherwise
        model.reversible = False
        out_plain, g_plain, _ = step(model, x, autocast)
        model.reversible = True
        out_rev, g_rev, saved[columns] = step(model, x, autocast)
        assert all(torch.equal(a, b) for a, b in zip(out_plain, out_rev))  # the forward is plain backprop's
        assert float(model.reconstruction_error) == 0.0  # the first column comes back bit for bit
        assert relative_error(g_plain, g_rev) <= tol
        assert relative_error(g_plain[1:], g_rev[1:]) <= tol  # parameter gradients alone
    assert saved[8] <= 1.25 * saved[2] and saved[16] <= 1.25 * saved[2]


@pytest.mark.parametrize("columns, dtype", [(2, torch.int32), (8, torch.int32), (9, torch.int64), (16, torch.int64)])
def test_stacks_are_as_wide_as_the_column_count_needs(columns, dtype):
    """Up to 8 columns, at most 7 pushes of a few bits fit 31 bits: int32 stacks, half the bytes of int64 ones."""
    x = torch.randn(1, 3, SIZE, SIZE, generator=torch.Generator().manual_seed(0))
    torch.manual_seed(0)
    out = trained_like(RevCol(**config("c2f", columns))).train()(x)
    levels, aside = out[0].grad_fn.lost
    stacks = out[0].grad_fn.saved_tensors[-len(levels) :]
    assert not aside and levels == [0, 1, 2, 3] and {s.dtype for s in stacks} == {dtype}
    assert [s.shape for s in stacks] == [o.shape for o in out]  # one integer per element of the last states


def edge_values(dtype: torch.dtype, seed: int, shape=(2, 8, 8, 8)) -> torch.Tensor:
    """Values over 60 binades plus zeros of both signs, subnormals and the largest finite floats."""
    g = torch.Generator().manual_seed(seed)
    n = math.prod(shape)
    x = torch.randn(n, generator=g) * torch.exp2(torch.randint(-30, 30, (n,), generator=g).float())
    x = x.to(dtype)
    fi = torch.finfo(dtype)
    specials = [0.0, -0.0, fi.tiny, -fi.tiny, fi.tiny / 4, fi.max, -fi.max, fi.max / 2, 1.0, -1.0]
    x[: len(specials)] = torch.tensor(specials, dtype=dtype)
    return x.view(shape)


@pytest.mark.parametrize("dtype", [torch.float16, torch.bfloat16, torch.float32, torch.float64])
def test_lost_bits_round_trip_is_bit_exact(dtype):
    # Six "columns" of state = body + prev * alpha with extreme values (overflow to inf in float16 included) and
    # alphas of both signs: popping in reverse order gives every prev back bit for bit and empties the stacks.
    g = torch.Generator().manual_seed(1)
    prevs = [edge_values(dtype, k) for k in range(6)]
    bodies = [edge_values(dtype, 100 + k) for k in range(6)]
    alphas = []
    for _ in range(6):
        magnitude = torch.rand(8, generator=g) * 0.999 + 0.001
        alphas.append((magnitude * torch.where(torch.rand(8, generator=g) < 0.3, -1.0, 1.0)).to(dtype).view(-1, 1, 1))
    lost, states = rev._LostBits(), []
    for k in range(6):
        states.append(bodies[k] + prevs[k] * alphas[k])  # the forward's own arithmetic
        lost.push(k + 1, 0, prevs[k], bodies[k], alphas[k], states[k])
    restored = rev._LostBits.restore(lost.layout(), lost.tensors())
    bits = rev._INT_OF[dtype]
    for k in reversed(range(6)):
        back = restored.pop(k + 1, 0, bodies[k], alphas[k], states[k])
        assert torch.equal(back.view(bits), prevs[k].view(bits))
    assert bool((restored.stacks[0] == 0).all()) and not restored.aside
    assert lost.aside  # extreme values: stacks overflow 63 bits (spills), float16 states overflow (exceptions)


def test_spills_and_exceptions_keep_reconstruction_exact(monkeypatch):
    x = torch.randn(2, 3, SIZE, SIZE, generator=torch.Generator().manual_seed(0))
    torch.manual_seed(0)
    model = trained_like(RevCol(**config("c2f", 6))).train()
    model.reversible = False
    out_plain, g_plain, _ = step(model, x, None)
    model.reversible = True
    _, g_exact, normal = step(model, x, None)

    candidates = rev._candidates

    def too_tight(body, alpha, state):  # brackets that miss the true value for many elements: exceptions
        first, count = candidates(body, alpha, state)
        return first + 1, (count - 2).clamp_min(1)

    monkeypatch.setattr(rev, "_INT64_MAX", 2**12)  # stacks overflow within a few columns: spills
    monkeypatch.setattr(rev, "_candidates", too_tight)
    _, kept_aside = model(x)[0].grad_fn.lost
    assert {kind for _, _, kind in kept_aside} == {"spill", "exception"}
    out_rev, g_rev, crowded = step(model, x, None, aside=True)
    assert all(torch.equal(a, b) for a, b in zip(out_plain, out_rev))
    assert float(model.reconstruction_error) == 0.0
    assert relative_error(g_plain, g_rev) == relative_error(g_plain, g_exact) <= 1e-6
    assert crowded > normal  # what is kept aside is saved for backward, and counted


@pytest.mark.parametrize("block", ["convnext", "c2f"])
def test_negative_alphas_droppath_and_half_states_are_exact(block):
    torch.manual_seed(0)
    model = trained_like(RevCol(**config(block, 5, drop_path=0.3)))
    with torch.no_grad():  # a third of the alphas negative
        for m in model.modules():
            if isinstance(m, ReversibleScale):
                m.weight.mul_(torch.where(torch.rand(m.weight.shape) < 1 / 3, -1.0, 1.0))
    x = torch.randn(2, 3, SIZE, SIZE, generator=torch.Generator().manual_seed(0))
    for dtype in (torch.float32, torch.float16):  # float16: a .half() model without autocast, float16 states
        model = model.to(dtype).train()
        model.reversible = False
        out_plain, g_plain, _ = step(model, x.to(dtype), None)
        model.reversible = True
        out_rev, g_rev, _ = step(model, x.to(dtype), None)
        assert all(torch.equal(a, b) for a, b in zip(out_plain, out_rev))
        assert float(model.reconstruction_error) == 0.0
        assert relative_error(g_plain, g_rev) <= (1e-6 if dtype == torch.float32 else 1e-2)  # summation order


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
@pytest.mark.parametrize("autocast", [None, torch.bfloat16], ids=["float32", "bf16-autocast"])
@pytest.mark.parametrize("block", ["convnext", "c2f"])
def test_reconstruction_is_exact_on_cuda(block, autocast):
    # Exactness needs the level bodies to recompute bit for bit; on CUDA that rests on deterministic kernels.
    torch.manual_seed(0)
    model = trained_like(RevCol(**config(block, 8))).cuda().train()
    x = torch.randn(2, 3, SIZE, SIZE, device="cuda")
    w = [torch.randn(2, c, SIZE // s, SIZE // s, device="cuda") for c, s in zip(CHANNELS, (4, 8, 16, 32))]
    grads = []
    for reversible in (False, True):
        model.reversible = reversible
        model.zero_grad(set_to_none=True)
        with warnings.catch_warnings(), torch.autocast("cuda", dtype=torch.bfloat16, enabled=autocast is not None):
            warnings.simplefilter("error")  # a reconstruction-error warning fails the test
            loss = sum((o.float() * wi).sum() for o, wi in zip(model(x), w))
        loss.backward()
        grads.append([p.grad for p in model.parameters()])
    assert float(model.reconstruction_error) == 0.0
    assert relative_error(*grads) <= (1e-4 if autocast is None else 1e-2)
