"""RevCol core: shapes, reversible gradients equal to plain autograd, memory, autocast, errors, export."""

from __future__ import annotations

import warnings

import pytest
import torch
from conftest import assert_onnx_matches_eager, relative_error, saved_bytes
from division_inverse import reconstruct_states, scale_inverse

from yolo_revcol import RevCol
from yolo_revcol.nn import ChannelScale, LayerNorm2d, ReversibleScale

STRIDES = (4, 8, 16, 32)


def perturb(model: torch.nn.Module, scale: float = 0.3, seed: int = 0) -> torch.nn.Module:
    """Give layer scales and alphas trained-looking values (the defaults make columns nearly trivial)."""
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for m in model.modules():
            if isinstance(m, ReversibleScale):
                m.weight.copy_(0.3 + 0.7 * torch.rand(m.weight.shape, generator=g).to(m.weight.dtype))
            elif isinstance(m, ChannelScale):
                m.weight.copy_(scale * torch.randn(m.weight.shape, generator=g).to(m.weight.dtype))
    return model


def run_step(model: RevCol, x: torch.Tensor, weights: list[torch.Tensor], seed: int = 1):
    """One forward/backward with a fixed RNG seed; return outputs, input grad and parameter grads."""
    model.zero_grad(set_to_none=True)
    x = x.detach().clone().requires_grad_()
    torch.manual_seed(seed)
    out = model(x)
    loss = sum((o.float() * w).sum() for o, w in zip(out, weights))
    loss.backward()
    grads = [x.grad] + [p.grad for p in model.parameters()]
    return [o.detach() for o in out], grads


