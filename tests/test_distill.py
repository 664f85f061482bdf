"""Knowledge distillation with Ultralytics' own ``distill_model=``: a RevCol student; the benchmark's ``+kd`` rows."""

from __future__ import annotations

import csv
import subprocess

import pytest
from conftest import BIN, CFG, run
from test_bench_accuracy import result

from yolo_revcol.tools.bench_accuracy import (
    KD_SUFFIX,
    Settings,
    equal_cost_rows,
    run_key,
    split_kd,
)

DATA = CFG / "datasets" / "revcol-shapes.yaml"


@pytest.fixture(scope="module")
def teacher(tmp_path_factory) -> str:
    """A stock yolov8n checkpoint (untrained: the tests check the mechanics, not what is learnt)."""
    from ultralytics import YOLO

    path = tmp_path_factory.mktemp("teacher") / "yolov8n-teacher.pt"
    YOLO("yolov8n.yaml").save(str(path))
    return str(path)


def test_a_revcol_student_distils_from_the_cli_and_saves_a_plain_revcol_model(teacher, tiny_data, tmp_path):
    import torch
    from ultralytics.nn.tasks import DetectionModel

    yaml_text = (CFG / "yolov8-revcol.yaml").read_text().replace("reversible: true}", "reversible: true, aux: 0.5}")
    model = tmp_path / "yolov8n-revcol-aux.yaml"
    model.write_text(yaml_text)
    args = f"model={model} data={tiny_data} distill_model={teacher} epochs=1 imgsz=64 batch=4 device=cpu workers=0"
    run([str(BIN / "yolo"), "train", *args.split(), f"project={tmp_path}", "name=kd", "plots=False"], cwd=tmp_path)
    (row,) = list(csv.DictReader(open(tmp_path / "kd" / "results.csv")))
    assert float(row["train/dis_loss"]) > 0  # the teacher's features reached the loss

    ckpt = torch.load(tmp_path / "kd" / "weights" / "best.pt", weights_only=False)
    saved = ckpt["model"]
    fresh = DetectionModel(str(model), nc=8, verbose=False)  # the tiny data's classes
    assert type(saved).__name__ == "DetectionModel" and type(saved.model[0]).__name__ == "RevCol"
    assert not any("teacher" in name for name, _ in saved.named_modules())
    # A fresh build's parameters: no teacher, no projector; the aux heads stay (training only, dropped by fuse/export)
    assert sum(p.numel() for p in saved.parameters()) == sum(p.numel() for p in fresh.parameters())
    assert saved.model[0].aux_heads is not None and saved.fuse().model[0].aux_heads is None


def test_models_named_kd_need_a_teacher_and_only_they(tmp_path):
    cmd = [str(BIN / "yolo-revcol"), "accuracy", "--quick", "--out", str(tmp_path)]
    for extra in (["--models", "yolov8n.yaml", f"yolov8n-revcol.yaml{KD_SUFFIX}"], ["--teacher", "yolov8s.yaml"]):
        proc = subprocess.run(cmd + extra, capture_output=True, text=True)
        assert proc.returncode == 2 and "--teacher is needed by, and only by, models named with +kd" in proc.stderr
    assert split_kd("yolov8n-revcol.yaml+kd") == ("yolov8n-revcol.yaml", True)
    assert split_kd("yolov8n@d0.17w0.21") == ("yolov8n@d0.17w0.21", False)


def test_run_keys_without_a_teacher_are_those_the_ledger_already_holds():
    # Two runs committed in results/runs before distillation existed keep their identity.
    assert run_key("yolov8n.yaml", str(DATA), Settings(seed=0)) == "777856026ae759fd"
    assert run_key(str(CFG / "yolov8n-revcol.yaml"), str(DATA), Settings(seed=1)) == "3675d111616c9786"
    taught = Settings(seed=0, distill="yolov8s-seed0-0123456789abcdef")
    assert run_key("yolov8n.yaml", str(DATA), taught) != "777856026ae759fd"
    assert run_key("yolov8n.yaml", str(DATA), Settings(seed=0, distill=taught.distill, dis=2.0)) != run_key(
        "yolov8n.yaml", str(DATA), taught
    )


def test_distilled_revcol_is_judged_against_stock_distilled_the_same_way():
    results = {
        "n": [result("yolov8n", s, 0.22 + 0.001 * s, 8.0) for s in range(3)],
        "small": [result("yolov8n-d0.17-w0.21", s, 0.20 + 0.001 * s, 6.0) for s in range(3)],
        "revcol": [result("yolov8n-revcol", s, 0.14 + 0.01 * s, 6.2) for s in range(3)],
        "small+kd": [result("yolov8n-d0.17-w0.21+kd", s, 0.25 + 0.001 * s, 6.0) for s in range(3)],
        "revcol+kd": [result("yolov8n-revcol+kd", s, 0.20 + 0.01 * s, 6.2) for s in range(3)],
    }
    plain, taught = equal_cost_rows(results)
    assert plain[0] == "yolov8n-revcol" and plain[6].startswith("yolov8n-d0.17-w0.21 (")
    assert taught[0] == "yolov8n-revcol+kd" and taught[6].startswith("yolov8n-d0.17-w0.21+kd (")
    assert taught[4] == "" and taught[8] == "worse"  # one distilled stock row: no frontier, still a verdict


@pytest.mark.slow
def test_accuracy_command_distils_the_kd_models_from_a_teacher_it_trains_once(tmp_path):
    cmd = [str(BIN / "yolo-revcol"), "accuracy", "--quick", "--seeds", "0", "--out", str(tmp_path / "out")]
    cmd += ["--project", str(tmp_path / "p"), "--teacher", "yolov8n.yaml"]
    cmd += ["--models", "yolov8n.yaml", f"yolov8n-revcol.yaml{KD_SUFFIX}"]
    out = run(cmd, timeout=600).stdout
    assert "teacher yolov8n seed 0" in out and "yolov8n-revcol+kd seed 0: mAP50-95" in out
    ledger = sorted(p.name for p in (tmp_path / "out" / "runs" / "quick-shapes").iterdir())
    assert [n.rsplit("-", 1)[0] for n in ledger] == ["yolov8n-revcol+kd-seed0", "yolov8n-seed0"]
    header = (tmp_path / "p" / "quick-shapes" / "yolov8n-revcol+kd-seed0" / "results.csv").read_text().split("\n")[0]
    assert "train/dis_loss" in header
    again = run(cmd, timeout=600).stdout  # the teacher's weights are still there: nothing is trained again
    assert "yolov8n-revcol+kd seed 0: mAP50-95" in again and "(reused run)" in again and "== " not in again
