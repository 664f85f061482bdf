"""The accuracy benchmark (`yolo-revcol accuracy`): a --quick run over two seeds end to end, and its pure helpers."""

from __future__ import annotations

import csv
import json
import math
import re
import shutil
import subprocess
from pathlib import Path

import pytest
from conftest import BIN, CFG, run

from yolo_revcol.tools.bench_accuracy import (
    Result,
    equal_cost_rows,
    frontier_at,
    resolve_model,
    run_key,
    scaled_stock_yaml,
    summary_rows,
    train_cached,
)
from yolo_revcol.tools.toolbox import Settings, decide, mean_std


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
    shutil.rmtree(out / "runs" / "quick-shapes" / "results")  # the local cache: the second run needs the ledger
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


def test_quick_run_keeps_every_run_in_the_ledger(quick_run):
    out, _, _, _ = quick_run
    ledger = sorted(p.name for p in (out / "runs" / "quick-shapes").glob("*.json"))
    assert [name.rsplit("-", 1)[0] for name in ledger] == [
        "yolov8n-revcol-seed0",
        "yolov8n-revcol-seed1",
        "yolov8n-seed0",
        "yolov8n-seed1",
    ]
    first = json.loads((out / "runs" / "quick-shapes" / ledger[0]).read_text())
    assert first["seed"] == 0 and len(first["curve"]) == 1 and 0 <= first["map50_95"] <= 1


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


def _size(yaml_path) -> tuple[int, list[int]]:
    """Parameters and the backbone's output channels of a detection model built from a YAML (nc 80)."""
    from ultralytics.nn.tasks import DetectionModel

    model = DetectionModel(str(yaml_path), verbose=False)
    return sum(p.numel() for p in model.parameters()), [m.cv2.conv.out_channels for m in model.model[2:9:2]]


def test_scaled_stock_at_its_own_multiples_is_the_stock_model(tmp_path):
    path = scaled_stock_yaml("yolov8n@d0.33w0.25", tmp_path)
    assert path.name == "yolov8n-d0.33-w0.25.yaml"
    assert _size(path) == _size("yolov8n.yaml")


def test_scaled_stock_narrows_every_layer_as_ultralytics_scales_widths(tmp_path):
    path = scaled_stock_yaml("yolov8n@d0.17w0.21", tmp_path)
    params, channels = _size(path)
    stock_params, _ = _size("yolov8n.yaml")
    # make_divisible(c * 0.21, 8) of the C2f widths 128/256/512/1024 (the last is SPPF's input, C2f at P5)
    assert channels == [32, 56, 112, 216] and params < 0.8 * stock_params
    width_only = scaled_stock_yaml("yolov8n@w0.21", tmp_path)
    assert width_only.name == "yolov8n-d0.33-w0.21.yaml"  # the scale's own depth kept
    assert resolve_model("yolov8n@w0.21", tmp_path) == str(width_only.resolve())


@pytest.mark.parametrize(
    "name, message",
    [
        ("yolov8n@", "expected e.g. yolov8n@w0.21"),
        ("yolov8n@x0.2", "expected e.g. yolov8n@w0.21"),
        ("yolov9n@w0.2", "expected e.g. yolov8n@w0.21"),
        ("yolov8n@w0", "width multiple 0 must be in (0, 4]"),
        ("yolov8n@d0.1.2", "depth multiple '0.1.2' is not a number"),
    ],
)
def test_scaled_stock_names_the_bad_value(tmp_path, name, message):
    with pytest.raises(ValueError, match=re.escape(message)):
        scaled_stock_yaml(name, tmp_path)


@pytest.mark.parametrize("bad, message", [("yolov8n@q1", "expected e.g."), ("yolov8n@w0", "width multiple 0")])
def test_accuracy_command_refuses_a_bad_scaled_name(bad, message):
    cmd = [str(BIN / "yolo-revcol"), "accuracy", "--models", "yolov8n.yaml", bad]
    result = subprocess.run(cmd, capture_output=True, text=True, timeout=120)
    assert result.returncode == 2 and bad in result.stderr and message in result.stderr


def test_accuracy_command_refuses_two_models_of_one_name(tmp_path):
    cmd = [str(BIN / "yolo-revcol"), "accuracy", "--models", str(CFG / "yolov8n-revcol.yaml"), "yolov8n-revcol.yaml"]
    result = subprocess.run([*cmd, "--project", str(tmp_path)], capture_output=True, text=True, timeout=120)
    assert result.returncode == 2 and "model names (YAML stems) must differ" in result.stderr


def test_ledger_run_is_reused_by_key_and_its_notes_ignored(tmp_path):
    data, settings = str(CFG / "datasets" / "revcol-shapes.yaml"), Settings(seed=3)
    key = run_key("yolov8n.yaml", data, settings)
    assert key != run_key("yolov8n.yaml", data, Settings(seed=4))
    ledger = tmp_path / "ledger"
    ledger.mkdir()
    fields = dict(params=1, gflops=0.1, gflops_640=1.0, map50=0.5, map50_95=0.25, train_s=1.0, loop_s=1.0)
    fields.update(rss_mib=1.0, save_dir="gone", seed=3, source="imported")
    (ledger / f"anything-seed3-{key}.json").write_text(json.dumps(fields))
    result, reused = train_cached("yolov8n.yaml", data, tmp_path / "project", settings, ledger)
    assert reused and result.map50_95 == 0.25 and result.name == "yolov8n" and result.curve == []


