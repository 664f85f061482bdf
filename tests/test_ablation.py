"""The ablation tool (`yolo-revcol ablation`): variant YAMLs, sizes, a --quick training run and run reuse."""

from __future__ import annotations

import csv

import pytest
import yaml
from conftest import BIN, CFG, run

from yolo_revcol.tools.ablation import STUDIES, Variant, variant_yaml


def test_variant_yaml_changes_only_the_revcol_row():
    base = yaml.safe_load((CFG / "yolov8-revcol.yaml").read_text())
    d = variant_yaml(base, Variant("x", "x", {"block": "c2f", "stem": "yolo"}, columns=4))
    assert d["backbone"][0][3][:2] == base["backbone"][0][3][:2]
    assert set(d["backbone"][0][3][2].values()) == {4} and d["backbone"][0][3][2].keys() == base["scales"].keys()
    assert d["backbone"][0][3][3] == {"block": "c2f", "stem": "yolo"}
    assert d["backbone"][1:] == base["backbone"][1:] and d["head"] == base["head"] and d["scales"] == base["scales"]


def test_variant_yaml_replaces_channels_and_blocks_when_given():
    base = yaml.safe_load((CFG / "yolov8-revcol.yaml").read_text())
    d = variant_yaml(base, Variant("x", "x", {"block": "c2f"}, channels=[32, 128, 256, 512], layers=[1, 3, 6, 3]))
    assert d["backbone"][0][3][:2] == [[32, 128, 256, 512], [1, 3, 6, 3]]
    assert d["backbone"][0][3][2] == base["backbone"][0][3][2]  # columns untouched


def test_budget_variants_build_and_stay_under_080x(tmp_path):
    cmd = [str(BIN / "yolo-revcol"), "ablation", "--no-train", "--study", "budget", "--out", str(tmp_path)]
    run([*cmd, "--project", str(tmp_path / "p")], timeout=300)
    rows = list(csv.DictReader(open(tmp_path / "ablation_budget.csv")))
    assert [r["variant"] for r in rows] == ["stock"] + [v.name for v in STUDIES["budget"]]
    assert all(float(r["params ratio"]) <= 0.80 and float(r["GFLOPs ratio"]) <= 0.80 for r in rows[1:])

def test_studies_cover_blocks_stems_and_column_counts():
    design = {v.name: v for v in STUDIES["design"]}
    assert {v.options.get("block") for v in design.values()} == {"convnext", "c2f"}
    assert {v.options.get("stem", "patchify") for v in design.values()} == {"patchify", "yolo"}
    assert [v.columns for v in STUDIES["columns"]] == [1, 2, 4, 8]


def test_sizes_only_table_orders_columns_and_keeps_2_columns_under_target(tmp_path):
    cmd = [str(BIN / "yolo-revcol"), "ablation", "--no-train", "--study", "columns", "--out", str(tmp_path)]
    run([*cmd, "--project", str(tmp_path / "p")], timeout=300)
    rows = list(csv.DictReader(open(tmp_path / "ablation_columns.csv")))
    assert [r["variant"] for r in rows] == ["stock"] + [v.name for v in STUDIES["columns"]]
    params = [float(r["params ratio"]) for r in rows[1:]]
    assert params == sorted(params) and len(set(params)) == 4  # every column adds parameters
    two = rows[2]
    assert float(two["params ratio"]) <= 0.80 and float(two["GFLOPs ratio"]) <= 0.80
    assert all(r["mAP50-95"] == "" for r in rows)  # nothing trained, nothing claimed


def test_quick_training_run_then_reuse(tmp_path):
    readme = tmp_path / "README.md"
    readme.write_text("<!-- ablation-columns:start -->\nold\n<!-- ablation-columns:end -->\n")
    cmd = [str(BIN / "yolo-revcol"), "ablation", "--quick", "--study", "columns", "--variants", "c2f-1col"]
    cmd += ["--out", str(tmp_path), "--project", str(tmp_path / "p"), "--readme", str(readme)]
    first = run(cmd, env={"YOLO_OFFLINE": "1"}, timeout=400)
    assert "reused run" not in first.stdout
    rows = list(csv.DictReader(open(tmp_path / "ablation_columns.csv")))
    assert [r["variant"] for r in rows] == ["stock", "c2f-1col"]
    assert all(0 <= float(r["mAP50-95"]) <= 1 for r in rows)
    assert "| c2f-1col |" in readme.read_text() and "old" not in readme.read_text()
    second = run(cmd, env={"YOLO_OFFLINE": "1"}, timeout=400)
    assert second.stdout.count("(reused run)") == 2  # identical YAML and settings: nothing retrained
    again = list(csv.DictReader(open(tmp_path / "ablation_columns.csv")))
    assert [r["mAP50-95"] for r in again] == [r["mAP50-95"] for r in rows]


def test_unknown_variant_is_rejected(tmp_path):
    import subprocess

    proc = subprocess.run([str(BIN / "yolo-revcol"), "ablation", "--variants", "nope", "--no-train"],
                          capture_output=True, text=True)
    assert proc.returncode == 2 and "unknown variant(s) nope" in proc.stderr
