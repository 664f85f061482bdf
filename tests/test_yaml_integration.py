"""Registration into Ultralytics' YAML parser: scaling, channel bookkeeping, options, and error messages."""

from __future__ import annotations

import copy
import math

import pytest
import torch
import yaml
from conftest import CFG

from yolo_revcol import RevCol
from yolo_revcol.integration import register as reg
from yolo_revcol.integration.yaml_args import ModelYAMLError

SCALES = "nsmlx"


@pytest.fixture(scope="module")
def base_yaml() -> dict:
    """The shipped yolov8-revcol model dictionary."""
    return yaml.safe_load((CFG / "yolov8-revcol.yaml").read_text())


def build(d: dict, scale: str = "n", ch: int = 3):
    """Build a DetectionModel from a model dictionary for one scale."""
    from ultralytics.nn.tasks import DetectionModel

    reg.register()
    return DetectionModel(dict(copy.deepcopy(d), scale=scale), ch=ch, verbose=False)


def scaled(c: int, width: float, max_channels: int) -> int:
    """Ultralytics' channel scaling, written out independently for the assertions."""
    return math.ceil(min(c, max_channels) * width / 8) * 8


@pytest.mark.parametrize("scale", SCALES)
def test_every_scale_builds_with_scaled_arguments(base_yaml, scale):
    model = build(base_yaml, scale)
    revcol = model.model[0]
    assert isinstance(revcol, RevCol)
    depth, width, max_channels = base_yaml["scales"][scale]
    args = base_yaml["backbone"][0][3]
    assert revcol.channels == [scaled(c, width, max_channels) for c in args[0]]
    blocks = [level.depth for level in revcol.columns[0].levels]
    assert blocks == [max(round(n * depth), 1) if n > 1 else n for n in args[1]]
    assert len(revcol.columns) == args[2][scale]
    assert revcol.reversible is True
    # The Index rows report RevCol's channels, so SPPF and the neck are built for them.
    assert model.model[4].cv1.conv.in_channels == revcol.channels[3]
    assert model.stride.tolist() == [8.0, 16.0, 32.0]
    boxes = model.eval()(torch.zeros(1, 3, 64, 64))[0]
    assert boxes.shape == (1, 4 + base_yaml["nc"], 8 * 8 + 4 * 4 + 2 * 2)


def test_scale_from_file_name_and_info(caplog):
    from ultralytics import YOLO

    model = YOLO(str(CFG / "yolov8s-revcol.yaml"))
    assert model.model.yaml["scale"] == "s"
    n_layers, n_params, _, gflops = model.info()
    assert n_params == sum(p.numel() for p in model.model.parameters()) and gflops > 0
    assert "YOLOv8s-revcol summary" in caplog.text


def test_single_channel_input(base_yaml):
    model = build(base_yaml, "n", ch=1)
    assert model.model[0].stem.convs[0].conv.in_channels == 1


def test_reversible_can_be_switched_off_from_yaml(base_yaml):
    d = copy.deepcopy(base_yaml)
    d["backbone"][0][3][-1] = {"reversible": False}
    assert build(d).model[0].reversible is False


def test_yaml_naming_removed_checkpoint_every_warns_with_the_layer_and_builds_the_same_model(base_yaml):
    torch.manual_seed(0)
    shipped = build(base_yaml)
    torch.manual_seed(0)
    match = r"model YAML layer 0 \(RevCol\): argument 'checkpoint_every' \(2\) is ignored"
    with pytest.warns(FutureWarning, match=match):
        old = build(edit_args(base_yaml, checkpoint_every=2))
    assert "checkpoint_every" not in vars(old.model[0])
    assert all(torch.equal(a, b) for a, b in zip(shipped.state_dict().values(), old.state_dict().values()))


def test_registration_is_idempotent():
    from ultralytics.nn import tasks

    reg.register()
    first = tasks.parse_model
    reg.register()
    assert tasks.parse_model is first
    assert not getattr(first.__wrapped__, reg._MARK, False)  # wrapped exactly once


def test_unsupported_ultralytics_version_is_named(monkeypatch):
    import ultralytics

    monkeypatch.setattr(ultralytics, "__version__", "8.5.1")
    with pytest.raises(reg.UnsupportedUltralyticsError, match=r"ultralytics>=8\.4\.0,<8\.5\.0.*8\.5\.1 is installed"):
        reg.register()