def test_recipe_prints_the_benchmark_settings_as_yolo_arguments():
    out = run([str(BIN / "yolo-revcol"), "recipe", "--epochs", "3"]).stdout.split()
    args = dict(word.split("=", 1) for word in out)
    expected = {k: str(v) for k, v in vars(Settings(epochs=3)).items()}
    assert args == expected and args["lr0"] == str(Settings().lr0)
    bad = subprocess.run([str(BIN / "yolo-revcol"), "recipe", "--epochs", "0"], capture_output=True, text=True)
    assert bad.returncode == 2 and "--epochs must be >= 1, got 0" in bad.stderr


def test_demo_trains_with_the_recipe_and_no_settings_of_its_own():
    demo = (CFG.parent / "runs_scripts" / "demo.sh").read_text()
    assert 'yolo-revcol recipe --epochs "$EPOCHS"' in demo and "$RECIPE" in demo
    for setting in ("lr0=", "optimizer=", "warmup_epochs=", "close_mosaic="):
        assert setting not in demo


def test_frontier_interpolates_between_the_stock_rows_around_a_cost():
    stock = [(8.0, 0.22), (6.0, 0.20), (4.0, 0.14)]
    assert frontier_at(stock, 7.0) == pytest.approx(0.21) and frontier_at(stock, 5.0) == pytest.approx(0.17)
    assert frontier_at(stock, 8.0) == pytest.approx(0.22)
    assert math.isnan(frontier_at(stock, 9.0)) and math.isnan(frontier_at(stock, 3.0))


def result(name: str, seed: int, m: float, gflops: float) -> Result:
    """A made-up run: ``m`` mAP50-95 at ``gflops`` GFLOPs@640 (parameters follow the GFLOPs)."""
    return Result(name, int(gflops * 1e6), 1.0, gflops, m, m, 100.0, 90.0, 1000.0, "", [m], seed)


def test_equal_cost_rows_judge_revcol_against_the_nearest_stock_row():
    results = {
        "n": [result("yolov8n", s, 0.22 + 0.001 * s, 8.0) for s in range(3)],
        "small": [result("yolov8n-d0.17-w0.21", s, 0.20 + 0.001 * s, 6.0) for s in range(3)],
        "revcol": [result("yolov8n-revcol", s, 0.14 + 0.01 * s, 6.2) for s in range(3)],
    }
    (row,) = equal_cost_rows(results)
    assert row[0] == "yolov8n-revcol" and row[1:3] == ["0.775", "0.775"] and row[3] == "0.150 ± 0.010"
    assert row[4] == "0.203" and row[5] == "-0.053"  # frontier between 6.0 (0.201) and 8.0 (0.221) GFLOPs
    assert row[6] == "yolov8n-d0.17-w0.21 (0.750x GFLOPs)" and row[8] == "worse"
    assert equal_cost_rows({"n": results["n"], "revcol": results["revcol"]}) == []  # no scaled stock row


def test_resolve_model_writes_ablation_variants_by_their_run_name(tmp_path):
    import yaml

    path = Path(resolve_model("yolov8n-revcol-c2f-p3p4wide", tmp_path))
    assert path == (tmp_path / "yolov8n-revcol-c2f-p3p4wide.yaml").resolve()
    row = yaml.safe_load(path.read_text())["backbone"][0]
    assert row[2] == "RevCol" and row[3][0] == [32, 160, 320, 512] and row[3][3]["stem"] == "yolo"
    assert resolve_model("yolov8n-revcol-no-such-variant.yaml", tmp_path) == "yolov8n-revcol-no-such-variant.yaml"


def test_frontier_plot_names_every_model_in_its_legend_not_beside_the_points(tmp_path, monkeypatch):
    import contextlib

    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from yolo_revcol.tools import bench_accuracy

    drawn = {}

    @contextlib.contextmanager
    def keep(path, *grid, **kwargs):
        fig, ax = plt.subplots(*grid, **kwargs)
        drawn["ax"] = ax
        yield fig, ax
        fig.savefig(path)

    monkeypatch.setattr(bench_accuracy, "figure", keep)
    results = {
        "n": [result("yolov8n", s, 0.22, 8.0) for s in range(3)],
        "small": [result("yolov8n-d0.17-w0.21", s, 0.20, 6.3) for s in range(3)],
        "a": [result("yolov8n-revcol", s, 0.14, 6.2) for s in range(3)],
        "b": [result("yolov8n-revcol-c2f-p3p4wide", 0, 0.13, 6.3)],  # nearly the same point as the one above
    }
    bench_accuracy.plot_frontier(results, "t", tmp_path / "f.png")
    ax = drawn["ax"]
    labels = [t.get_text() for t in ax.get_legend().get_texts()]
    assert len(ax.texts) == 0 and (tmp_path / "f.png").is_file()
    assert "yolov8n-revcol (3 seeds)" in labels and "yolov8n-revcol-c2f-p3p4wide (1 seed)" in labels
