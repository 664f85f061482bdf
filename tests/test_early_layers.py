"""Fewer (or more) blocks in the columns before the last (``early_layers``): shapes, cost, checks, exactness, YAML."""

from __future__ import annotations

import copy
import math
import pickle

import pytest
import torch
import yaml
from conftest import CFG, assert_fuse_is_exact, assert_onnx_matches_eager
from test_revcol_core import assert_reversible_equals_plain, randomize_batchnorms

from yolo_revcol import RevCol
from yolo_revcol.nn import DropPath

EARLY = dict(c1=3, channels=[8, 16, 24, 32], layers=[1, 2, 3, 1], columns=3, stem="yolo", early_layers=[1, 1, 1, 1])


def n_params(module: torch.nn.Module) -> int:
    return sum(p.numel() for p in module.parameters())


def depths(model: RevCol) -> list[list[int]]:
    """Blocks per level of every column (c2f: bottlenecks of the level's C2f)."""
    return [[level.depth for level in column.levels] for column in model.columns]


def with_options(**options) -> dict:
    """cfg/yolov8-revcol.yaml with ``options`` added to its RevCol row."""
    d = yaml.safe_load((CFG / "yolov8-revcol.yaml").read_text())
    d["backbone"][0][3][3].update(options)
    return d


def build_detection(d: dict, scale: str = "n"):
    from ultralytics.nn.tasks import DetectionModel

    return DetectionModel(dict(copy.deepcopy(d), scale=scale), nc=8, verbose=False)


