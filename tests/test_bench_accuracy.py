"""The accuracy benchmark (`yolo-revcol accuracy`): a --quick run over two seeds end to end, and its pure helpers."""

from __future__ import annotations

import csv
import math

import pytest
from conftest import BIN, CFG, run

from yolo_revcol.tools.bench_accuracy import Result, decide, mean_std, resolve_model, summary_rows


@pytest.fixture(scope="module")
def quick_run(tmp_path_factory):
    """One --quick run (1 epoch, 64 px, 8+4 generated images, seeds 0 and 1, both default models, two at a time).

    Returns (out, readme, stdout of the first run, stdout of an identical second run).
    """
    out = tmp_path_factory.mktemp("accuracy")
    readme = out / "README.md"
    readme.write_text("intro\n<!-- accuracy:start -->\nold\n<!-- accuracy:end -->\nrest\n")
    cmd = [
        str(BIN / "yolo-revcol"),
        "accuracy",
        "--quick",
        "--jobs",
        "2",
        "--out",
        str(out),
        "--project",
        str(out / "runs"),
    ]
    first = run([*cmd, "--readme", str(readme)], env={"YOLO_OFFLINE": "1"}, timeout=400)
    second = run(cmd, env={"YOLO_OFFLINE": "1"}, timeout=400)
    return out, readme, first.stdout, second.stdout


def test_quick_run_writes_markdown_csv_png(quick_run):
    out, _, stdout, _ = quick_run
    md = (out / "accuracy_quick-shapes.md").read_text()
    assert "seeds 0, 1" in md and "epochs 1, imgsz 64" in md and "| yolov8n-revcol |" in stdout
    assert "| yolov8n | " in md and "baseline" in md
    assert (out / "accuracy_quick-shapes.png").stat().st_size > 10_000


def test_quick_run_csv_has_one_numeric_row_per_model_and_seed(quick_run):
    out, _, _, _ = quick_run
    rows = list(csv.DictReader(open(out / "accuracy_quick-shapes.csv")))
    assert [(r["model"], r["seed"]) for r in rows] == [
        ("yolov8n", "0"),
        ("yolov8n", "1"),
        ("yolov8n-revcol", "0"),
        ("yolov8n-revcol", "1"),
    ]
    for r in rows:
        assert int(r["params"]) > 1_000_000 and float(r["gflops_640"]) > 0 and r["train_only_params"] == "0"
        assert 0 <= float(r["map50"]) <= 1 and 0 <= float(r["map50_95"]) <= 1
        assert float(r["train_s"]) > 0 and float(r["peak_rss_mib"]) > 100
        assert (out / "runs" / "quick-shapes" / f"{r['model']}-seed{r['seed']}" / "results.csv").is_file()
    assert int(rows[2]["params"]) < int(rows[0]["params"])  # RevCol is the smaller model


def test_quick_run_replaces_readme_block_and_second_run_reuses_every_run(quick_run):
    _, readme, first, second = quick_run
    text = readme.read_text()
    assert "old" not in text and "| yolov8n-revcol |" in text and text.endswith("rest\n")
    assert "reused run" not in first and second.count("(reused run)") == 4


def test_resolve_model_finds_repo_yamls_and_leaves_ultralytics_names():
    assert resolve_model("yolov8n.yaml") == "yolov8n.yaml"
    assert resolve_model("yolov8n-revcol.yaml") == str(CFG / "yolov8n-revcol.yaml")  # scale of yolov8-revcol.yaml
    assert resolve_model(str(CFG / "yolov8-revcol.yaml")) == str(CFG / "yolov8-revcol.yaml")


def test_decision_rule_needs_two_standard_errors():
    assert mean_std([0.2, 0.4]) == pytest.approx((0.3, math.sqrt(0.02)))
    diff, se, verdict = decide([0.30, 0.31, 0.32], [0.20, 0.21, 0.22])  # far apart, tight: better
    assert diff == pytest.approx(0.10) and se == pytest.approx(math.sqrt(2 * 0.0001 / 3)) and verdict == "better"
    assert decide([0.20, 0.21, 0.22], [0.30, 0.31, 0.32])[2] == "worse"
    assert decide([0.20, 0.30, 0.40], [0.25, 0.28, 0.31])[2] == "no difference"  # difference inside the scatter
    assert decide([0.5], [0.1, 0.2])[2] == "n/a"  # one seed decides nothing


def test_summary_rows_aggregate_seeds_and_compare_with_the_first_model():
    def result(name, seed, m):
        return Result(name, 2_000_000, 1.0, 6.0, m, m, 100.0, 90.0, 1000.0, "", [m], seed)

    results = {
        "a": [result("a", 0, 0.30), result("a", 1, 0.32), result("a", 2, 0.31)],
        "b": [result("b", 0, 0.20), result("b", 1, 0.21), result("b", 2, 0.22)],
    }
    rows = summary_rows(results)
    assert [r[0] for r in rows] == ["a", "b"] and rows[0][4] == rows[1][4] == 3
    assert rows[0][6] == "0.310 ± 0.010" and rows[1][6] == "0.210 ± 0.010"
    assert rows[0][7:10] == ["1.000", "", "baseline"]
    assert rows[1][7] == "0.677" and rows[1][9] == "worse"


def test_one_seed_shows_no_spread_and_decides_nothing():
    def result(name, m):
        return Result(name, 2_000_000, 1.0, 6.0, m, m, 100.0, 90.0, 1000.0, "", [m], 0)

    rows = summary_rows({"a": [result("a", 0.30)], "b": [result("b", 0.20)]})
    assert rows[1][6] == "0.200" and rows[1][8] == "-0.100" and rows[1][9] == "n/a"  # no "± 0.000", no "± nan"
