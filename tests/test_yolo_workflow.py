"""What a YOLO user does, end to end, at tiny size: train, val, predict, export, reload, resume — CLI and Python."""

from __future__ import annotations

import copy
import json
import re
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest
import torch
from conftest import BIN, CFG, run, train_then_interrupt

YOLO_CLI = str(BIN / "yolo")
MODEL_YAML = CFG / "yolov8n-revcol.yaml"
TRAIN_KW = dict(epochs=1, imgsz=64, batch=4, workers=0, seed=0, plots=False, device="cpu")  # cpu: no AMP check
TRAIN_ARGS = [f"{k}={v}" for k, v in TRAIN_KW.items()]

# Prints the detections of a checkpoint on one image as JSON: the same code runs in fresh processes.
PREDICT = textwrap.dedent(
    """
    import json, sys
    from ultralytics import YOLO
    r = YOLO(sys.argv[1]).predict(sys.argv[2], imgsz=64, conf=0.001, verbose=False)[0]
    print(json.dumps(r.boxes.data.tolist()))
    """
)


def val_image(data_yaml: Path) -> Path:
    """First validation image of the tiny dataset."""
    return sorted((data_yaml.parent / "shapes" / "images" / "val").glob("*.jpg"))[0]


@pytest.fixture(scope="module")
def cli_run(tiny_data, tmp_path_factory) -> Path:
    """Train yolov8n-revcol for one epoch with the stock `yolo` CLI in a fresh shell; return the run directory."""
    project = tmp_path_factory.mktemp("runs")
    run([YOLO_CLI, "train", f"model={MODEL_YAML}", f"data={tiny_data}", f"project={project}", "name=cli", *TRAIN_ARGS])
    return project / "cli"


def test_cli_train_writes_checkpoints(cli_run):
    assert (cli_run / "weights" / "best.pt").is_file() and (cli_run / "weights" / "last.pt").is_file()
    ckpt = torch.load(cli_run / "weights" / "best.pt", weights_only=False)
    assert type(ckpt["model"].model[0]).__name__ == "RevCol"


def test_cli_val(cli_run, tiny_data):
    proc = run(
        [YOLO_CLI, "val", f"model={cli_run / 'weights' / 'best.pt'}", f"data={tiny_data}", "imgsz=64", "batch=4"]
    )
    # Ultralytics' metrics line: "all <images> <instances> <P> <R> <mAP50> <mAP50-95>" over the 4 val images.
    line = re.search(r"^\s+all\s+4\s+(\d+)((?:\s+[\d.]+){4})\s*$", proc.stdout + proc.stderr, re.M)
    assert line, proc.stdout + proc.stderr
    assert int(line.group(1)) > 0 and all(0 <= float(v) <= 1 for v in line.group(2).split())


def test_cli_predict_saves_annotated_image(cli_run, tiny_data, tmp_path):
    image = val_image(tiny_data)
    run(
        [YOLO_CLI, "predict", f"model={cli_run / 'weights' / 'best.pt'}", f"source={image}", "imgsz=64", "conf=0.001"]
        + [f"project={tmp_path}", "name=pred", "save=True"]
    )
    saved = tmp_path / "pred" / image.name
    assert saved.is_file() and saved.stat().st_size > 0


def reference_output(weights: Path, x: torch.Tensor) -> torch.Tensor:
    """Raw Detect output of the fused float32 PyTorch model (what the exporters export)."""
    from ultralytics import YOLO

    model = YOLO(str(weights)).model.float().fuse().eval()
    with torch.no_grad():
        return model(x)[0]


@pytest.mark.parametrize("fmt", ["onnx", "torchscript"])
def test_cli_export_matches_pytorch(cli_run, fmt):
    weights = cli_run / "weights" / "best.pt"
    run([YOLO_CLI, "export", f"model={weights}", f"format={fmt}", "imgsz=64"])
    x = torch.rand(1, 3, 64, 64, generator=torch.Generator().manual_seed(0))
    expected = reference_output(weights, x)
    if fmt == "onnx":
        ort = pytest.importorskip("onnxruntime")
        session = ort.InferenceSession(str(weights.with_suffix(".onnx")), providers=["CPUExecutionProvider"])
        got = torch.from_numpy(session.run(None, {session.get_inputs()[0].name: x.numpy()})[0])
    else:
        got = torch.jit.load(str(weights.with_suffix(".torchscript")))(x)
        got = got[0] if isinstance(got, (list, tuple)) else got
    assert got.shape == expected.shape
    # Boxes are in pixels (0..64) and scores in 0..1: 1e-3 absolute is far below anything visible.
    torch.testing.assert_close(got, expected, rtol=1e-4, atol=1e-3)


def test_python_api_trains_through_the_reversible_backward(tiny_data, tmp_path, monkeypatch):
    from ultralytics import YOLO

    from yolo_revcol.nn.reversible import ReversibleColumns

    calls = []
    original = ReversibleColumns.backward

    def counting_backward(ctx, *grads):
        calls.append(1)
        return original(ctx, *grads)

    monkeypatch.setattr(ReversibleColumns, "backward", staticmethod(counting_backward))
    model = YOLO(str(MODEL_YAML))
    model.train(data=str(tiny_data), project=str(tmp_path), name="api", exist_ok=True, **TRAIN_KW)
    assert len(calls) >= 2  # one per training batch (8 images, batch 4)

    weights = tmp_path / "api" / "weights" / "best.pt"
    # The saved model is the trained EMA model stored in half precision: same outputs as that model in memory.
    x = torch.rand(1, 3, 64, 64, generator=torch.Generator().manual_seed(0))
    in_memory = copy.deepcopy(model.trainer.ema.ema).half().float().eval()
    saved = torch.load(weights, weights_only=False)["model"].float().eval()
    with torch.no_grad():
        torch.testing.assert_close(saved(x)[0], in_memory(x)[0], rtol=0, atol=0)

    image = val_image(tiny_data)
    in_process = YOLO(str(weights)).predict(str(image), imgsz=64, conf=0.001, verbose=False)[0].boxes.data
    assert len(in_process) > 0
    for env in ({}, {"ULTRALYTICS_SAFE_LOAD": "1"}):
        fresh = json.loads(run([sys.executable, "-c", PREDICT, str(weights), str(image)], env=env).stdout)
        np.testing.assert_allclose(np.array(fresh), in_process.numpy(), rtol=1e-5, atol=1e-5)


@pytest.mark.slow
def test_resume_continues_an_interrupted_run(tiny_data, tmp_path):
    last = train_then_interrupt(MODEL_YAML, tiny_data, tmp_path, "resume")
    assert torch.load(last, weights_only=False)["epoch"] == 0  # one epoch done, one to go

    run([YOLO_CLI, "train", "resume", f"model={last}"])
    rows = (tmp_path / "resume" / "results.csv").read_text().strip().splitlines()
    assert len(rows) == 1 + 2  # header and both epochs
