"""The speed benchmark (`yolo-revcol speed`): a tiny run end to end, and its pure helpers. No timing targets here."""

from __future__ import annotations

import csv
import math

import pytest
from conftest import BIN, ROOT, run

from yolo_revcol.tools.bench_speed import (
    BACKBONE,
    CSV_HEADER,
    EAGER,
    HEADER,
    ORT,
    TRAIN_PLAIN,
    TRAIN_REV,
    Row,
    interleave,
    synthetic_batch,
)

MEASURES = [EAGER, BACKBONE, ORT, TRAIN_REV, TRAIN_PLAIN]


@pytest.fixture(scope="module")
def tiny_run(tmp_path_factory):
    """One tiny run (scale n, 64 px, 1 round of 1 run, training batch 2 at 64, 1 thread): (out, readme, stdout)."""
    out = tmp_path_factory.mktemp("speed")
    readme = out / "README.md"
    readme.write_text("intro\n<!-- speed:start -->\nold\n<!-- speed:end -->\nrest\n")
    cmd = [str(BIN / "yolo-revcol"), "speed", "--scales", "n", "--imgsz", "64", "--rounds", "1", "--runs", "1"]
    # One thread: two OpenMP threads on a loaded 2-core machine wait on each other and run 10-50x slower.
    cmd += ["--warmup", "1", "--train-batch", "2", "--train-imgsz", "64", "--train-runs", "1", "--threads", "1"]
    proc = run([*cmd, "--profile", "5", "--out", str(out), "--readme", str(readme)], cwd=out, timeout=120)
    return out, readme, proc.stdout


def test_tiny_run_writes_markdown_png_and_profile(tiny_run):
    out, _, stdout = tiny_run
    md = (out / "speed.md").read_text()
    assert "| " + " | ".join(HEADER) + " |" in md and "Threads for torch and ONNX Runtime (intra-op): 1." in md
    assert all(f"| n | {m} |" in md for m in MEASURES) and f"| n | {EAGER} |" in stdout
    assert (out / "speed.png").stat().st_size > 10_000
    profile = (out / "speed_profile.md").read_text()
    assert "n at 64" in profile and profile.count("| `aten::") == 5
    assert not list(out.glob("*.onnx")) and not list(out.glob("*.pt"))  # exports stay in a temp dir


def test_tiny_run_csv_rows_columns_and_ratios(tiny_run):
    out, _, _ = tiny_run
    rows = list(csv.DictReader(open(out / "speed.csv")))
    assert list(rows[0]) == list(CSV_HEADER)
    assert [(r["scale"], r["measure"], r["imgsz"], r["batch"]) for r in rows] == [
        ("n", EAGER, "64", "1"),
        ("n", BACKBONE, "64", "1"),
        ("n", ORT, "64", "1"),
        ("n", TRAIN_REV, "64", "2"),
        ("n", TRAIN_PLAIN, "64", "2"),
    ]
    for r in rows:
        ratio = float(r["ratio"])
        assert math.isfinite(ratio) and ratio > 0
        assert math.isclose(ratio, float(r["revcol_ms"]) / float(r["stock_ms"]), rel_tol=1e-9)
        assert r["runs"] == "1" and r["target_met"] in {"yes", "no", ""}
    assert [r["target"] for r in rows] == ["0.8", "", "0.8", "1.0", ""]
    assert rows[3]["stock_ms"] == rows[4]["stock_ms"]  # both RevCol training variants against the same stock runs


def test_tiny_run_replaces_readme_block(tiny_run):
    _, readme, _ = tiny_run
    text = readme.read_text()
    assert "old" not in text and f"| n | {TRAIN_REV} | 64 | 2 |" in text and text.endswith("<!-- speed:end -->\nrest\n")


def test_wrapper_script_shows_the_options():
    import sys

    proc = run([sys.executable, str(ROOT / "runs_scripts" / "bench_speed.py"), "--help"])
    for option in ("--scales", "--imgsz", "--rounds", "--runs", "--threads", "--train-batch", "--train-imgsz"):
        assert option in proc.stdout
    assert "--no-onnx" in proc.stdout and "--no-train" in proc.stdout and "--out" in proc.stdout


def test_interleave_rotates_the_order_every_round():
    calls = []
    fns = {name: (lambda name=name: calls.append(name)) for name in "abc"}
    times = interleave(fns, rounds=3, runs=2, warmup=1, threads=1)
    assert calls[:3] == ["a", "b", "c"]  # warm-up
    assert calls[3:] == list("aabbccbbccaaccaabb")
    assert all(len(t) == 6 and min(t) >= 0 for t in times.values())


def test_targets_apply_to_inference_at_n_and_s_and_reversible_training_at_n():
    def row(scale, measure, stock, revcol):
        return Row(scale, measure, 640, 1, [stock], [revcol])

    assert (row("n", EAGER, 10, 8).target, row("n", EAGER, 10, 8).met) == (0.8, "yes")
    assert row("s", ORT, 10, 8.5).met == "no"
    assert row("m", EAGER, 10, 1).target is None and row("m", EAGER, 10, 1).met == ""
    assert row("n", TRAIN_REV, 10, 10).met == "yes" and row("s", TRAIN_REV, 10, 5).target is None
    assert row("n", TRAIN_PLAIN, 10, 5).target is None
    assert Row("n", EAGER, 64, 1, [1.0, 2.0, 30.0], [2.0, 3.0, 4.0]).ratio == 1.5  # medians, not means


def test_synthetic_batch_is_in_ultralytics_collated_format():
    b = synthetic_batch(3, 64, nc=5, boxes=2)
    assert b["img"].shape == (3, 3, 64, 64) and b["batch_idx"].tolist() == [0, 0, 1, 1, 2, 2]
    assert b["cls"].shape == (6, 1) and 0 <= b["cls"].min() and b["cls"].max() < 5
    xy, wh = b["bboxes"][:, :2], b["bboxes"][:, 2:]
    assert (wh > 0).all() and (xy - wh / 2 >= 0).all() and (xy + wh / 2 <= 1).all()


@pytest.mark.parametrize("yaml", ["yolov8n.yaml", str(ROOT / "cfg" / "yolov8n-revcol.yaml")])
def test_backbone_forward_stops_at_sppf_with_the_full_models_value(yaml):
    import torch
    from ultralytics.nn.modules import SPPF

    from yolo_revcol.tools.bench_speed import backbone_forward, build

    model = build(yaml)
    sppf = next(m for m in model.model if isinstance(m, SPPF))
    seen = []
    sppf.register_forward_hook(lambda m, i, o: seen.append(o))
    x = torch.rand(1, 3, 64, 64)
    with torch.inference_mode():
        model(x)
        out = backbone_forward(model, x)
    assert len(seen) == 2 and torch.equal(out, seen[0]) and out.shape == (1, 256, 2, 2)
