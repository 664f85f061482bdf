"""Stock YOLO weights into RevCol models: neck and head by structure, backbone untouched, a truthful count.

The stock checkpoints are made here from Ultralytics' own YAMLs (no download), with every tensor randomised so that
no tensor can equal a stock one by accident. The expected pairing is worked out from the YAML sections, not by the
code under test: the ``head`` sections correspond row by row, and the stock layers that close both ``backbone``
sections (SPPF, and C2PSA in YOLO11) correspond from the end.
"""

from __future__ import annotations

import logging
import re

import pytest
import torch
from conftest import BIN, CFG, run
from ultralytics import YOLO
from ultralytics.nn.tasks import load_checkpoint
from ultralytics.utils import LOGGER

from yolo_revcol.integration.transfer import revcol_section_end, structural_pairs

# (RevCol model YAML, stock counterpart, stock layers that end both backbone sections)
FAMILIES = {
    "detect": ("yolov8n-revcol.yaml", "yolov8n.yaml", 1),
    "segment": ("yolov8n-revcol-seg.yaml", "yolov8n-seg.yaml", 1),
    "pose": ("yolov8n-revcol-pose.yaml", "yolov8n-pose.yaml", 1),
    "obb": ("yolov8n-revcol-obb.yaml", "yolov8n-obb.yaml", 1),
    "classify": ("yolov8n-revcol-cls.yaml", "yolov8n-cls.yaml", 0),
    "yolo11": ("yolo11n-revcol.yaml", "yolo11n.yaml", 2),
}
TRANSFERRED = re.compile(r"Transferred (\d+)/(\d+) items from pretrained weights")


def randomize(model: torch.nn.Module, seed: int = 0) -> torch.nn.Module:
    """Give every parameter and buffer of ``model`` random values (fresh inits share values: ones, zeros)."""
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for t in model.state_dict().values():
            if t.is_floating_point():
                t.copy_(0.5 + torch.rand(t.shape, generator=g))  # positive: valid BatchNorm variances too
            else:
                t.fill_(int(torch.randint(1, 1000, (), generator=g)))
    return model


def stock_checkpoint(name: str, path, seed: int = 0):
    """Save a randomised stock model built from Ultralytics' YAML ``name`` as Ultralytics saves one."""
    stock = YOLO(name)
    randomize(stock.model, seed)
    stock.save(path)
    return path


def expected_pairs(ours: torch.nn.Module, stock: torch.nn.Module, backbone_tail: int) -> list[tuple[int, int]]:
    """(stock layer, our layer) pairs read off the YAML sections: head rows in order, then the backbone tails."""
    b_ours, b_stock = len(ours.yaml["backbone"]), len(stock.yaml["backbone"])
    heads = len(ours.yaml["head"])
    assert heads == len(stock.yaml["head"])  # the stock neck and head are kept verbatim
    return [(b_stock + t, b_ours + t) for t in range(-backbone_tail, heads)]


def layer_state(model: torch.nn.Module, i: int) -> dict[str, torch.Tensor]:
    """State of layer ``i`` of an Ultralytics model, keyed as in the model's state dict."""
    return {f"model.{i}.{k}": v for k, v in model.model[i].state_dict().items()}


class Captured(logging.Handler):
    """Collects the messages of Ultralytics' logger (it does not propagate to the root logger)."""

    def __init__(self):
        super().__init__(logging.INFO)
        self.lines: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.lines.append(record.getMessage())


def load_logged(model, weights) -> list[str]:
    """``model.load(weights)`` (the Python API), returning what Ultralytics logged meanwhile."""
    handler = Captured()
    LOGGER.addHandler(handler)
    try:
        model.load(weights)
    finally:
        LOGGER.removeHandler(handler)
    return handler.lines


def transferred_count(lines: list[str]) -> tuple[int, int]:
    """(N, M) of Ultralytics' "Transferred N/M items" line."""
    found = [TRANSFERRED.search(line) for line in lines]
    found = [m for m in found if m]
    assert len(found) == 1, lines
    return int(found[0].group(1)), int(found[0].group(2))


def copied_tensors(ours, stock, pairs) -> dict[str, str]:
    """Our keys in the paired layers whose tensor equals the stock tensor of the same name in the paired layer."""
    copied = {}
    for s, d in pairs:
        src = layer_state(stock, s)
        for key, value in layer_state(ours, d).items():
            stock_key = f"model.{s}." + key.split(".", 2)[2]
            if stock_key in src and src[stock_key].shape == value.shape and torch.equal(src[stock_key], value):
                copied[key] = stock_key
    return copied


