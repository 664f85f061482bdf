"""Cheaper columns: the ``inverted`` block family and the ``down`` fusion choice (shapes, cost, checks, exactness)."""

from __future__ import annotations

import pytest
import torch
from conftest import CFG, assert_fuse_is_exact, assert_onnx_matches_eager
from test_revcol_core import assert_reversible_equals_plain, randomize_batchnorms

from yolo_revcol import RevCol
from yolo_revcol.nn import DOWNS, DownFusion, InvertedResidual

CHEAP = dict(c1=3, channels=[8, 16, 24, 32], layers=[1, 2, 1, 1], columns=3, block="inverted", stem="yolo", down="dw")


def n_params(module: torch.nn.Module) -> int:
    return sum(p.numel() for p in module.parameters())


@pytest.mark.parametrize("down", DOWNS)
@pytest.mark.parametrize("block", ["inverted", "c2f", "convnext"])
def test_every_block_and_down_fusion_gives_the_four_maps(block, down):
    model = RevCol(3, [8, 16, 24, 32], [1, 2, 1, 1], 2, block=block, down=down)
    out = model(torch.randn(2, 3, 64, 96))
    assert [tuple(o.shape) for o in out] == [(2, c, 64 // s, 96 // s) for c, s in zip(model.channels, (4, 8, 16, 32))]
    kinds = {type(m).__name__ for m in model.modules()}
    assert ("InvertedResidual" in kinds) == (block == "inverted")


def test_down_fusions_cost_what_their_kernels_say():
    conv, patch, dw = (n_params(DownFusion(64, 128, "c2f", kind)) for kind in ("conv", "patch", "dw"))
    bn = 2 * 128  # the BatchNorm after the output conv (dw adds one of 64 channels after the depthwise conv)
    assert conv - bn == 64 * 128 * 9 and patch - bn == 64 * 128 * 4
    assert dw - bn - 2 * 64 == 64 * 9 + 64 * 128
    # The default follows the family: the paper's 2x2 for convnext, YOLO's 3x3 otherwise.
    assert n_params(DownFusion(64, 128, "convnext")) == 64 * 128 * 4 + 128 + 2 * 128
    assert n_params(DownFusion(64, 128, "c2f")) == conv


def test_inverted_residual_costs_a_fraction_of_c2f_at_the_same_widths():
    x = torch.randn(2, 3, 64, 64)
    c2f = RevCol(3, [16, 64, 128, 256], [1, 1, 1, 1], 2, block="c2f", stem="yolo")
    cheap = RevCol(3, [16, 64, 128, 256], [1, 1, 1, 1], 2, block="inverted", mlp_ratio=1.0, stem="yolo", down="dw")
    assert n_params(cheap) < 0.3 * n_params(c2f)
    assert [o.shape for o in cheap(x)] == [o.shape for o in c2f(x)]
    block = InvertedResidual(64, 3, expansion=2.0)
    assert block.expand.conv.out_channels == 128 and block.dwconv.conv.groups == 128
    assert RevCol.check_args(3, [8, 16, 24, 32], [1, 1, 1, 1], 2, block="inverted")["mlp_ratio"] == 2.0


@pytest.mark.parametrize(
    "kwargs, match",
    [
        (dict(down="strided"), "RevCol argument 'down' must be one of conv, patch, dw, got 'strided'"),
        (dict(down=2), "RevCol argument 'down' must be one of conv, patch, dw, got 2"),
        (dict(block="inverted", layer_scale=0.1), "'layer_scale' is not used by block 'inverted', got 0.1"),
        (dict(block="inverted", mlp_ratio=-1), "'mlp_ratio' must be a number > 0, got -1"),
        (dict(block="mobile"), "'block' must be one of convnext, c2f, inverted, got 'mobile'"),
    ],
)
def test_bad_values_are_named(kwargs, match):
    with pytest.raises(ValueError, match=match):
        RevCol(3, [8, 16, 24, 32], [1, 1, 1, 1], 2, **kwargs)


def test_official_weights_need_the_papers_down_fusion(tmp_path):
    fake = tmp_path / "revcol_t.pth"
    fake.write_bytes(b"")
    with pytest.raises(ValueError, match="'weights' \\(official checkpoint\\) needs down patch, got 'dw'"):
        RevCol.check_args(3, [8, 16, 24, 32], [1, 1, 1, 1], 2, down="dw", weights=str(fake))


def test_reversible_gradients_equal_plain_backprop():
    rev = assert_reversible_equals_plain(dict(CHEAP, drop_path=0.2))
    assert float(rev.reconstruction_error) == 0.0


def test_fuse_is_exact_and_folds_every_batchnorm():
    model = randomize_batchnorms(RevCol(**CHEAP)).eval()
    assert_fuse_is_exact(model)


def test_onnx_export_matches_eager(tmp_path):
    assert_onnx_matches_eager(randomize_batchnorms(RevCol(**CHEAP)).eval().fuse(), tmp_path / "cheap.onnx")


def test_yaml_options_build_the_cheap_column_and_misspellings_are_named(tmp_path):
    import yaml
    from ultralytics.nn.tasks import DetectionModel

    d = yaml.safe_load((CFG / "yolov8-revcol.yaml").read_text())
    d["backbone"][0][3][3].update(block="inverted", mlp_ratio=1.0, down="dw", stem="yolo")
    path = tmp_path / "yolov8n-revcol-cheap.yaml"
    path.write_text(yaml.safe_dump(d, sort_keys=False))
    model = DetectionModel(str(path), nc=8, verbose=False)
    revcol = model.model[0]
    assert revcol.block == "inverted" and any(isinstance(m, InvertedResidual) for m in revcol.modules())
    assert isinstance(revcol.columns[0].levels[1].down.conv, torch.nn.Sequential)  # depthwise, then 1x1

    d["backbone"][0][3][3]["down"] = "dww"
    path.write_text(yaml.safe_dump(d, sort_keys=False))
    with pytest.raises(ValueError, match="layer 0 \\(RevCol\\): RevCol argument 'down' must be one of .* got 'dww'"):
        DetectionModel(str(path), nc=8, verbose=False)
