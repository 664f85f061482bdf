"""Official RevCol checkpoints (megvii-research/RevCol): key mapping, file layouts, errors, numerical agreement, and
training from them through the ``weights`` option of a model YAML.

The official state dicts here are made from random tensors with the official names and shapes, and the reference
forward below is written from the official module definitions with torch.nn.functional (channels-last LayerNorm and
Linear layers after a permute, as the official code does), independently of the package's modules.
"""

from __future__ import annotations

import sys
import types

import pytest
import torch
import torch.nn.functional as F
from conftest import relative_error

from yolo_revcol import RevCol
from yolo_revcol.nn.official import OfficialCheckpointError, official_key_map, official_state_dict

TINY = dict(channels=[8, 16, 32, 64], layers=[1, 1, 2, 1], columns=2)
EPS = 1e-6  # every LayerNorm of the official code


def official_state(channels, layers, columns, kernel=3, c1=3, seed=0, zeros=False) -> dict[str, torch.Tensor]:
    """Random tensors (or zeros) under the official names and shapes (``FullNet`` of models/revcol.py, expansion 4)."""
    g = torch.Generator().manual_seed(seed)

    def r(*shape, mean=0.0, std=0.2):
        return torch.zeros(shape) if zeros else mean + std * torch.randn(*shape, generator=g)

    c0 = channels[0]
    sd = {"stem.0.weight": r(c0, c1, 4, 4), "stem.0.bias": r(c0), "stem.1.weight": r(c0, mean=1), "stem.1.bias": r(c0)}
    for i in range(columns):
        for lv, c in enumerate(channels):
            p = f"subnet{i}.level{lv}"
            sd[f"subnet{i}.alpha{lv}"] = r(1, c, 1, 1, mean=0.5, std=0.1)
            if lv > 0:  # fusion.down: 2x2 stride-2 conv + channels-first LayerNorm
                sd.update({f"{p}.fusion.down.0.weight": r(c, channels[lv - 1], 2, 2), f"{p}.fusion.down.0.bias": r(c)})
                sd.update({f"{p}.fusion.down.1.weight": r(c, mean=1), f"{p}.fusion.down.1.bias": r(c)})
            if i > 0 and lv < 3:  # fusion.up: Linear + channels-last LayerNorm
                up = f"{p}.fusion.up.channel_reschedule"
                sd.update({f"{up}.0.weight": r(c, channels[lv + 1]), f"{up}.0.bias": r(c)})
                sd.update({f"{up}.1.weight": r(c, mean=1), f"{up}.1.bias": r(c)})
            for j in range(layers[lv]):
                b = f"{p}.blocks.{j}"
                sd.update({f"{b}.dwconv.weight": r(c, 1, kernel, kernel), f"{b}.dwconv.bias": r(c)})
                sd.update({f"{b}.norm.weight": r(c, mean=1), f"{b}.norm.bias": r(c)})
                sd.update({f"{b}.pwconv1.weight": r(4 * c, c), f"{b}.pwconv1.bias": r(4 * c)})
                sd.update({f"{b}.pwconv2.weight": r(c, 4 * c), f"{b}.pwconv2.bias": r(c)})
                sd[f"{b}.gamma"] = r(c, mean=0.5)  # far from the 1e-6 init, so every block matters
    return sd


def heads(channels, seed=1) -> dict[str, torch.Tensor]:
    """A few pretraining-head tensors (classifier, decoder) as the classification releases hold them."""
    g = torch.Generator().manual_seed(seed)
    c = channels[-1]
    return {
        "cls_blocks.0.classifier.0.weight": torch.randn(c, generator=g),
        "cls_blocks.0.classifier.1.weight": torch.randn(10, c, generator=g),
        "decoder_blocks.0.projback.0.weight": torch.randn(48, channels[0], 1, 1, generator=g),
    }


# ---------------------------------------------------------------------------------------------- functional reference
def ln_channels_first(x, w, b):
    """The official LayerNorm(data_format="channels_first")."""
    u = x.mean(1, keepdim=True)
    s = (x - u).pow(2).mean(1, keepdim=True)
    return w[:, None, None] * ((x - u) / torch.sqrt(s + EPS)) + b[:, None, None]