def test_yaml_without_revcol_is_untouched():
    from yolo_revcol.integration.yaml_args import expand_revcol_rows

    d = {"backbone": [[-1, 1, "Conv", [64, 3, 2]]], "head": []}
    assert expand_revcol_rows(d, 3) is d


def edit(d: dict, layer: int, value) -> dict:
    """Copy of ``d`` whose backbone row ``layer`` is replaced by ``value``."""
    d = copy.deepcopy(d)
    d["backbone"][layer] = value
    return d


def edit_args(d: dict, **changes) -> dict:
    """Copy of ``d`` with some RevCol arguments replaced: positional ones by name, the others in the options map."""
    d = copy.deepcopy(d)
    args = d["backbone"][0][3]
    positional = ["channels", "layers", "columns"]
    for k, v in changes.items():
        if k in positional:
            args[positional.index(k)] = v
        else:
            args[3][k] = v
    return d


@pytest.mark.parametrize(
    "change, match",
    [
        (
            lambda d: edit_args(d, channels=[64, 128, 256]),
            r"layer 0 \(RevCol\).*'channels' must be a list of 4.*\[64, 128, 256\]",
        ),
        (lambda d: edit_args(d, layers=[3, 3, "9", 3]), r"layer 0 \(RevCol\).*'layers' must hold integers >= 1.*'9'"),
        (lambda d: edit_args(d, kernel=4), r"layer 0 \(RevCol\).*'kernel' must be odd, got 4"),
        (
            lambda d: edit_args(d, block="convnext", mlp_ratio="big"),
            r"layer 0 \(RevCol\).*'mlp_ratio' must be a number > 0, got 'big'",
        ),
        (
            lambda d: edit_args(d, drop_path=1.5),
            r"layer 0 \(RevCol\).*'drop_path' must be a number in \[0, 1\), got 1.5",
        ),
        (
            lambda d: edit_args(d, columns={"s": 2}),
            r"layer 0 \(RevCol\): argument 'columns' \{'s': 2\} has no entry for scale 'n'",
        ),
        (lambda d: edit_args(d, columns=0), r"layer 0 \(RevCol\).*'columns' must be an integer >= 1, got 0"),
        (lambda d: edit_args(d, aux=-0.5), r"layer 0 \(RevCol\).*'aux' must be a number >= 0 \(0: off\), got -0.5"),
        (
            lambda d: edit(d, 0, [-1, 1, "RevCol", [[64, 128, 256, 512], [1, 1, 1, 1], 2, 3, None, 0.0, True, 2]]),
            r"layer 0 \(RevCol\): takes at most 7 positional arguments .*reversible'\], got 8.* by name .*"
            r"used to be checkpoint_every",
        ),
        (
            lambda d: edit_args(d, columns=1, aux=0.5),
            r"layer 0 \(RevCol\).*'aux' supervises the columns before the last",
        ),
        (
            lambda d: edit(d, 0, [-1, 1, "RevCol", [[64, 128, 256, 512], [1, 1, 1, 1], 2, {"reversable": False}]]),
            r"layer 0 \(RevCol\): unknown option 'reversable' \(value False\)",
        ),
        (
            lambda d: edit(d, 0, [-1, 1, "RevCol", [[64, 128, 256, 512], [1, 1, 1, 1], 2, {"reversible": "no"}]]),
            r"layer 0 \(RevCol\).*'reversible' must be true or false, got 'no'",
        ),
        (
            lambda d: edit(d, 0, [-1, 1, "RevCol", [[64, 128, 256, 512], [1, 1, 1, 1]]]),
            r"layer 0 \(RevCol\): missing required argument\(s\) columns",
        ),
        (
            lambda d: edit(
                d,
                0,
                [
                    -1,
                    1,
                    "RevCol",
                    [[64, 128, 256, 512], [1, 1, 1, 1], 2, 3, 4, 0.0, True, 0, 1e-6, "c2f", "yolo", 0.5, None]
                    + ["dw", 0.0, 9],
                ],
            ),
            r"layer 0 \(RevCol\): takes at most 7 positional arguments",
        ),
        (
            lambda d: edit(d, 0, [-1, 1, "RevCol", [[64, 128, 256, 512], [1, 1, 1, 1], 2, {"block": "resnet"}]]),
            r"layer 0 \(RevCol\).*'block' must be one of convnext, c2f, inverted, got 'resnet'",
        ),
        (
            lambda d: edit(d, 0, [-1, 1, "RevCol", [[64, 128, 256, 512], [1, 1, 1, 1], 2, {"stem": "conv"}]]),
            r"layer 0 \(RevCol\).*'stem' must be one of patchify, yolo, got 'conv'",
        ),
        (
            lambda d: edit(d, 0, [-1, 1, "RevCol", [[64, 128, 256, 512], [1, 1, 1, 1], 2, 3, 4, {"block": "c2f"}]]),
            r"layer 0 \(RevCol\).*'mlp_ratio' is not used by block 'c2f', got 4",
        ),
        (
            lambda d: edit(d, 1, [0, 1, "Index", [256, 1]]),
            r"layer 1 \(Index\): channels 256 do not match RevCol level 1, which has 128",
        ),
        (lambda d: edit(d, 1, [0, 1, "Index", [128, 4]]), r"layer 1 \(Index\): index 4 is out of range"),
        (
            lambda d: edit(d, 1, [0, 1, "Conv", [128, 3, 2]]),
            r"layer 1 \(Conv\): takes RevCol layer 0's list of maps directly",
        ),
    ],
)
def test_bad_revcol_rows_name_layer_argument_and_value(base_yaml, change, match):
    with pytest.raises(ModelYAMLError, match=match):
        build(change(base_yaml))