def loss_weights(cfg: dict, n: int, size: int, dtype=torch.float32) -> list[torch.Tensor]:
    """Random weights that turn the four outputs into a scalar loss."""
    g = torch.Generator().manual_seed(123)
    return [torch.randn(n, c, size // s, size // s, generator=g).to(dtype) for c, s in zip(cfg["channels"], STRIDES)]


def test_output_shapes_and_channels(tiny_cfg):
    model = RevCol(**tiny_cfg)
    out = model(torch.randn(2, 3, 64, 96))
    assert [tuple(o.shape) for o in out] == [(2, c, 64 // s, 96 // s) for c, s in zip(tiny_cfg["channels"], STRIDES)]
    assert model.channels == tiny_cfg["channels"]
    assert len(model.columns) == tiny_cfg["columns"]
    assert model.columns[0].alphas is None and all(c.alphas is not None for c in model.columns[1:])


def test_feature_info_describes_the_outputs(tiny_cfg):
    model = RevCol(**dict(tiny_cfg, block="c2f", mlp_ratio=None)).eval()
    info = model.feature_info
    assert [i["reduction"] for i in info] == list(STRIDES)
    captured = []
    module = model.get_submodule(info[0]["module"])
    assert all(i["module"] == info[0]["module"] for i in info)
    module.register_forward_hook(lambda m, args, out: captured.extend(out))
    x = torch.randn(2, 3, 64, 96)
    out = model(x)
    for i, o, c in zip(info, out, captured):
        assert o.shape == (2, i["num_chs"], 64 // i["reduction"], 96 // i["reduction"])
        assert torch.equal(o, c)  # the named module computes exactly this output


@pytest.mark.parametrize("dtype, tol", [(torch.float64, 1e-9), (torch.float32, 1e-4)])
def test_reversible_gradients_equal_plain(tiny_cfg, dtype, tol):
    cfg = dict(tiny_cfg, columns=4, drop_path=0.3)
    model = perturb(RevCol(**cfg)).to(dtype).train()
    x = torch.randn(3, 3, 64, 64, dtype=dtype)
    weights = loss_weights(cfg, 3, 64, dtype)

    model.reversible = False
    out_plain, g_plain = run_step(model, x, weights)
    model.reversible = True
    out_rev, g_rev = run_step(model, x, weights)

    assert all(g is not None for g in g_rev)
    assert relative_error(out_plain, out_rev) == 0.0  # same ops, same masks: the forward is bit-identical
    assert relative_error(g_plain, g_rev) <= tol
    # DropPath really dropped something, and the reversible path replayed the same masks.
    model.reversible = False
    _, g_other_seed = run_step(model, x, weights, seed=2)
    assert relative_error(g_plain, g_other_seed) > 1e-3


def test_reversible_function_is_used_only_when_training(tiny_cfg):
    model = RevCol(**tiny_cfg).train()
    x = torch.randn(1, 3, 64, 64)
    assert type(model(x)[0].grad_fn).__name__ == "ReversibleColumnsBackward"
    model.reversible = False
    assert type(model(x)[0].grad_fn).__name__ != "ReversibleColumnsBackward"
    model.reversible = True
    with torch.no_grad():
        assert model(x)[0].grad_fn is None
    model.eval()
    assert type(model(x)[0].grad_fn).__name__ != "ReversibleColumnsBackward"


@pytest.mark.parametrize("block", ["convnext", "c2f"])
def test_saved_memory_does_not_grow_with_columns(block):
    cfg = dict(c1=3, channels=[16, 32, 64, 128], layers=[1, 1, 3, 1], block=block)
    x = torch.randn(2, 3, 128, 128)

    def measure(columns: int, reversible: bool) -> int:
        model = RevCol(**cfg, columns=columns, reversible=reversible).train()
        return saved_bytes(lambda: model(x))

    rev2, rev4, rev8 = (measure(n, True) for n in (2, 4, 8))
    plain4 = measure(4, False)
    assert rev8 <= 1.25 * rev2
    assert rev4 <= 0.10 * plain4


def test_bf16_autocast_keeps_states_and_alpha_float32(tiny_cfg):
    cfg = dict(tiny_cfg, columns=3)
    model = perturb(RevCol(**cfg)).train()
    x = torch.randn(2, 3, 64, 64)
    weights = loss_weights(cfg, 2, 64)
    grads = {}
    for reversible in (False, True):
        model.reversible = reversible
        with torch.autocast("cpu", dtype=torch.bfloat16):
            out, grads[reversible] = run_step(model, x, weights)
        assert all(o.dtype == torch.float32 for o in out)
    assert all(m.weight.dtype == torch.float32 for m in model.modules() if isinstance(m, ReversibleScale))
    # Reconstruction is exact, so the bf16 recomputation is the forward's, bit for bit: only summation order differs.
    assert float(model.reconstruction_error) == 0.0
    assert relative_error(grads[False], grads[True]) < 1e-6


def test_layernorm_statistics_in_float32():
    norm = LayerNorm2d(4)
    x = (torch.randn(1, 4, 3, 3) * 0.01 + 300.0).to(torch.bfloat16)
    y = norm(x)
    reference = torch.nn.functional.layer_norm(x.float().permute(0, 2, 3, 1), (4,), eps=norm.eps).permute(0, 3, 1, 2)
    assert y.dtype == torch.bfloat16
    torch.testing.assert_close(y.float(), reference.to(torch.bfloat16).float(), rtol=1e-2, atol=1e-2)


def test_half_model_runs_without_autocast(tiny_cfg):
    model = RevCol(**tiny_cfg).eval().to(torch.bfloat16)  # what .half() does to a validation model, on CPU
    out = model(torch.randn(1, 3, 64, 64, dtype=torch.bfloat16))
    assert all(o.dtype == torch.bfloat16 and torch.isfinite(o.float()).all() for o in out)


def test_alpha_bounded_away_from_zero_without_inplace_writes():
    alpha = ReversibleScale(4)
    assert torch.equal(alpha.weight, torch.full((4,), 0.5))
    with torch.no_grad():
        alpha.weight.copy_(torch.tensor([0.0, 1e-5, -1e-5, -2.0]))
    before = alpha.weight.clone()
    x = torch.ones(1, 4, 1, 1)
    y = alpha(x).flatten()
    torch.testing.assert_close(y, torch.tensor([1e-3, 1e-3, -1e-3, -2.0]))
    assert torch.equal(alpha.weight, before)  # forward never writes the parameter
    torch.testing.assert_close(scale_inverse(alpha, alpha(x)), x)
    alpha(x).sum().backward()
    assert torch.equal(alpha.weight.grad, torch.ones(4))  # straight-through: gradients reach clamped channels


def test_division_only_inverse_rebuilds_every_column_approximately(tiny_cfg):
    model = perturb(RevCol(**dict(tiny_cfg, columns=4))).eval()
    with torch.no_grad():
        x = model.stem(torch.randn(1, 3, 64, 64, generator=torch.Generator().manual_seed(0)))
        true, states = [], None
        for column in model.columns:
            states = column(x, states)
            true.append(states)
    rebuilt = reconstruct_states(model.columns, x, true[-1])
    assert len(rebuilt) == 4 and rebuilt[-1] == true[-1]
    for t, r in zip(true[:-1], rebuilt[:-1]):
        assert relative_error(t, r) < 1e-4  # division does not undo the forward's rounding, but it is close


def test_scales_are_1d_and_not_weight_decayed_by_ultralytics():
    from types import SimpleNamespace

    from ultralytics.engine.trainer import BaseTrainer

    model = RevCol(3, [8, 16, 24, 32], [1, 1, 1, 1], columns=2)
    scales = {id(m.weight) for m in model.modules() if isinstance(m, ChannelScale)}
    assert scales and all(m.weight.ndim == 1 for m in model.modules() if isinstance(m, ChannelScale))
    holder = torch.nn.Module()
    holder.model = torch.nn.ModuleList([model])  # MuSGD looks up the detection head as model.model[-1]
    fake = SimpleNamespace(args=SimpleNamespace(), data={})
    for name in ("SGD", "MuSGD"):
        optimizer = BaseTrainer.build_optimizer(fake, holder, name=name, lr=0.01, decay=5e-4)
        for group in optimizer.param_groups:
            ids = {id(p) for p in group["params"]}
            if ids & scales:
                assert group["weight_decay"] == 0.0 and not group.get("use_muon", False)


def test_second_backward_and_double_backward_raise(tiny_cfg):
    model = RevCol(**tiny_cfg).train()
    x = torch.randn(1, 3, 64, 64, requires_grad=True)
    loss = sum(o.sum() for o in model(x))
    loss.backward(retain_graph=True)
    with pytest.raises(RuntimeError, match="only once per forward"):
        loss.backward()

    loss = sum(o.sum() for o in model(x))
    with pytest.raises(RuntimeError, match="double backward"):
        torch.autograd.grad(loss, x, create_graph=True)


@pytest.mark.parametrize(
    "kwargs, match",
    [
        (dict(channels=[8, 16, 32]), "'channels' must be a list of 4"),
        (dict(channels=[8, 16, 0, 32]), "'channels' must hold integers >= 1"),
        (dict(layers=[1, 1, 1, 1, 1]), "'layers' must be a list of 4"),
        (dict(layers=[1, -1, 1, 1]), "'layers' must hold integers >= 1"),
        (dict(layers="1111"), "'layers' must be a list of 4"),
        (dict(columns=0), "'columns' must be an integer >= 1, got 0"),
        (dict(columns=2.5), "'columns' must be an integer >= 1, got 2.5"),
        (dict(kernel=4), "'kernel' must be odd, got 4"),
        (dict(kernel=-3), "'kernel' must be an integer >= 1, got -3"),
        (dict(c1=0), "'c1' must be an integer >= 1, got 0"),
        (dict(mlp_ratio=0), "'mlp_ratio' must be a number > 0, got 0"),
        (dict(drop_path=1.0), "'drop_path' must be a number in \\[0, 1\\), got 1.0"),
        (dict(reversible="yes"), "'reversible' must be true or false, got 'yes'"),
        (dict(layer_scale=0), "'layer_scale' must be a number > 0, got 0"),
        (dict(block="resnet"), "'block' must be one of convnext, c2f, inverted, got 'resnet'"),
        (dict(stem="conv"), "'stem' must be one of patchify, yolo, got 'conv'"),
        (dict(block="c2f"), "'mlp_ratio' is not used by block 'c2f', got 2"),  # tiny_cfg sets mlp_ratio=2
        (dict(block="c2f", mlp_ratio=None, layer_scale=0.1), "'layer_scale' is not used by block 'c2f', got 0.1"),
    ],
)
def test_bad_arguments_name_argument_and_value(tiny_cfg, kwargs, match):
    with pytest.raises(ValueError, match=match):
        RevCol(**dict(tiny_cfg, **kwargs))


def test_every_argument_is_checked_once_from_the_signature(tiny_cfg):
    import inspect

    from yolo_revcol.integration.yaml_args import ARG_NAMES, REQUIRED
    from yolo_revcol.nn.revcol import ARG_CHECKS

    names = list(inspect.signature(RevCol).parameters)
    assert list(ARG_CHECKS) == names  # a new argument without a check (or a stale check) fails here
    assert list(ARG_NAMES) == names[1:] and REQUIRED == ("channels", "layers", "columns")
    args = RevCol.check_args(**dict(tiny_cfg, columns=2))
    assert list(args) == names and args["layer_scale"] == 1e-6
    assert RevCol.check_args(3, [8, 16, 24, 32], [1, 1, 1, 1], 2, block="c2f")["mlp_ratio"] is None
    with pytest.raises(TypeError, match="missing a required argument: 'layers'"):
        RevCol(3, [8, 16, 24, 32])


def test_input_not_multiple_of_32_is_rejected(tiny_cfg):
    model = RevCol(**tiny_cfg)
    with pytest.raises(ValueError, match="multiples of 32, got 64x70"):
        model(torch.randn(1, 3, 64, 70))


def test_torchscript_trace_matches_eager(tiny_cfg, tmp_path):
    model = perturb(RevCol(**tiny_cfg)).eval()
    x = torch.randn(1, 3, 64, 64)
    traced = torch.jit.trace(model, x, strict=False)
    traced.save(str(tmp_path / "revcol.torchscript"))
    loaded = torch.jit.load(str(tmp_path / "revcol.torchscript"))
    for a, b in zip(model(x), loaded(x)):
        torch.testing.assert_close(a, b, rtol=1e-5, atol=1e-5)


def test_onnx_export_matches_eager(tiny_cfg, tmp_path):
    assert_onnx_matches_eager(perturb(RevCol(**tiny_cfg)).eval(), tmp_path / "revcol.onnx")


def test_backward_reports_reconstruction_error_and_warns_when_it_is_large():
    cfg = dict(c1=3, channels=[8, 16, 24, 32], layers=[1, 1, 1, 1], mlp_ratio=2)
    x = torch.randn(1, 3, 32, 32)

    def backward(model: RevCol) -> None:
        sum(o.sum() for o in model(x)).backward()

    # Reconstruction is exact, even over 16 columns in float32 with trained-looking weights and no kept states.
    for columns in (2, 16):
        model = perturb(RevCol(**cfg, columns=columns), scale=1.0).train()
        with warnings.catch_warnings():
            warnings.simplefilter("error")
            backward(model)
        assert float(model.reconstruction_error) == 0.0

    # It rests on the level bodies recomputing bit for bit. A kernel that does not (simulated: the recomputation,
    # which runs with grad enabled, comes out 1e-3 relative off) makes the reverse pass drift, and it says so.
    def nondeterministic(module, args, out):
        return out * (1 + 1e-3 * torch.randn_like(out)) if torch.is_grad_enabled() else out

    model = perturb(RevCol(**cfg, columns=4), scale=1.0).train()
    for level in (level for column in model.columns for level in column.levels):
        level.register_forward_hook(nondeterministic)
    with pytest.warns(RuntimeWarning, match=r"reconstruction error .* over 4 columns; gradients are inaccurate"):
        backward(model)
    assert float(model.reconstruction_error) > RevCol.RECONSTRUCTION_WARN


C2F_CFG = dict(c1=3, channels=[8, 16, 24, 32], layers=[1, 2, 2, 1], columns=3, block="c2f", stem="yolo")


def randomize_batchnorms(model: torch.nn.Module, seed: int = 0) -> torch.nn.Module:
    """Give BatchNorms non-trivial affine parameters and running statistics (fresh ones fuse trivially)."""
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for m in model.modules():
            if isinstance(m, torch.nn.BatchNorm2d):
                for t, lo in ((m.weight, 0.5), (m.running_var, 0.5)):
                    t.copy_(lo + torch.rand(t.shape, generator=g).to(t.dtype))
                for t in (m.bias, m.running_mean):
                    t.copy_(0.2 * torch.randn(t.shape, generator=g).to(t.dtype))
    return model


def batchnorm_buffers(model: torch.nn.Module) -> list[torch.Tensor]:
    """Every BatchNorm's running mean, running variance and batch counter, cloned."""
    return [b.clone() for m in model.modules() if isinstance(m, torch.nn.BatchNorm2d) for b in m.buffers()]


def assert_reversible_equals_plain(cfg: dict) -> RevCol:
    """Train one float64 step of a trained-looking RevCol built from ``cfg`` through the reversible path and through
    plain autograd: outputs must be identical and gradients equal to 1e-9; return the reversible model."""
    import copy

    plain = perturb(randomize_batchnorms(RevCol(**cfg))).double().train()
    plain.reversible = False
    rev = copy.deepcopy(plain)
    rev.reversible = True
    x = torch.randn(4, 3, 64, 64, dtype=torch.float64)
    weights = loss_weights(cfg, 4, 64, torch.float64)

    out_plain, g_plain = run_step(plain, x, weights)
    out_rev, g_rev = run_step(rev, x, weights)
    assert all(g is not None for g in g_rev)
    assert relative_error(out_plain, out_rev) == 0.0
    assert relative_error(g_plain, g_rev) < 1e-9
    assert type(rev(x)[0].grad_fn).__name__ == "ReversibleColumnsBackward"
    return rev


@pytest.mark.parametrize("stem", ["patchify", "yolo"])
def test_c2f_block_reversible_gradients_equal_plain(stem):
    assert_reversible_equals_plain(dict(C2F_CFG, stem=stem, drop_path=0.2))


def test_batchnorm_running_stats_move_once_per_reversible_step():
    import copy

    plain = randomize_batchnorms(RevCol(**C2F_CFG)).double().train()
    plain.reversible = False
    rev = copy.deepcopy(plain)
    rev.reversible = True
    x = torch.randn(4, 3, 64, 64, dtype=torch.float64)
    weights = loss_weights(C2F_CFG, 4, 64, torch.float64)
    before = batchnorm_buffers(plain)
    run_step(plain, x, weights)
    run_step(rev, x, weights)
    after_plain, after_rev = batchnorm_buffers(plain), batchnorm_buffers(rev)
    assert any(not torch.equal(a, b) for a, b in zip(before, after_plain))
    for a, b in zip(after_plain, after_rev):
        torch.testing.assert_close(a, b, rtol=1e-12, atol=1e-12)  # counters equal: one update, not two
    assert all(m.track_running_stats for m in rev.modules() if isinstance(m, torch.nn.BatchNorm2d))


def gradient_error(model: RevCol, autocast: torch.dtype | None, columns: int) -> float:
    """Relative error of the reversible path's gradients against plain backprop, both under the same autocast."""
    cfg = dict(channels=model.channels)
    x = torch.randn(2, 3, 64, 64, generator=torch.Generator().manual_seed(columns))
    weights = loss_weights(cfg, 2, 64)
    grads = []
    for reversible in (False, True):
        model.reversible = reversible
        with torch.autocast("cpu", dtype=autocast or torch.bfloat16, enabled=autocast is not None):
            grads.append(run_step(model, x, weights)[1])
    return relative_error(*grads)


@pytest.mark.parametrize("autocast, tol", [(None, 1e-4), (torch.bfloat16, 1e-2)], ids=["float32", "bf16-autocast"])
@pytest.mark.parametrize("columns", [5, 8])
@pytest.mark.parametrize("block", ["convnext", "c2f"])
def test_default_arguments_give_gradients_near_plain(tiny_cfg, block, columns, autocast, tol):
    import copy

    cfg = dict(tiny_cfg, columns=columns) if block == "convnext" else dict(C2F_CFG, columns=columns)
    torch.manual_seed(0)
    model = perturb(randomize_batchnorms(RevCol(**cfg))).train()  # trained-like; only the model's defaults
    assert gradient_error(model, autocast, columns) <= tol
    assert float(model.reconstruction_error) == 0.0
    if block == "c2f" and columns == 8:
        # Hard: this model amplifies any change to the forward's rounding beyond tol (plain backprop in the next
        # wider precision misses it), so only a reverse pass that reproduces the forward exactly passes.
        wider = copy.deepcopy(model)
        wider.reversible = model.reversible = False
        x = torch.randn(2, 3, 64, 64, generator=torch.Generator().manual_seed(columns))
        weights = loss_weights(dict(channels=model.channels), 2, 64)
        with torch.autocast("cpu", dtype=torch.bfloat16, enabled=autocast is not None):
            _, grads = run_step(model, x, weights)
        if autocast is None:
            wider.double()
            x, weights = x.double(), [w.double() for w in weights]
        assert relative_error(run_step(wider, x, weights)[1], grads) > tol


@pytest.mark.parametrize("value", [0, 2, "auto", None])
def test_removed_checkpoint_every_is_named_in_a_warning_and_ignored(tiny_cfg, value):
    torch.manual_seed(0)
    plain = RevCol(**tiny_cfg)
    torch.manual_seed(0)
    with pytest.warns(FutureWarning, match=r"RevCol: argument 'checkpoint_every' .* removed: the reverse pass"):
        old = RevCol(**tiny_cfg, checkpoint_every=value)
    assert "checkpoint_every" not in vars(old)
    assert all(torch.equal(a, b) for a, b in zip(plain.state_dict().values(), old.state_dict().values()))


@pytest.mark.parametrize("block, stem", [("convnext", "patchify"), ("c2f", "yolo"), ("c2f", "patchify")])
def test_fuse_is_exact_and_removes_work(block, stem):
    extra = {} if block == "c2f" else dict(mlp_ratio=2)
    model = RevCol(3, [8, 16, 24, 32], [1, 2, 2, 1], 2, block=block, stem=stem, **extra)
    model = perturb(randomize_batchnorms(model), scale=1.0).eval()
    with torch.no_grad():  # non-trivial LayerNorm affines, so folding them is visible
        for m in model.modules():
            if isinstance(m, LayerNorm2d) and m.weight is not None:
                m.weight.uniform_(0.5, 1.5)
                m.bias.normal_(0, 0.2)
    x = torch.randn(2, 3, 64, 64)
    with torch.no_grad():
        before = model(x)
        kinds_before = {type(m).__name__ for m in model.modules()}
        assert model.fuse() is model
        after = model(x)
        model.fuse()  # idempotent
        again = model(x)
    assert relative_error(before, after) < 1e-5
    assert relative_error(after, again) == 0.0
    kinds_after = {type(m).__name__ for m in model.modules()}
    assert "BatchNorm2d" not in kinds_after and ("BatchNorm2d" in kinds_before) == (block == "c2f")
    if block == "convnext":  # every block's norm affine and layer scale folded away
        blocks = [m for m in model.modules() if type(m).__name__ == "ConvNeXtBlock"]
        assert blocks and all(b.norm.weight is None and isinstance(b.gamma, torch.nn.Identity) for b in blocks)


class ToyAuxHead(torch.nn.Module):
    """A stand-in for a detection head: one 1x1 conv per stride-8/16/32 map."""

    def __init__(self, channels: list[int]):
        super().__init__()
        self.convs = torch.nn.ModuleList(torch.nn.Conv2d(c, 3, 1) for c in channels[1:])

    def forward(self, maps: list[torch.Tensor]) -> list[torch.Tensor]:
        return [conv(m) for conv, m in zip(self.convs, maps)]


def aux_model(cfg: dict, columns: int, aux: float = 0.4, **kwargs) -> RevCol:
    """A trained-looking RevCol with one toy auxiliary head per supervised column."""
    model = perturb(RevCol(**{**cfg, "columns": columns, "aux": aux, **kwargs}))
    model.attach_aux_heads([ToyAuxHead(cfg["channels"]) for _ in model.supervised_columns])
    return model


def aux_step(model: RevCol, x: torch.Tensor, seed: int = 1) -> list[torch.Tensor]:
    """Main loss plus weighted auxiliary losses, one backward; returns the input and parameter gradients."""
    model.zero_grad(set_to_none=True)
    x = x.detach().clone().requires_grad_()
    torch.manual_seed(seed)
    out = model(x)
    g = torch.Generator().manual_seed(7)
    loss = sum((o * torch.randn(o.shape, generator=g, dtype=o.dtype)).sum() for o in out)
    for w, maps in model.pop_aux_outputs():
        loss = loss + w * sum((m * torch.randn(m.shape, generator=g, dtype=m.dtype)).sum() for m in maps)
    loss.backward()
    return [x.grad] + [p.grad if p.grad is not None else torch.zeros_like(p) for p in model.parameters()]


@pytest.mark.parametrize("columns", [2, 3, 4, 8])
def test_aux_gradients_through_reversible_path_equal_plain(tiny_cfg, columns):
    torch.manual_seed(0)
    model = aux_model(tiny_cfg, columns).double().train()
    x = torch.randn(2, 3, 64, 64, dtype=torch.float64)
    reversible = aux_step(model, x)
    model.reversible = False
    plain = aux_step(model, x)
    assert all(g.abs().sum() > 0 for g in plain[-len(list(model.aux_heads.parameters())) :])  # heads learn
    assert relative_error(plain, reversible) < 1e-9


def test_aux_columns_and_weights_follow_the_rule(tiny_cfg):
    def cols(n):
        return RevCol(**{**tiny_cfg, "columns": n, "aux": 1.0})

    assert cols(2).supervised_columns == [0] and cols(2).aux_weights == [1.0]
    assert cols(3).supervised_columns == [0, 1] and cols(3).aux_weights == [0.5, 1.0]
    assert cols(8).supervised_columns == [1, 3, 5] and cols(8).aux_weights == pytest.approx([1 / 3, 2 / 3, 1.0])
    assert RevCol(**{**tiny_cfg, "aux": 0.0}).supervised_columns == []


def test_aux_heads_run_only_in_training_and_fuse_removes_them(tiny_cfg):
    model = aux_model(tiny_cfg, 3)
    x = torch.randn(1, 3, 64, 64)
    model.train()
    model(x)
    outputs = model.pop_aux_outputs()
    assert [w for w, _ in outputs] == model.aux_weights and model.pop_aux_outputs() == []
    model.eval()
    with torch.no_grad():
        reference = model(x)
    assert model.pop_aux_outputs() == []  # eval runs no head
    head_params = sum(p.numel() for p in model.aux_heads.parameters())
    before = sum(p.numel() for p in model.parameters())
    model.fuse()
    assert model.aux_heads is None and sum(p.numel() for p in model.parameters()) < before - head_params + 1
    with torch.no_grad():
        assert torch.allclose(model(x)[3], reference[3], atol=1e-5)


def test_model_with_aux_outputs_deepcopies_and_pickles(tiny_cfg, tmp_path):
    import copy

    model = aux_model(tiny_cfg, 2).train()
    model(torch.randn(1, 3, 64, 64))  # leaves graph tensors behind until the loss pops them
    clone = copy.deepcopy(model)
    assert clone.pop_aux_outputs() == [] and clone.aux_heads is not None
    torch.save(model, tmp_path / "m.pt")
    loaded = torch.load(tmp_path / "m.pt", weights_only=False)
    assert loaded.aux == model.aux and len(loaded.aux_heads) == 1


@pytest.mark.parametrize(
    "kwargs, match",
    [
        ({"aux": -0.1}, "'aux' must be a number >= 0"),
        ({"aux": "yes"}, "'aux' must be"),
        ({"aux": float("nan")}, "'aux' must be"),
        ({"aux": 1.0, "columns": 1}, "columns is 1"),
    ],
)
def test_bad_aux_values_are_named(tiny_cfg, kwargs, match):
    with pytest.raises(ValueError, match=match):
        RevCol(**{**tiny_cfg, **kwargs})


def test_attach_wrong_number_of_aux_heads_fails(tiny_cfg):
    model = RevCol(**{**tiny_cfg, "aux": 1.0})
    with pytest.raises(ValueError, match=r"supervises columns \[0, 1\]"):
        model.attach_aux_heads([ToyAuxHead(tiny_cfg["channels"])])
