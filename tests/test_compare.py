"""The comparison tool and the size target of the default configuration (counts are deterministic)."""

from __future__ import annotations

import csv

import pytest
from conftest import BIN, run

from yolo_revcol.tools.compare import (
    CLS_IMGSZ,
    TARGET,
    Summary,
    compare,
    layer_sizes,
    summarize,
    task_table,
    why_segment,
    why_yolo11,
)


def test_every_scale_is_at_most_080x_stock_params_and_gflops():
    for stock, ours in compare("yolov8", "nsmlx", imgsz=640):
        assert ours.params <= TARGET * stock.params, (ours, stock)
        assert ours.gflops <= TARGET * stock.gflops, (ours, stock)
        assert ours.gflops > 0 and ours.layers > 0


def test_stock_figures_match_ultralytics_published_sizes():
    ((stock, _),) = compare("yolov8", "n", imgsz=640)
    assert stock.params == 3_157_200 and round(stock.gflops, 1) == 8.9


def test_console_command_writes_markdown_csv_png_and_readme_block(tmp_path):
    readme = tmp_path / "README.md"
    readme.write_text("intro\n<!-- compare-yolov8:start -->\nold\n<!-- compare-yolov8:end -->\nrest\n")
    proc = run([str(BIN / "yolo-revcol"), "compare", "--scales", "n", "--out", str(tmp_path), "--readme", str(readme)])
    assert "yolov8n-revcol" in proc.stdout
    rows = list(csv.reader(open(tmp_path / "compare_yolov8.csv")))
    assert rows[0][0] == "scale" and [r[1] for r in rows[1:]] == ["yolov8n", "yolov8n-revcol"]
    assert (tmp_path / "compare_yolov8.png").stat().st_size > 10_000
    text = readme.read_text()
    assert "old" not in text and "| n | yolov8n-revcol |" in text and text.endswith("rest\n")


# Task families: segment, pose, obb, classify and YOLO11 ---------------------------------------------------------------


@pytest.fixture(scope="module")
def task_results() -> dict:
    """Comparisons of the task families at scales n and x (x only where the target is asserted)."""
    scales = {"yolov8-seg": "n", "yolov8-pose": "nx", "yolov8-obb": "nx", "yolov8-cls": "nx", "yolo11": "n"}
    return {family: compare(family, s, imgsz=640) for family, s in scales.items()}


def test_task_families_build_with_their_task_model_and_stock_sizes(task_results):
    """Each side is built with its task's model class; stock sizes are Ultralytics' published ones."""
    expected = {
        "yolov8-seg": "segment",
        "yolov8-pose": "pose",
        "yolov8-obb": "obb",
        "yolov8-cls": "classify",
        "yolo11": "detect",
    }
    for family, pairs in task_results.items():
        for stock, ours in pairs:
            assert stock.task == ours.task == expected[family] and stock.scale == ours.scale
            assert stock.imgsz == ours.imgsz == (CLS_IMGSZ if family == "yolov8-cls" else 640)
    stock_n = {family: pairs[0][0] for family, pairs in task_results.items()}
    assert stock_n["yolov8-seg"].params == 3_409_968 and round(stock_n["yolov8-seg"].gflops, 1) == 12.1
    assert stock_n["yolov8-obb"].params == 3_228_867  # the yolov8-obb.yaml summary comment
    assert stock_n["yolov8-cls"].params == 2_719_288
    assert stock_n["yolo11"].params == 2_624_080  # the yolo11.yaml summary comment


@pytest.mark.parametrize("family", ["yolov8-pose", "yolov8-obb", "yolov8-cls"])
def test_backbone_dominated_families_meet_the_target(task_results, family):
    """Where the backbone dominates the model (pose, obb, classify), RevCol is at most 0.80x at scales n and x."""
    for stock, ours in task_results[family]:
        assert ours.params <= TARGET * stock.params and ours.gflops <= TARGET * stock.gflops, (ours, stock)


def test_task_table_marks_misses_and_says_why():
    """Ratios above the target are bold and named under the table with their cause; others are plain."""
    pairs = [
        (
            Summary("yolov8n-seg", 1, 100, 10.0, "n", "segment"),
            Summary("yolov8n-revcol-seg", 1, 70, 9.0, "n", "segment"),
        )
    ]
    table = task_table({"yolov8-seg": pairs})
    assert "| yolov8-revcol-seg | yolov8-seg | segment | params | 0.700 |" in table
    assert "| GFLOPs @640 | **0.900** |" in table
    assert "Above 0.80x (bold): yolov8n-revcol-seg GFLOPs 0.900x." in table and "Segment head" in table
    pairs = [
        (Summary("yolov8n-pose", 1, 100, 10.0, "n", "pose"), Summary("yolov8n-revcol-pose", 1, 70, 7.0, "n", "pose"))
    ]
    assert "Every ratio is at most 0.80x." in task_table({"yolov8-pose": pairs})


