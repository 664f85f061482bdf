"""Studies of the RevCol row (`yolo-revcol accuracy --study`): variant YAMLs, sizes, a --quick run and run reuse."""

from __future__ import annotations

import csv

import pytest
import torch
import yaml
from conftest import BIN, CFG, run

from yolo_revcol.tools.bench_accuracy import SHIPPED, STUDIES, Variant, variant_yaml


def test_variant_yaml_changes_only_the_revcol_row():
    base = yaml.safe_load((CFG / "yolov8-revcol.yaml").read_text())
    d = variant_yaml(base, Variant("x", "x", {"block": "convnext", "stem": "yolo"}, columns=4))
    assert d["backbone"][0][3][:2] == base["backbone"][0][3][:2]
    assert set(d["backbone"][0][3][2].values()) == {4} and d["backbone"][0][3][2].keys() == base["scales"].keys()
    assert d["backbone"][0][3][3] == {**base["backbone"][0][3][3], "block": "convnext", "stem": "yolo"}  # merged
    assert variant_yaml(base, SHIPPED)["backbone"] == base["backbone"]  # the reference row is the shipped one
    assert d["backbone"][1:] == base["backbone"][1:] and d["head"] == base["head"] and d["scales"] == base["scales"]


def test_variant_yaml_replaces_channels_and_blocks_when_given():
    base = yaml.safe_load((CFG / "yolov8-revcol.yaml").read_text())
    d = variant_yaml(base, Variant("x", "x", {"block": "c2f"}, channels=[32, 128, 256, 512], layers=[1, 3, 6, 3]))
    assert d["backbone"][0][3][:2] == [[32, 128, 256, 512], [1, 3, 6, 3]]
    assert d["backbone"][0][3][2] == base["backbone"][0][3][2]  # columns untouched
    wide = variant_yaml(base, Variant("w", "w", channels=[80, 160, 320, 640]))
    assert [r[3] for r in wide["backbone"][1:4]] == [[160, 1], [320, 2], [640, 3]]  # Index rows follow the levels


@pytest.mark.parametrize("v", STUDIES["width"], ids=lambda v: v.name)
def test_width_variants_build_with_wider_maps_for_the_neck(v):
    from ultralytics.nn.tasks import DetectionModel
    from ultralytics.utils.ops import make_divisible

    base = yaml.safe_load((CFG / "yolov8-revcol.yaml").read_text())
    m = DetectionModel({**variant_yaml(base, v), "scale": "n"}, verbose=False)
    want = [make_divisible(c * 0.25, 8) for c in v.channels]  # Ultralytics' width scaling at n
    assert list(m.model[0].channels) == want
    assert all(w > s for w, s in zip(want[1:], [32, 64, 128]))  # wider than the shipped row's P3-P5 maps
    out = m.model[0](torch.zeros(1, 3, 64, 64))
    assert [t.shape[1] for t in out] == want


def test_budget_variants_build_and_stay_under_080x(tmp_path):
    # The former command name still runs (older reports name it) and means accuracy --study.
    cmd = [str(BIN / "yolo-revcol"), "ablation", "--no-train", "--study", "budget", "--out", str(tmp_path)]
    run([*cmd, "--project", str(tmp_path / "p")], timeout=300)
    rows = list(csv.DictReader(open(tmp_path / "ablation_budget.csv")))
    assert [r["variant"] for r in rows] == ["stock", "shipped"] + [v.name for v in STUDIES["budget"]]
    stock_params, stock_gflops = float(rows[0]["params"]), float(rows[0]["gflops_640"])
    assert all(
        float(r["params"]) <= 0.80 * stock_params and float(r["gflops_640"]) <= 0.80 * stock_gflops for r in rows[1:]
    )


def test_studies_cover_blocks_stems_column_counts_and_supervision():
    base = yaml.safe_load((CFG / "yolov8-revcol.yaml").read_text())
    options = [variant_yaml(base, v)["backbone"][0][3][3] for v in [SHIPPED, *STUDIES["design"]]]
    assert {o["block"] for o in options} == {"convnext", "c2f"}
    assert {o["stem"] for o in options} == {"patchify", "yolo"}
    assert sorted({v.columns for v in STUDIES["columns"]} | {2}) == [1, 2, 3, 4]
    assert all(v.options["aux"] > 0 for v in STUDIES["supervision"])
    assert all(v.options["recon"] > 0 for v in STUDIES["reconstruction"])


