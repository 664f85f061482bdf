"""The accuracy benchmark (`yolo-revcol accuracy`): a --quick run end to end, and its pure helpers."""

from __future__ import annotations

import csv
import math

import pytest
from conftest import BIN, CFG, run

from yolo_revcol.tools.bench_accuracy import Result, resolve_model, table_rows


@pytest.fixture(scope="module")
def quick_run(tmp_path_factory):
    """One --quick run (1 epoch, 64 px, 8+4 generated images, both default models); returns (out, readme, stdout)."""
    out = tmp_path_factory.mktemp("accuracy")
    readme = out / "README.md"
    readme.write_text("intro\n<!-- accuracy:start -->\nold\n<!-- accuracy:end -->\nrest\n")
    cmd = [str(BIN / "yolo-revcol"), "accuracy", "--quick", "--out", str(out), "--project", str(out / "runs")]
    proc = run([*cmd, "--readme", str(readme)], env={"YOLO_OFFLINE": "1"}, timeout=300)
    return out, readme, proc.stdout


def test_quick_run_writes_markdown_csv_png(quick_run):
    out, _, stdout = quick_run
    md = (out / "accuracy_quick-shapes.md").read_text()
    assert "yolov8n-revcol / yolov8n" in md and "epochs 1, imgsz 64" in md and "yolov8n-revcol / yolov8n" in stdout
    assert (out / "accuracy_quick-shapes.png").stat().st_size > 10_000


def test_quick_run_csv_has_one_numeric_row_per_model(quick_run):
    out, _, _ = quick_run
    rows = list(csv.DictReader(open(out / "accuracy_quick-shapes.csv")))
    assert [r["model"] for r in rows] == ["yolov8n", "yolov8n-revcol"]
    for r in rows:
        assert int(r["params"]) > 1_000_000 and float(r["gflops_640"]) > 0
        assert 0 <= float(r["map50"]) <= 1 and 0 <= float(r["map50_95"]) <= 1
        assert float(r["train_s"]) > 0 and float(r["peak_rss_mib"]) > 100
        assert (out / "runs" / "quick-shapes" / r["model"] / "results.csv").is_file()
    assert int(rows[1]["params"]) < int(rows[0]["params"])  # RevCol is the smaller model


def test_quick_run_replaces_readme_block(quick_run):
    _, readme, _ = quick_run
    text = readme.read_text()
    assert "old" not in text and "| yolov8n-revcol |" in text and text.endswith("rest\n")


def test_resolve_model_finds_repo_yamls_and_leaves_ultralytics_names():
    assert resolve_model("yolov8n.yaml") == "yolov8n.yaml"
    assert resolve_model("yolov8n-revcol.yaml") == str(CFG / "yolov8n-revcol.yaml")  # scale of yolov8-revcol.yaml
    assert resolve_model(str(CFG / "yolov8-revcol.yaml")) == str(CFG / "yolov8-revcol.yaml")


def test_ratio_rows_compare_every_model_with_the_first():
    def result(name, m, t, mem):
        return Result(name, 1, 1.0, 1.0, m, m, t, t, mem, "", [m])

    rows = table_rows([result("a", 0.4, 100, 1000), result("b", 0.5, 150, 900), result("c", math.nan, 50, 0)])
    assert [r[0] for r in rows] == ["a", "b", "c", "b / a", "c / a"]
    assert rows[3][5:] == ["1.250", "1.500", "1.500", "0.900"]
    assert rows[4][5] == ""  # undefined ratios stay empty