def test_console_command_with_families_writes_each_and_the_tasks_block(tmp_path):
    readme = tmp_path / "README.md"
    readme.write_text(
        "<!-- compare-yolov8:start -->\nkeep\n<!-- compare-yolov8:end -->\n"
        "<!-- compare-tasks:start -->\nold\n<!-- compare-tasks:end -->\n"
    )
    cmd = [str(BIN / "yolo-revcol"), "compare", "--families", "yolov8-cls", "yolov8-pose", "--scales", "n"]
    run([*cmd, "--out", str(tmp_path), "--readme", str(readme)])
    for family, name in (("yolov8-cls", "yolov8n-revcol-cls"), ("yolov8-pose", "yolov8n-revcol-pose")):
        rows = list(csv.reader(open(tmp_path / f"compare_{family}.csv")))
        assert [r[1] for r in rows[1:]] == [name.replace("-revcol", ""), name]
        assert (tmp_path / f"compare_{family}.png").stat().st_size > 10_000
    assert "at imgsz 224" in (tmp_path / "compare_yolov8-cls.md").read_text()
    text = readme.read_text()
    assert "keep" in text and "old" not in text  # the yolov8 block is only rewritten when yolov8 is compared
    assert "| yolov8-revcol-cls | yolov8-cls | classify | params |" in text and "GFLOPs @224" in text
    assert "--families yolov8-cls yolov8-pose" in text  # the command that made it


def test_why_figures_come_from_the_stock_models_layers():
    """The explanations under the per-task table quote per-layer sums of the stock models, which add up to them."""
    layers, backbone = layer_sizes("yolov8n-seg.yaml")
    total = sum(g for _, _, g in layers)
    assert layers[-1][0] == "Segment" and total == pytest.approx(
        summarize("yolov8n-seg.yaml", "s", 640).gflops, rel=0.02
    )
    assert layers[-1][2] > total / 2  # "most of the compute"
    assert f"({layers[-1][2]:.1f} of the {total:.1f} GFLOPs yolov8n-seg spends" in why_segment()
    layers, backbone = layer_sizes("yolo11x.yaml")
    params = [n for _, n, _ in layers]
    assert sum(params) == summarize("yolo11x.yaml", "x", 640).params and layers[backbone - 1][0] == "C2PSA"
    assert f"({sum(params[backbone:]) / 1e6:.1f}M of {sum(params) / 1e6:.1f}M)" in why_yolo11()


# Cost breakdown ---------------------------------------------------------------------------------------------------


def test_breakdown_parts_add_up_to_the_model_and_name_every_column_part():
    from yolo_revcol.tools.compare import breakdown
    from yolo_revcol.tools.toolbox import build_model

    for name in ("yolov8n.yaml", "yolov8n-revcol.yaml"):
        parts = breakdown(name)
        model = build_model(name)
        assert sum(n for _, n, _ in parts) == sum(p.numel() for p in model.parameters())
        layers, _ = layer_sizes(name)
        assert sum(g for _, _, g in parts) == pytest.approx(sum(g for _, _, g in layers), rel=1e-9)
        assert [p for p, _, _ in parts][-3:] == ["SPPF", "neck", "head"]
    names = [p for p, _, _ in breakdown("yolov8n-revcol.yaml")]
    # Two columns at n: the first has no up fusions and no alphas.
    assert names[0] == "stem" and "column 1 P4/16: down" in names and "column 2 P4/16: up" in names
    assert "column 1 P3/8: up" not in names and "column 1: alphas" not in names and "column 2: alphas" in names
    assert "column 1 P2/4: down" not in names  # level 0 reads the stem output as it is


def test_breakdown_command_writes_its_block(tmp_path):
    doc = tmp_path / "design.md"
    doc.write_text("a\n<!-- breakdown:start -->\nold\n<!-- breakdown:end -->\nb\n")
    cmd = [str(BIN / "yolo-revcol"), "compare", "--breakdown", "--scales", "n", "--out", str(tmp_path)]
    run(cmd + ["--readme", str(doc)])
    rows = list(csv.reader(open(tmp_path / "compare_breakdown.csv")))
    assert rows[0] == ["model", "part", "params", "gflops"]
    assert {r[0] for r in rows[1:]} == {"yolov8n", "yolov8n-revcol"}
    text = doc.read_text()
    assert "old" not in text and "| yolov8n-revcol | column 2 P5/32: blocks |" in text
