"""Reconstruction supervision (``recon``): decoders on earlier columns, training only, exact reversible gradients."""

from __future__ import annotations

import csv

import pytest
import torch
import yaml
from conftest import BIN, CFG, relative_error, run
from test_aux import build, fake_batch, with_hyp

from yolo_revcol import RevCol
from yolo_revcol.integration.aux import revcol_of


def with_options(**options) -> dict:
    """cfg/yolov8-revcol.yaml with ``options`` added to its RevCol row."""
    d = yaml.safe_load((CFG / "yolov8-revcol.yaml").read_text())
    d["backbone"][0][3][3].update(options)
    return d


def test_decoders_rebuild_a_stride4_image_with_falling_weights():
    model = RevCol(3, [8, 16, 24, 32], [1, 1, 1, 1], 4, block="c2f", recon=3.0).train()
    assert model.supervised_columns == [0, 1, 2] and model.recon_weights == [3.0, 2.25, 1.5]
    assert len(model.recon_decoders) == 3 and model.aux_heads is None
    x = torch.rand(2, 3, 64, 96)
    model(x)
    loss = model.pop_recon_loss()
    assert loss.ndim == 0 and loss > 0 and model.pop_recon_loss() is None
    assert model.recon_decoders[0](torch.zeros(2, 32, 2, 3)).shape == (2, 3, 16, 24)  # stride 32 -> stride 4
    model.eval()
    model(x)
    assert model.pop_recon_loss() is None  # evaluation never runs them


@pytest.mark.parametrize(
    "kwargs, match",
    [
        (dict(recon=-1), "RevCol argument 'recon' must be a number >= 0 \\(0: off\\), got -1"),
        (dict(recon="yes"), "RevCol argument 'recon' must be a number >= 0 \\(0: off\\), got 'yes'"),
        (
            dict(recon=1.0, columns=1),
            "RevCol argument 'recon' supervises the columns before the last, but columns is 1",
        ),
    ],
)
def test_bad_values_are_named(kwargs, match):
    args = {**dict(c1=3, channels=[8, 16, 24, 32], layers=[1, 1, 1, 1], columns=2), **kwargs}
    with pytest.raises(ValueError, match=match):
        RevCol(**args)


@pytest.mark.parametrize("options", [dict(recon=1.0), dict(recon=1.0, aux=0.5)], ids=["recon", "recon+aux"])
def test_detection_model_gradients_reversible_equal_plain_fp64(options):
    torch.manual_seed(0)
    model = with_hyp(build(with_options(**options))).double().train()
    batch = fake_batch(dtype=torch.float64)

    def grads():
        model.zero_grad(set_to_none=True)
        total, items = model.loss(batch)
        total.sum().backward()
        return items, [p.grad if p.grad is not None else torch.zeros_like(p) for p in model.parameters()]

    items, reversible = grads()
    assert float(items["recon_loss"]) > 0
    revcol = revcol_of(model)
    assert all(p.grad is not None and p.grad.abs().sum() > 0 for p in revcol.recon_decoders.parameters())
    revcol.reversible = False
    _, plain = grads()
    assert relative_error(plain, reversible) < 1e-9


def test_training_only_nothing_in_the_inference_model_or_export(tmp_path, monkeypatch):
    import onnx
    from ultralytics import YOLO

    with_recon, plain = build(with_options(recon=1.0)), build(with_options())
    count = lambda m: sum(p.numel() for p in m.parameters())  # noqa: E731
    assert count(with_recon) > count(plain)
    with_recon.eval().fuse(verbose=False)
    plain.eval().fuse(verbose=False)
    assert count(with_recon) == count(plain) and revcol_of(with_recon).recon_decoders is None

    monkeypatch.chdir(tmp_path)
    sizes = []
    for name, d in (("yolov8n-revcol-recon.yaml", with_options(recon=1.0)), ("yolov8n-revcol.yaml", with_options())):
        (tmp_path / name).write_text(yaml.safe_dump(d, sort_keys=False))
        path = YOLO(str(tmp_path / name)).export(format="onnx", imgsz=64, simplify=False, verbose=False)
        sizes.append(sum(int(torch.tensor(t.dims).prod()) for t in onnx.load(path).graph.initializer))
    assert sizes[0] == sizes[1]


def test_yolo_train_logs_the_reconstruction_loss(tiny_data, tmp_path):
    model = tmp_path / "yolov8n-revcol-recon.yaml"
    model.write_text(yaml.safe_dump(with_options(recon=1.0, aux=0.5), sort_keys=False))
    args = f"model={model} data={tiny_data} epochs=1 imgsz=64 batch=4 device=cpu workers=0 plots=False"
    run([str(BIN / "yolo"), "train", *args.split(), f"project={tmp_path}", "name=recon"], cwd=tmp_path)
    (row,) = list(csv.DictReader(open(tmp_path / "recon" / "results.csv")))
    assert float(row["train/recon_loss"]) > 0 and float(row["val/recon_loss"]) == 0
