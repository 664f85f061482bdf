"""Exports beyond ONNX/TorchScript (those are in test_yolo_workflow.py): OpenVINO through Ultralytics' own exporter."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from conftest import CFG

MODEL_YAML = CFG / "yolov8n-revcol.yaml"
IMGSZ = 64


def fused_output(weights: Path, x: torch.Tensor) -> torch.Tensor:
    """Raw Detect output of the fused float32 PyTorch model (what the exporters export)."""
    from ultralytics import YOLO

    model = YOLO(str(weights)).model.float().fuse().eval()
    with torch.no_grad():
        return model(x)[0]


def test_openvino_export_matches_pytorch(tmp_path):
    ov = pytest.importorskip("openvino")
    from ultralytics import YOLO

    # Export from a checkpoint, as users do: a model built from a YAML would export into the working directory.
    weights = tmp_path / "yolov8n-revcol.pt"
    yolo = YOLO(str(MODEL_YAML))  # untrained weights: the comparison needs no training
    # Detect's class-bias prior puts every untrained score near 1e-5, where any error hides; with zero biases the
    # scores sit around 0.5 and follow the features.
    for branch in yolo.model.model[-1].cv3:
        branch[-1].bias.data.zero_()
    yolo.save(weights)
    out = Path(YOLO(str(weights)).export(format="openvino", imgsz=IMGSZ))
    xml = out / "yolov8n-revcol.xml"
    assert xml.is_file() and (out / "metadata.yaml").is_file()

    # float32 on purpose: OpenVINO's CPU plugin defaults to bf16 on CPUs with AVX512_BF16/AMX, which would test
    # the hardware's rounding rather than the export.
    compiled = ov.Core().compile_model(str(xml), "CPU", {"INFERENCE_PRECISION_HINT": "f32"})
    x = torch.rand(1, 3, IMGSZ, IMGSZ, generator=torch.Generator().manual_seed(0))
    got = torch.from_numpy(compiled(x.numpy())[compiled.output(0)])
    expected = fused_output(weights, x)
    assert got.shape == expected.shape == (1, 84, (IMGSZ // 8) ** 2 + (IMGSZ // 16) ** 2 + (IMGSZ // 32) ** 2)
    # Boxes are in pixels (untrained: up to 15 strides, 480): 1e-4 relative plus 1e-3 px, as for ONNX. Scores of an
    # untrained model spread only ~1e-3 around 0.5, so they get a tight absolute tolerance (measured error ~1e-7).
    torch.testing.assert_close(got[:, :4], expected[:, :4], rtol=1e-4, atol=1e-3)
    torch.testing.assert_close(got[:, 4:], expected[:, 4:], rtol=0, atol=1e-5)