def test_sizes_only_table_orders_columns_and_keeps_2_columns_under_target(tmp_path):
    cmd = [str(BIN / "yolo-revcol"), "accuracy", "--no-train", "--study", "columns", "--out", str(tmp_path)]
    run([*cmd, "--project", str(tmp_path / "p")], timeout=300)
    rows = {r["variant"]: r for r in csv.DictReader(open(tmp_path / "ablation_columns.csv"))}
    assert list(rows) == ["stock", "shipped"] + [v.name for v in STUDIES["columns"]]
    params = [float(rows[n]["params"]) for n in ("c2f-1col", "shipped", "c2f-3col", "c2f-4col")]
    assert params == sorted(params) and len(set(params)) == 4  # every column adds parameters
    shipped, stock = rows["shipped"], rows["stock"]
    assert float(shipped["params"]) <= 0.80 * float(stock["params"])
    assert float(shipped["gflops_640"]) <= 0.80 * float(stock["gflops_640"])
    assert all(
        r["seeds"] == "0" and r["map50_95_mean"] == "nan" for r in rows.values()
    )  # nothing trained, nothing claimed


@pytest.mark.slow
def test_quick_training_run_then_reuse(tmp_path):
    readme = tmp_path / "README.md"
    readme.write_text("<!-- ablation-columns:start -->\nold\n<!-- ablation-columns:end -->\n")
    cmd = [str(BIN / "yolo-revcol"), "accuracy", "--quick", "--study", "columns", "--variants", "c2f-1col"]
    cmd += ["--seeds", "0", "--out", str(tmp_path), "--project", str(tmp_path / "p"), "--readme", str(readme)]
    first = run(cmd, env={"YOLO_OFFLINE": "1"}, timeout=400)
    assert "reused run" not in first.stdout
    rows = list(csv.DictReader(open(tmp_path / "ablation_columns.csv")))
    assert [r["variant"] for r in rows] == ["stock", "shipped", "c2f-1col"]
    assert all(r["seeds"] == "1" and 0 <= float(r["map50_95_mean"]) <= 1 for r in rows)
    assert rows[2]["verdict"] == "n/a"  # one seed decides nothing
    assert "| c2f-1col |" in readme.read_text() and "old" not in readme.read_text()
    assert (tmp_path / "ablation_columns.png").stat().st_size > 10_000
    second = run(cmd, env={"YOLO_OFFLINE": "1"}, timeout=400)
    assert second.stdout.count("(reused run)") == 3  # identical YAML and settings: nothing retrained
    again = list(csv.DictReader(open(tmp_path / "ablation_columns.csv")))
    assert [r["map50_95_mean"] for r in again] == [r["map50_95_mean"] for r in rows]


@pytest.mark.parametrize(
    "args, message",
    [
        (["--study", "columns", "--variants", "nope"], "unknown variant(s) nope"),
        (["--variants", "c2f-1col"], "--variants needs --study"),
        (["--study", "columns", "--models", "yolov8n.yaml"], "leave out --models"),
        (["--study", "nope"], "invalid choice: 'nope'"),
    ],
)
def test_bad_study_arguments_are_named(args, message):
    import subprocess

    proc = subprocess.run([str(BIN / "yolo-revcol"), "accuracy", "--no-train", *args], capture_output=True, text=True)
    assert proc.returncode == 2 and message in proc.stderr, proc.stderr


def test_stocklike_one_column_has_the_stock_backbone_size():
    """RevCol modules at the stock layout must cost exactly what the stock backbone costs (same convs, same BNs)."""
    from ultralytics.nn.tasks import DetectionModel

    base = yaml.safe_load((CFG / "yolov8-revcol.yaml").read_text())
    one = next(v for v in STUDIES["stocklike"] if v.columns == 1)
    ours = DetectionModel({**variant_yaml(base, one), "scale": "n"}, verbose=False)
    stock = DetectionModel("yolov8n.yaml", verbose=False)

    def count(m: torch.nn.Module) -> int:
        return sum(p.numel() for p in m.parameters())

    assert count(ours) == count(stock)
    assert count(ours.model[0]) == count(stock.model[:9])  # RevCol stands for the stock layers before SPPF