@pytest.mark.parametrize("block", ["c2f", "inverted", "convnext"])
def test_early_columns_run_their_blocks_and_the_outputs_keep_their_shapes(block):
    x = torch.randn(2, 3, 64, 96)
    early, full = RevCol(**dict(EARLY, block=block)), RevCol(**dict(EARLY, block=block, early_layers=None))
    assert depths(early) == [[1, 1, 1, 1], [1, 1, 1, 1], [1, 2, 3, 1]]
    assert depths(full) == [[1, 2, 3, 1]] * 3 and full.early_layers is None
    assert [o.shape for o in early(x)] == [o.shape for o in full(x)]
    assert [tuple(o.shape) for o in early(x)] == [
        (2, c, 64 // s, 96 // s) for c, s in zip(EARLY["channels"], (4, 8, 16, 32))
    ]
    more = RevCol(**dict(EARLY, block=block, early_layers=[2, 3, 4, 2]))  # more blocks than `layers` is allowed
    assert depths(more)[:2] == [[2, 3, 4, 2]] * 2 and depths(more)[2] == [1, 2, 3, 1]


def test_early_layers_equal_to_layers_build_the_default_model_bit_for_bit():
    torch.manual_seed(0)
    default = RevCol(**dict(EARLY, early_layers=None, block="c2f", drop_path=0.2))
    torch.manual_seed(0)
    same = RevCol(**dict(EARLY, early_layers=EARLY["layers"], block="c2f", drop_path=0.2))
    a, b = default.state_dict(), same.state_dict()
    assert list(a) == list(b) and all(torch.equal(a[k], b[k]) for k in a)
    assert [m.p for m in default.modules() if isinstance(m, DropPath)] == [
        m.p for m in same.modules() if isinstance(m, DropPath)
    ]


@pytest.mark.parametrize("block", ["inverted", "convnext"])
def test_parameters_fall_by_the_blocks_the_early_columns_drop(block):
    early, full = RevCol(**dict(EARLY, block=block)), RevCol(**dict(EARLY, block=block, early_layers=None))
    # One block of each level costs the same in every column; the early columns drop (layers - early) of them.
    per_block = [n_params(level.blocks[0]) for level in full.columns[-1].levels]
    dropped = sum((n - e) * p for n, e, p in zip(EARLY["layers"], EARLY["early_layers"], per_block))
    assert n_params(full) - n_params(early) == (EARLY["columns"] - 1) * dropped > 0
    assert n_params(early.columns[-1]) == n_params(full.columns[-1])  # the last column is untouched


def test_c2f_parameters_fall_and_the_last_column_is_untouched():
    early, full = RevCol(**dict(EARLY, block="c2f")), RevCol(**dict(EARLY, block="c2f", early_layers=None))
    assert n_params(early.columns[-1]) == n_params(full.columns[-1])
    assert n_params(early.columns[1]) < n_params(full.columns[1]) and n_params(early) < n_params(full)
    # An early column costs what the last column of a RevCol whose layers are early_layers costs (alphas aside).
    alone = RevCol(**dict(EARLY, block="c2f", layers=EARLY["early_layers"], early_layers=None))
    assert n_params(early.columns[1]) == n_params(alone.columns[1])


def test_drop_path_rises_over_each_columns_own_blocks():
    model = RevCol(**dict(EARLY, block="inverted", drop_path=0.3))
    for column, n in zip(model.columns, (4, 4, 7)):
        rates = [m.p for m in column.modules() if isinstance(m, DropPath)]
        assert rates == pytest.approx(torch.linspace(0, 0.3, n).tolist())


@pytest.mark.parametrize(
    "cfg",
    [
        dict(EARLY, block="c2f", drop_path=0.2),
        dict(EARLY, block="inverted", down="dw", drop_path=0.2),
        dict(EARLY, block="c2f", early_layers=[2, 1, 4, 2], columns=4),
    ],
    ids=["c2f-fewer", "inverted-fewer", "c2f-more-4col"],
)
def test_reversible_gradients_equal_plain_backprop_fp64(cfg):
    rev = assert_reversible_equals_plain(cfg)
    assert float(rev.reconstruction_error) == 0.0


def test_fuse_is_exact_and_folds_every_batchnorm():
    model = randomize_batchnorms(RevCol(**dict(EARLY, block="c2f"))).eval()
    assert_fuse_is_exact(model)
    assert depths(model) == [[1, 1, 1, 1], [1, 1, 1, 1], [1, 2, 3, 1]]


def test_onnx_export_matches_eager(tmp_path):
    assert_onnx_matches_eager(
        randomize_batchnorms(RevCol(**dict(EARLY, block="inverted", down="dw"))).eval().fuse(), tmp_path / "early.onnx"
    )


def test_pickles_keep_the_option_and_older_pickles_read_as_none():
    model = RevCol(**dict(EARLY, block="c2f"))
    assert pickle.loads(pickle.dumps(model)).early_layers == [1, 1, 1, 1]
    state = model.__getstate__()
    del state["early_layers"]  # as pickled before the option existed
    old = RevCol.__new__(RevCol)
    old.__setstate__(state)
    assert old.early_layers is None


def scaled_depth(n: int, depth: float) -> int:
    """Ultralytics' repeat rule, written out independently for the assertions."""
    return max(round(n * depth), 1) if n > 1 else n


@pytest.mark.parametrize("scale", ["n", "s", "m"])
def test_yaml_depth_scaling_follows_layers(scale):
    d = with_options(early_layers=[1, 2, 3, 6])
    depth = d["scales"][scale][0]
    model = build_detection(d, scale)
    revcol = model.model[0]
    last = [scaled_depth(n, depth) for n in d["backbone"][0][3][1]]
    early = [scaled_depth(n, depth) for n in [1, 2, 3, 6]]
    assert depths(revcol) == [early] * (len(revcol.columns) - 1) + [last]
    assert revcol.early_layers == early
    if scale in ("n", "s"):  # depth 0.33: the shipped 1/1/3/1 becomes 1/1/1/1, 1/2/3/6 becomes 1/1/1/2
        assert early == [1, 1, 1, 2] and last == [1, 1, 1, 1]
    else:  # depth 0.67
        assert early == [1, 1, 2, 4] and last == [1, 1, 2, 1] and math.isclose(depth, 0.67)


def test_yaml_round_trip_through_detection_model(tmp_path):
    from ultralytics.nn.tasks import DetectionModel

    d = with_options(early_layers=[1, 1, 1, 1])
    d["backbone"][0][3][1] = [2, 2, 6, 2]  # at depth 0.33: 1/1/2/1 in the last column
    path = tmp_path / "yolov8n-revcol-early.yaml"
    path.write_text(yaml.safe_dump(d, sort_keys=False))
    torch.manual_seed(0)
    model = DetectionModel(str(path), nc=8, verbose=False)
    revcol = model.model[0]
    assert depths(revcol) == [[1, 1, 1, 1], [1, 1, 2, 1]]
    assert model.yaml["backbone"][0][3][3]["early_layers"] == [1, 1, 1, 1]  # the YAML as written is kept
    torch.manual_seed(0)
    again = DetectionModel(model.yaml, nc=8, verbose=False)  # what a checkpoint rebuilds from
    a, b = model.state_dict(), again.state_dict()
    assert list(a) == list(b) and all(torch.equal(a[k], b[k]) for k in a)
    boxes = model.eval()(torch.zeros(1, 3, 64, 64))[0]
    assert boxes.shape == (1, 4 + 8, 8 * 8 + 4 * 4 + 2 * 2)
    d["backbone"][0][3][3].pop("early_layers")  # the same row with every column at layers costs more
    assert n_params(revcol) < n_params(build_detection(d, "n").model[0])


@pytest.mark.parametrize(
    "value, match",
    [
        (
            [1, 1, 1],
            r"'early_layers' must be a list of 4 integers >= 1 \(every level runs at least one block, .*\[1, 1, 1\]",
        ),
        ([1, 0, 1, 1], r"'early_layers' must be a list of 4 integers >= 1 .* got \[1, 0, 1, 1\]"),
        ([1, -1, 1, 1], r"'early_layers' .* got \[1, -1, 1, 1\]"),
        ([1, 1.5, 1, 1], r"'early_layers' .* got \[1, 1.5, 1, 1\]"),
        ([1, True, 1, 1], r"'early_layers' .* got \[1, True, 1, 1\]"),
        ("1111", r"'early_layers' .* got '1111'"),
        (2, r"'early_layers' .* got 2"),
    ],
)
def test_bad_values_are_named_with_the_layer(value, match):
    with pytest.raises(ValueError, match=r"model YAML layer 0 \(RevCol\): RevCol argument " + match):
        build_detection(with_options(early_layers=value))
    with pytest.raises(ValueError, match=match):
        RevCol(**dict(EARLY, early_layers=value))


def test_misspelled_option_suggests_early_layers():
    with pytest.raises(ValueError, match=r"layer 0 \(RevCol\): unknown option 'early_layer' .*did you mean 'early_l"):
        build_detection(with_options(early_layer=[1, 1, 1, 1]))


def test_one_column_has_no_early_columns_and_says_so():
    match = r"'early_layers' \(\[1, 1, 1, 1\]\) sets the columns before the last, but columns is 1: it would do nothing"
    with pytest.raises(ValueError, match=match):
        RevCol(**dict(EARLY, columns=1))
    d = with_options(early_layers=[1, 1, 1, 1])
    d["backbone"][0][3][2] = {"n": 1, "s": 2, "m": 2, "l": 2, "x": 2}
    with pytest.raises(ValueError, match=r"model YAML layer 0 \(RevCol\): RevCol argument " + match):
        build_detection(d, "n")
    assert depths(build_detection(d, "s").model[0])[0] == [1, 1, 1, 1]
    assert len(RevCol(**dict(EARLY, columns=1, early_layers=None)).columns) == 1


def test_official_weights_need_every_column_at_layers(tmp_path):
    fake = tmp_path / "revcol_t.pth"
    fake.write_bytes(b"")
    base = dict(EARLY, block="convnext", stem="patchify", weights=str(fake))
    with pytest.raises(
        ValueError, match=r"'weights' \(official checkpoint\) needs every column at 'layers' \[1, 2, 3, 1\]"
    ):
        RevCol.check_args(**base)
    assert RevCol.check_args(**dict(base, early_layers=[1, 2, 3, 1]))["early_layers"] == [1, 2, 3, 1]