def test_revcol_must_be_first_layer(base_yaml):
    d = copy.deepcopy(base_yaml)
    d["backbone"].insert(0, [-1, 1, "Conv", [3, 1, 1]])
    d["backbone"][1][0] = -1
    with pytest.raises(ModelYAMLError, match=r"layer 1 \(RevCol\): RevCol must be layer 0 with from=-1"):
        build(d)


@pytest.mark.parametrize("block", ["convnext", "c2f"])
def test_ultralytics_fuse_also_fuses_revcol_exactly(base_yaml, block):
    d = copy.deepcopy(base_yaml)
    options = {"block": block, "stem": "yolo"} if block == "c2f" else {"block": block, "mlp_ratio": 4}
    d["backbone"][0][3] = d["backbone"][0][3][:3] + [options]
    model = build(d).eval()
    g = torch.Generator().manual_seed(0)
    with torch.no_grad():  # trained-looking norms and layer scales, so that folding them is not trivial
        for m in model.modules():
            if isinstance(m, torch.nn.BatchNorm2d):
                m.running_mean.normal_(0, 0.1, generator=g)
                m.running_var.uniform_(0.5, 1.5, generator=g)
                m.weight.uniform_(0.5, 1.5, generator=g)
            elif isinstance(m, torch.nn.LayerNorm) and m.weight is not None:
                m.weight.uniform_(0.5, 1.5, generator=g)
    x = torch.rand(1, 3, 64, 64, generator=g)
    params = {id(p): (p, p.detach().clone()) for p in model.parameters()}  # holding p keeps its id unique
    with torch.no_grad():
        before = model(x)[0]
        model.fuse(verbose=False)
        after = model(x)[0]
    revcol = model.model[0]
    fused = [n for n, p in model.named_parameters() if id(p) not in params or not torch.equal(p, params[id(p)][1])]
    assert any(n.startswith("model.0.") for n in fused)
    assert [n for n in fused if model.get_parameter(n).requires_grad] == []  # as Ultralytics' own fused convs
    assert not any(isinstance(m, torch.nn.BatchNorm2d) for m in model.modules())
    if block == "convnext":
        assert all(b.norm.weight is None for b in revcol.modules() if type(b).__name__ == "ConvNeXtBlock")
    torch.testing.assert_close(after, before, rtol=1e-4, atol=1e-4)
    assert getattr(type(model).fuse, "_yolo_revcol_wrapped", False)
    reg.register()  # registering again does not wrap twice
    assert not getattr(type(model).fuse.__wrapped__, "_yolo_revcol_wrapped", False)