@pytest.mark.parametrize("family", list(FAMILIES))
def test_stock_weights_transfer_by_structure(family, tmp_path):
    revcol_yaml, stock_yaml, tail = FAMILIES[family]
    ckpt = stock_checkpoint(stock_yaml, tmp_path / "stock.pt")
    stock, _ = load_checkpoint(ckpt)  # the checkpoint as any load sees it (saved in half precision)
    model = YOLO(CFG / revcol_yaml)
    ours = model.model
    before = {k: v.clone() for k, v in ours.state_dict().items()}

    pairs = expected_pairs(ours, stock, tail)
    assert sorted(structural_pairs(ours, stock)) == sorted(pairs)
    lines = load_logged(model, ckpt)
    n, m = transferred_count(lines)
    after = ours.state_dict()

    # Every tensor of a paired layer whose name and shape match is the stock one; nothing else changed.
    copied = copied_tensors(ours, stock, pairs)
    for s, d in pairs:
        src = layer_state(stock, s)
        for key, value in layer_state(ours, d).items():
            stock_key = f"model.{s}." + key.split(".", 2)[2]
            if stock_key in src and src[stock_key].shape == value.shape:
                assert key in copied, f"{key} should hold {stock_key}"
    for key, value in after.items():
        if key not in copied:
            assert torch.equal(value, before[key]), f"{key} changed but is not a structural copy"
    # The backbone (RevCol and its Index rows) is untouched, and the count tells the truth.
    end = revcol_section_end(list(ours.model))
    assert end == len(ours.yaml["backbone"]) - 1 - tail
    assert not any(k.startswith(tuple(f"model.{i}." for i in range(end + 1))) for k in copied)
    assert (n, m) == (len(copied), len(after))
    # The whole head transfers (same scale, same classes), except where it reads the backbone directly (Classify).
    if family != "classify":
        assert set(layer_state(ours, len(ours.model) - 1)) <= set(copied)


def test_name_matching_is_gone(tmp_path):
    """By name, stock layer i's tensors would land in our layer i; structurally none of them may."""
    ckpt = stock_checkpoint("yolov8n.yaml", tmp_path / "stock.pt")
    stock, _ = load_checkpoint(ckpt)
    model = YOLO(CFG / "yolov8n-revcol.yaml")
    load_logged(model, ckpt)
    ours, src = model.model.state_dict(), stock.state_dict()
    by_name = [k for k in ours if k in src and src[k].shape == ours[k].shape and torch.equal(src[k], ours[k])]
    # Only keys whose layer index is paired with itself may coincide (none here: the models differ in length).
    assert by_name == []


def test_revcol_source_still_loads_by_name(tmp_path):
    """A RevCol checkpoint into a RevCol model is Ultralytics' own load: every tensor, by name."""
    src = YOLO(CFG / "yolov8n-revcol.yaml")
    randomize(src.model, seed=1)
    src.save(tmp_path / "revcol.pt")
    model = YOLO(CFG / "yolov8n-revcol.yaml")
    lines = load_logged(model, tmp_path / "revcol.pt")
    n, m = transferred_count(lines)
    assert n == m == len(model.model.state_dict())
    assert not any(line.startswith("RevCol model:") for line in lines)


def test_yolo_train_pretrained_transfers_by_structure(tiny_data, tmp_path):
    """``yolo train pretrained=<stock .pt>`` goes through the same structural transfer (new class count too)."""
    ckpt = stock_checkpoint("yolov8n.yaml", tmp_path / "stock.pt")
    stock, _ = load_checkpoint(ckpt)
    proc = run(
        [str(BIN / "yolo"), "train", f"model={CFG / 'yolov8n-revcol.yaml'}", f"data={tiny_data}",
         f"pretrained={ckpt}", "epochs=1", "imgsz=64", "batch=4", "workers=0", "plots=False", "device=cpu",
         f"project={tmp_path}", "name=run"]
    )  # fmt: skip
    n, m = transferred_count((proc.stdout + proc.stderr).splitlines())
    assert "RevCol model: stock layers" in proc.stdout + proc.stderr

    # The same model the trainer builds (the dataset's class count), loaded in-process: the count is what copies.
    import yaml

    nc = len(yaml.safe_load(tiny_data.read_text())["names"])
    model = YOLO(CFG / "yolov8n-revcol.yaml").model
    model = type(model)(model.yaml, nc=nc, verbose=False)
    load_logged(model, {"model": stock})
    pairs = expected_pairs(model, stock, 1)
    assert (n, m) == (len(copied_tensors(model, stock, pairs)), len(model.state_dict()))
