"""The comparison tool and the size target of the default configuration (counts are deterministic)."""

from __future__ import annotations

import csv

from conftest import BIN, run

from yolo_revcol.tools.compare import TARGET, compare


def test_every_scale_is_at_most_080x_stock_params_and_gflops():
    for stock, ours in compare("yolov8", "nsmlx", imgsz=640):
        assert ours.params <= TARGET * stock.params, (ours, stock)
        assert ours.gflops <= TARGET * stock.gflops, (ours, stock)
        assert ours.gflops > 0 and ours.layers > 0


def test_stock_figures_match_ultralytics_published_sizes():
    (stock, _), = compare("yolov8", "n", imgsz=640)
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


def test_unknown_subcommand_prints_usage():
    import subprocess

    proc = subprocess.run([str(BIN / "yolo-revcol"), "nope"], capture_output=True, text=True)
    assert proc.returncode == 2 and "compare" in proc.stdout