def ref_block(sd, p, x):
    """ConvNextBlock: dwconv, permute, LayerNorm, Linear, GELU, Linear, gamma, permute back, residual."""
    w = sd[f"{p}.dwconv.weight"]
    y = F.conv2d(x, w, sd[f"{p}.dwconv.bias"], padding=(w.shape[-1] - 1) // 2, groups=x.shape[1]).permute(0, 2, 3, 1)
    y = F.layer_norm(y, (x.shape[1],), sd[f"{p}.norm.weight"], sd[f"{p}.norm.bias"], EPS)
    y = F.gelu(F.linear(y, sd[f"{p}.pwconv1.weight"], sd[f"{p}.pwconv1.bias"]))  # exact (erf) GELU, as nn.GELU()
    y = sd[f"{p}.gamma"] * F.linear(y, sd[f"{p}.pwconv2.weight"], sd[f"{p}.pwconv2.bias"])
    return x + y.permute(0, 3, 1, 2)


def ref_level(sd, i, lv, layers, c_down, c_up):
    """Level: Fusion (down, plus up of the previous column's coarser state) then the blocks."""
    p = f"subnet{i}.level{lv}"
    x = c_down
    if lv > 0:
        x = F.conv2d(x, sd[f"{p}.fusion.down.0.weight"], sd[f"{p}.fusion.down.0.bias"], stride=2)
        x = ln_channels_first(x, sd[f"{p}.fusion.down.1.weight"], sd[f"{p}.fusion.down.1.bias"])
    if i > 0 and lv < 3:
        up = f"{p}.fusion.up.channel_reschedule"
        y = F.linear(c_up.permute(0, 2, 3, 1), sd[f"{up}.0.weight"], sd[f"{up}.0.bias"])
        y = F.layer_norm(y, (y.shape[-1],), sd[f"{up}.1.weight"], sd[f"{up}.1.bias"], EPS).permute(0, 3, 1, 2)
        x = F.interpolate(y, scale_factor=2, mode="nearest") + x
    for j in range(layers[lv]):
        x = ref_block(sd, f"{p}.blocks.{j}", x)
    return x


def reference_forward(sd, layers, columns, img):
    """FullNet without heads: stem, then c_l = alpha_l * c_l + level_l(c_{l-1}, c_{l+1}) column by column."""
    x = F.conv2d(img, sd["stem.0.weight"], sd["stem.0.bias"], stride=4)
    x = ln_channels_first(x, sd["stem.1.weight"], sd["stem.1.bias"])
    c = [0, 0, 0, 0]
    for i in range(columns):
        down = x
        for lv in range(4):
            body = ref_level(sd, i, lv, layers, down, c[lv + 1] if lv < 3 else None)
            c[lv] = sd[f"subnet{i}.alpha{lv}"] * c[lv] + body  # the first column's alphas multiply zeros
            down = c[lv]
    return c


# ---------------------------------------------------------------------------------------------------------- tests
def test_from_official_reads_the_architecture_and_round_trips_every_tensor():
    sd = official_state(**TINY, kernel=5)
    model = RevCol.from_official(sd)
    assert model.channels == TINY["channels"] and len(model.columns) == TINY["columns"]
    assert [len(lv.blocks) for lv in model.columns[0].levels] == TINY["layers"]
    assert model.columns[0].levels[0].blocks[0].dwconv.kernel_size == (5, 5)
    assert model.block == "convnext" and model.official_load.loaded == len(sd) - 4  # column 0's alphas are unused
    assert model.official_load.skipped == 4

    mapping = official_key_map(model)
    assert sorted(mapping) == sorted(k for k in sd if not k.startswith("subnet0.alpha"))
    ours = model.state_dict()
    assert sorted(mapping.values()) == sorted(n for n, _ in model.named_parameters())  # nothing left at its init
    for theirs, mine in mapping.items():  # Linear (out, in) -> 1x1 conv, alpha (1, C, 1, 1) -> (C,)
        torch.testing.assert_close(ours[mine].reshape(sd[theirs].shape), sd[theirs], rtol=0, atol=0, msg=theirs)
    back = official_state_dict(model)
    assert sorted(back) == sorted(sd)
    for k in mapping:
        assert torch.equal(back[k], sd[k]), k


def test_last_column_matches_the_official_forward():
    sd = official_state(**TINY)
    model = RevCol.from_official(sd).eval()
    img = torch.randn(2, 3, 32, 32, generator=torch.Generator().manual_seed(2))
    with torch.no_grad():
        got = model(img)
        want = reference_forward(sd, TINY["layers"], TINY["columns"], img)
    assert [tuple(t.shape) for t in got] == [tuple(t.shape) for t in want]
    err = relative_error(want, got)
    assert err <= 1e-5, err
    assert all(relative_error([w], [g]) <= 1e-5 for w, g in zip(want, got))


def test_release_layout_prefers_ema_weights_and_skips_heads():
    model_sd, ema_sd = official_state(**TINY, seed=0), official_state(**TINY, seed=1)
    release = {"model": {**model_sd, **heads(TINY["channels"])}, "state_dict_ema": ema_sd, "optimizer": {}, "epoch": 3}
    ema = RevCol.from_official(release)
    assert "state_dict_ema" in ema.official_load.source and ema.official_load.skipped == 4
    assert torch.equal(official_state_dict(ema)["stem.0.weight"], ema_sd["stem.0.weight"])
    plain = RevCol.from_official(release, key="model")
    assert plain.official_load.skipped == 4 + 3  # first column's alphas and the three head tensors
    assert torch.equal(official_state_dict(plain)["stem.0.weight"], model_sd["stem.0.weight"])
    no_ema = RevCol.from_official({**release, "state_dict_ema": None})  # trained without EMA
    assert "'model'" in no_ema.official_load.source
    with pytest.raises(OfficialCheckpointError, match="no state dict under key 'nope'"):
        RevCol.from_official(release, key="nope")


def test_detection_layout_with_backbone_prefix_loads_into_an_existing_model(tmp_path, monkeypatch):
    sd = official_state(**TINY)
    det = {f"backbone.{k}": v for k, v in sd.items()}
    det.update({"neck.lateral_convs.0.conv.weight": torch.zeros(4, 8, 1, 1), "rpn_head.rpn_conv.bias": torch.zeros(4)})
    # Saved as a file next to a pickled object of a class that cannot be imported when loading (as the releases
    # pickle their yacs config): read with the weights-only unpickler all the same.
    config = types.ModuleType("revcol_fake_yacs")
    config.CfgNode = type("CfgNode", (dict,), {"__module__": "revcol_fake_yacs"})
    monkeypatch.setitem(sys.modules, "revcol_fake_yacs", config)
    path = tmp_path / "cascade_mask_rcnn_revcol.pth"
    torch.save({"state_dict": det, "meta": {"epoch": 36}, "config": config.CfgNode(lr=2e-4)}, path)
    monkeypatch.delitem(sys.modules, "revcol_fake_yacs")

    model = RevCol(3, **TINY, block="convnext", stem="patchify")
    record = model.load_official(path)
    assert record.loaded == len(sd) - 4 and record.skipped == 2 + 4 and str(path) in record.source
    assert all(torch.equal(official_state_dict(model)[k], sd[k]) for k in official_key_map(model))


def test_wrong_architecture_fails_naming_the_key_and_both_shapes():
    model = RevCol(3, [8, 16, 32, 48], TINY["layers"], TINY["columns"])
    before = {k: v.clone() for k, v in model.state_dict().items()}
    with pytest.raises(OfficialCheckpointError) as e:
        model.load_official(official_state(**TINY))
    msg = str(e.value)
    assert "'subnet0.level3.fusion.down.0.weight'" in msg and "(64, 32, 2, 2)" in msg and "(48, 32, 2, 2)" in msg
    assert all(torch.equal(v, before[k]) for k, v in model.state_dict().items())  # nothing half-loaded

    with pytest.raises(OfficialCheckpointError, match=r"key 'subnet2\.[^']+' has no place.*3 columns.*2 columns"):
        RevCol(3, **TINY).load_official(official_state(**{**TINY, "columns": 3}))
    with pytest.raises(OfficialCheckpointError, match="block='convnext' and stem='patchify'"):
        RevCol(3, **TINY, block="c2f").load_official(official_state(**TINY))


def test_truncated_checkpoints_fail_naming_the_key_or_file(tmp_path):
    sd = official_state(**TINY)
    del sd["subnet1.level2.blocks.1.pwconv2.bias"]
    with pytest.raises(OfficialCheckpointError, match="lacks key 'subnet1.level2.blocks.1.pwconv2.bias'"):
        RevCol.from_official(sd)

    path = tmp_path / "revcol_tiny_1k.pth"
    torch.save({"model": official_state(**TINY)}, path)
    path.write_bytes(path.read_bytes()[: path.stat().st_size // 2])  # an interrupted download
    with pytest.raises(OfficialCheckpointError, match="cannot read official RevCol checkpoint .*revcol_tiny_1k.pth"):
        RevCol.from_official(path)
    with pytest.raises(OfficialCheckpointError, match="not found"):
        RevCol.from_official(tmp_path / "missing.pth")


# ------------------------------------------------------------------------------------ the weights option of a YAML
def tiny_model_yaml(tmp_path, weights, channels=(8, 16, 32, 64)) -> dict:
    """A small YOLOv8 model dictionary (stock neck and head, literal widths) whose RevCol row loads ``weights``."""
    c = list(channels)
    row = [c, TINY["layers"], TINY["columns"], {"block": "convnext", "stem": "patchify", "weights": str(weights)}]
    return {
        "nc": 3,
        "depth_multiple": 1.0,
        "width_multiple": 1.0,
        "backbone": [[-1, 1, "RevCol", row], [0, 1, "Index", [c[1], 1]], [0, 1, "Index", [c[2], 2]],
                     [0, 1, "Index", [c[3], 3]], [-1, 1, "SPPF", [c[3], 5]]],
        "head": [
            [-1, 1, "nn.Upsample", [None, 2, "nearest"]], [[-1, 2], 1, "Concat", [1]], [-1, 1, "C2f", [c[2]]],
            [-1, 1, "nn.Upsample", [None, 2, "nearest"]], [[-1, 1], 1, "Concat", [1]], [-1, 1, "C2f", [c[1]]],
            [-1, 1, "Conv", [c[1], 3, 2]], [[-1, 7], 1, "Concat", [1]], [-1, 1, "C2f", [c[2]]],
            [-1, 1, "Conv", [c[2], 3, 2]], [[-1, 4], 1, "Concat", [1]], [-1, 1, "C2f", [c[3]]],
            [[10, 13, 16], 1, "Detect", ["nc"]],
        ],
    }  # fmt: skip


def build_detection(d: dict):
    """Build a DetectionModel from a model dictionary, as ``yolo train model=<yaml>`` does."""
    from ultralytics.nn.tasks import DetectionModel

    from yolo_revcol import register

    register()
    return DetectionModel(d, ch=3, verbose=False)


def test_weights_option_loads_at_build_and_fails_naming_the_layer(tmp_path):
    from yolo_revcol.integration.yaml_args import ModelYAMLError

    sd = official_state(**TINY)
    path = tmp_path / "revcol_tiny_1k.pth"
    torch.save({"model": sd}, path)
    revcol = build_detection(tiny_model_yaml(tmp_path, path)).model[0]
    assert revcol.official_load.loaded == len(sd) - 4
    assert all(torch.equal(official_state_dict(revcol)[k], sd[k]) for k in official_key_map(revcol))

    with pytest.raises(ModelYAMLError, match=r"layer 0 \(RevCol\): RevCol argument 'weights'.*'nothing.pth' not found"):
        build_detection(tiny_model_yaml(tmp_path, "nothing.pth"))
    wrong = tiny_model_yaml(tmp_path, path, channels=(8, 16, 32, 48))
    match = r"layer 0 \(RevCol\): argument 'weights'.*channels \[8, 16, 32, 64\] \(here \[8, 16, 32, 48\]\)"
    with pytest.raises(ModelYAMLError, match=match):
        build_detection(wrong)
    c2f = tiny_model_yaml(tmp_path, path)
    c2f["backbone"][0][3][3]["block"] = "c2f"
    with pytest.raises(ModelYAMLError, match=r"layer 0 \(RevCol\).*'weights'.*needs block convnext"):
        build_detection(c2f)


def test_yolo_train_starts_from_the_loaded_official_weights(tiny_data, tmp_path):
    import yaml
    from ultralytics import YOLO

    sd = official_state(**TINY)
    weights = tmp_path / "revcol_tiny_1k.pth"
    torch.save({"model": {**sd, **heads(TINY["channels"])}, "state_dict_ema": None, "epoch": 299}, weights)
    model_yaml = tmp_path / "yolov8-revcol-tiny.yaml"
    model_yaml.write_text(yaml.safe_dump(tiny_model_yaml(tmp_path, weights), sort_keys=False))

    starts = {}

    def grab(trainer):
        starts.update(official_state_dict(trainer.model.model[0]))

    model = YOLO(str(model_yaml))
    model.add_callback("on_train_start", grab)
    model.train(data=str(tiny_data), project=str(tmp_path), name="official", epochs=1, imgsz=64, batch=4,
                workers=0, device="cpu", seed=0, plots=False)  # fmt: skip
    keys = official_key_map(model.trainer.model.model[0])
    assert starts and all(torch.equal(starts[k], sd[k]) for k in keys)  # training began from the file's tensors
    trained = official_state_dict(model.trainer.model.model[0])
    assert any(not torch.equal(trained[k], sd[k]) for k in keys)  # and moved them
    saved = torch.load(tmp_path / "official" / "weights" / "last.pt", weights_only=False)["model"].model[0]
    assert saved.weights == str(weights) and saved.official_load is None  # the load record is not pickled


# ----------------------------------------------------------------------------------- the paper's T/S/B model YAMLs
# Channels, blocks per level, columns (models/revcol.py) and drop path (Detection/configs/revcol/*_3x_in1k.py)
PAPER = {
    "t": ([64, 128, 256, 512], [2, 2, 4, 2], 4, 0.3),
    "s": ([64, 128, 256, 512], [2, 2, 4, 2], 8, 0.4),
    "b": ([72, 144, 288, 576], [1, 1, 3, 2], 16, 0.4),
}


def paper_yaml(variant: str) -> dict:
    """The model dictionary of cfg/yolov8-revcol-<variant>.yaml."""
    import yaml
    from conftest import CFG

    return yaml.safe_load((CFG / f"revcol-{variant}-yolov8.yaml").read_text())


@pytest.mark.parametrize("variant", PAPER)
def test_paper_yamls_hold_the_published_rows(variant):
    from yolo_revcol.integration.yaml_args import ARG_NAMES, expand_revcol_rows

    d = expand_revcol_rows(paper_yaml(variant), 3)  # as parse_model receives it: after scaling (none here)
    args = dict(zip(("c1", *ARG_NAMES), d["backbone"][0][3]))
    channels, layers, columns, drop_path = PAPER[variant]
    assert (args["channels"], args["layers"], args["columns"], args["kernel"]) == (channels, layers, columns, 3)
    assert (args["block"], args["stem"], args["drop_path"]) == ("convnext", "patchify", drop_path)
    assert args["reversible"] is True and args["weights"] is None  # the exact reverse pass: memory flat in columns
    assert [row[3] for row in d["backbone"][1:4]] == [[channels[i], i] for i in (1, 2, 3)]


def test_paper_yaml_checks_its_checkpoint_before_anything_is_built(tmp_path):
    from yolo_revcol.integration.yaml_args import ARG_NAMES, ModelYAMLError, expand_revcol_rows

    path = tmp_path / "revcol_tiny_1k.pth"
    torch.save({"model": official_state(*PAPER["t"][:3], zeros=True)}, path)  # only names and shapes matter here
    d = paper_yaml("t")
    d["backbone"][0][3][-1]["weights"] = str(path)
    row = expand_revcol_rows(d, 3)["backbone"][0][3]
    assert str(row[1 + ARG_NAMES.index("weights")]) == str(path)  # passed on to RevCol, which loads it
    d["backbone"][0][3][2] = 8  # RevCol-S's column count with RevCol-T's file
    with pytest.raises(ModelYAMLError, match=r"layer 0 \(RevCol\): argument 'weights'.*columns 4 \(here 8\)"):
        expand_revcol_rows(d, 3)


def test_compare_paper_writes_the_table_and_readme_block(tmp_path, monkeypatch):
    from yolo_revcol.tools import compare

    sizes = {"yolov8m": (25_902_640, 79.3), "yolov8l": (43_691_520, 165.7), "yolov8x": (68_229_648, 258.5)}
    sizes.update({"revcol-t-yolov8": (36_684_928, 91.1), "revcol-s-yolov8": (66_797_184, 165.6)})
    sizes["revcol-b-yolov8"] = (152_869_048, 313.7)

    def fake_summarize(yaml, name, imgsz):  # building RevCol-B takes long; the pairing and the table are tested here
        return compare.Summary(name, 1, *sizes[name], imgsz=imgsz)

    monkeypatch.setattr(compare, "summarize", fake_summarize)
    readme = tmp_path / "README.md"
    readme.write_text("a\n<!-- compare-paper:start -->\nold\n<!-- compare-paper:end -->\nb\n")
    assert compare.main(["--paper", "--out", str(tmp_path), "--readme", str(readme)]) == 0
    text = readme.read_text()
    assert "old" not in text and "| S | yolov8l | 1 | 43.69 | 165.7 |  |  |" in text
    assert "| S | revcol-s-yolov8 | 1 | 66.80 | 165.6 | 1.529 | 0.999 |" in text
    rows = [r.split(",") for r in (tmp_path / "compare_paper.csv").read_text().splitlines()]
    assert [r[1] for r in rows[1:]] == [
        "yolov8m",
        "revcol-t-yolov8",
        "yolov8l",
        "revcol-s-yolov8",
        "yolov8x",
        "revcol-b-yolov8",
    ]
    assert {r[7] for r in rows[1:]} == {""}  # no target for the paper's models
