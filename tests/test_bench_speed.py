"""The speed benchmark (`yolo-revcol speed`): a tiny run end to end, and its pure helpers. No timing targets here."""

from __future__ import annotations

import csv
import math
from pathlib import Path

import pytest
from conftest import BIN, ROOT, run

from yolo_revcol.tools.bench_speed import (
    BACKBONE,
    CSV_HEADER,
    EAGER,
    HEADER,
    ORT,
    PAPER_DEFAULTS,
    PAPER_STOCK,
    SCALE_DEFAULTS,
    TRAIN_PLAIN,
    TRAIN_REV,
    Row,
    csv_rows,
    headers,
    paper_pair,
    parse_args,
    scale_pair,
    table_rows,
)
from yolo_revcol.tools.toolbox import build_model, interleave, synthetic_batch

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
    assert "target" not in md.lower()  # the project's targets stay in the CSV, out of the user's table
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


def test_wrapper_script_is_the_command():
    import subprocess
    import sys

    cmd = [sys.executable, str(ROOT / "runs_scripts" / "bench_speed.py"), "--paper", "t", "--scales", "n"]
    proc = subprocess.run(cmd, capture_output=True, text=True)
    assert proc.returncode == 2 and "--scales n does not apply with --paper" in proc.stderr  # the tool's own check


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

    from yolo_revcol.tools.bench_speed import backbone_forward

    model = build_model(yaml)
    sppf = next(m for m in model.model if isinstance(m, SPPF))
    seen = []
    sppf.register_forward_hook(lambda m, i, o: seen.append(o))
    x = torch.rand(1, 3, 64, 64)
    with torch.inference_mode():
        model(x)
        out = backbone_forward(model, x)
    assert len(seen) == 2 and torch.equal(out, seen[0]) and out.shape == (1, 256, 2, 2)


@pytest.fixture(scope="module")
def tiny_paper_run(tmp_path_factory):
    """``--paper`` (RevCol-T vs yolov8s) at 64 px without ONNX, 1 round of 1 run, training batch 1: (out, readme).
    7-15 s on 2 cores: T is 91 GFLOPs at 640 but 0.9 at 64."""
    out = tmp_path_factory.mktemp("speed_paper")
    readme = out / "README.md"
    blocks = (
        "<!-- speed:start -->\nscales\n<!-- speed:end -->\n<!-- speed-paper:start -->\nold\n<!-- speed-paper:end -->"
    )
    readme.write_text(f"intro\n{blocks}\nrest\n")
    cmd = [str(BIN / "yolo-revcol"), "speed", "--paper", "--no-onnx", "--imgsz", "64", "--rounds", "1", "--runs", "1"]
    cmd += ["--warmup", "0", "--train-batch", "1", "--train-imgsz", "64", "--train-warmup", "0", "--threads", "1"]
    run([*cmd, "--out", str(out), "--readme", str(readme)], cwd=out, timeout=120)
    return out, readme


def test_tiny_paper_run_writes_speed_paper_without_targets(tiny_paper_run):
    out, readme = tiny_paper_run
    assert sorted(p.name for p in out.iterdir()) == [
        "README.md",
        "speed_paper.csv",
        "speed_paper.md",
        "speed_paper.png",
    ]
    rows = list(csv.DictReader(open(out / "speed_paper.csv")))
    assert list(rows[0]) == ["models", *CSV_HEADER[1:]]
    assert [(r["models"], r["measure"], r["batch"]) for r in rows] == [
        ("T vs yolov8s", EAGER, "1"),
        ("T vs yolov8s", BACKBONE, "1"),
        ("T vs yolov8s", TRAIN_REV, "1"),
        ("T vs yolov8s", TRAIN_PLAIN, "1"),
    ]
    assert all(r["target"] == "" and r["target_met"] == "" for r in rows)
    assert rows[2]["stock_ms"] == rows[3]["stock_ms"]  # both RevCol training variants against the same stock runs
    md = (out / "speed_paper.md").read_text()
    assert "`revcol-t-yolov8.yaml` vs `yolov8s.yaml`" in md and "target" not in md.lower()  # user text: measurements
    text = readme.read_text()  # the paper block is filled, the scale block left alone
    assert "old" not in text and f"| T vs yolov8s | {TRAIN_PLAIN} | 64 | 1 |" in text and "\nscales\n" in text


def tiny_revcol_yaml(folder: Path, **options) -> Path:
    """RevCol-T's YAML cut to 2 columns of one block per level, plus RevCol ``options``: a fast paper-like model."""
    import yaml as pyyaml

    cfg = pyyaml.safe_load(Path(paper_pair("t").revcol).read_text())
    row = cfg["backbone"][0]
    row[3][1:3] = [[1, 1, 1, 1], 2]  # blocks per level, columns
    row[3][3].update(options)
    path = folder / "tiny-revcol.yaml"
    path.write_text(pyyaml.safe_dump(cfg))
    return path


def test_bench_train_times_both_training_paths_of_one_model_against_one_stock_run(tmp_path):
    import torch

    from yolo_revcol.tools.bench_speed import Pair, bench_train

    pair = Pair("yolov8s.yaml", str(tiny_revcol_yaml(tmp_path)), "tiny vs yolov8s")
    argv = ["--paper", "--train-batch", "1", "--train-imgsz", "64", "--rounds", "1", "--train-runs", "2"]
    args = parse_args([*argv, "--train-warmup", "0", "--threads", "1"])
    threads = torch.get_num_threads()
    try:
        rows = bench_train(pair, args)
    finally:
        torch.set_num_threads(threads)  # interleave sets --threads for the process
    assert [r.measure for r in rows] == [TRAIN_REV, TRAIN_PLAIN] and {r.scale for r in rows} == {"tiny vs yolov8s"}
    assert rows[0].stock == rows[1].stock and all(r.target is None for r in rows)
    assert all(len(r.revcol) == 2 and min(r.revcol) > 0 for r in rows)


def test_paper_option_takes_t_by_default_and_letters_once_each():
    assert parse_args([]).paper is None and parse_args([]).scales == ["n", "s"]
    assert parse_args(["--paper"]).paper == ["t"]
    assert parse_args(["--paper", "b", "t", "b"]).paper == ["b", "t"]
    assert parse_args(["--paper", "t", "s", "b", "--no-onnx"]).paper == ["t", "s", "b"]


@pytest.mark.parametrize(
    "argv, message",
    [
        (["--paper", "x"], "argument --paper: invalid choice: 'x'"),
        (["--paper", "T"], "argument --paper: invalid choice: 'T'"),  # letters as in the YAML names
        (["--paper", "--scales", "n"], "--scales n does not apply with --paper"),
        (["--paper", "--rounds", "0"], "--rounds must be >= 1, got 0"),
        (["--warmup", "-1"], "--warmup must be >= 0, got -1"),
    ],
)
def test_bad_options_are_refused_naming_the_option_and_value(argv, message, capsys):
    with pytest.raises(SystemExit) as exc:
        parse_args(argv)
    assert exc.value.code == 2 and message in capsys.readouterr().err


def test_paper_mode_takes_smaller_defaults_where_the_user_set_none():
    timing = list(SCALE_DEFAULTS)
    assert {k: getattr(parse_args([]), k) for k in timing} == SCALE_DEFAULTS
    assert {k: getattr(parse_args(["--paper"]), k) for k in timing} == PAPER_DEFAULTS
    assert PAPER_DEFAULTS == dict(rounds=3, runs=3, warmup=1, train_batch=4, train_runs=1)
    args = parse_args(["--paper", "s", "--rounds", "7", "--train-batch", "2", "--warmup", "0"])
    assert (args.rounds, args.train_batch, args.warmup) == (7, 2, 0)  # explicit values win, even 0
    assert (args.runs, args.train_runs) == (PAPER_DEFAULTS["runs"], PAPER_DEFAULTS["train_runs"])
    assert parse_args(["--runs", "3"]).rounds == SCALE_DEFAULTS["rounds"]


def test_paper_pairs_are_the_shipped_yamls_and_the_stock_model_of_their_neck():
    assert PAPER_STOCK == {"t": "yolov8s.yaml", "s": "yolov8s.yaml", "b": "yolov8m.yaml"}
    for letter, stock in PAPER_STOCK.items():
        pair = paper_pair(letter)
        assert Path(pair.revcol).is_file() and Path(pair.revcol).name == f"revcol-{letter}-yolov8.yaml"
        assert pair.stock == stock and pair.label == f"{letter.upper()} vs {stock[:-5]}"
    assert scale_pair("n").label == "n" and scale_pair("n").stock == "yolov8n.yaml"


def after_sppf(model) -> list[tuple]:
    """Type, (Detect) inputs relative to SPPF and parameter shapes (repeats included) of every layer after SPPF."""
    from ultralytics.nn.modules import SPPF

    start = next(i for i, m in enumerate(model.model) if isinstance(m, SPPF))
    layers = []
    for m in model.model[start + 1 :]:
        inputs = [j - start for j in m.f] if type(m).__name__ == "Detect" else None  # the neck's own outputs
        layers.append((type(m).__name__, inputs, [tuple(p.shape) for p in m.parameters()]))
    return layers


@pytest.mark.parametrize("letter", list(PAPER_STOCK))
def test_paper_yaml_neck_and_head_are_its_stock_partners(letter):
    """Every layer after SPPF (neck, Detect) has the stock partner's type, widths and repeats; T and S match in full,
    B but for the inputs the two backbone concats add. The RevCol row is cut to one column of one block per level
    first: the head depends only on its channels (B builds in ~1 s, not 11).
    """
    import yaml as pyyaml

    pair = paper_pair(letter)
    cfg = pyyaml.safe_load(Path(pair.revcol).read_text())
    revcol_row = cfg["backbone"][0]
    assert revcol_row[2] == "RevCol"
    revcol_row[3][1:3] = [[1, 1, 1, 1], 1]  # blocks per level, columns
    stock, revcol = after_sppf(build_model(pair.stock)), after_sppf(build_model(cfg))

    def widths(layers):
        return [(name, inputs, [shape[0] for shape in shapes]) for name, inputs, shapes in layers]

    assert len(stock) == len(revcol) == 13 and widths(stock) == widths(revcol)
    assert stock[-1] == revcol[-1] and stock[-1][0] == "Detect"  # Detect in full, input channels included
    assert revcol[-1][2][0][1] == {"t": 128, "s": 128, "b": 192}[letter]  # first conv of the P3 box branch
    # B's backbone P4/P3 are 288/144 channels, YOLOv8m's 384/192: the C2f after each concat (2, 5) reads fewer.
    assert [k for k, (a, b) in enumerate(zip(stock, revcol)) if a != b] == ([2, 5] if letter == "b" else [])
    if letter == "b":
        assert [stock[k][2][0][1] - revcol[k][2][0][1] for k in (2, 5)] == [384 - 288, 192 - 144]


def test_paper_rows_have_no_targets_and_their_own_first_column():
    def rows(label):
        return [Row(label, m, 640, 1, [10.0], [5.0]) for m in (EAGER, ORT, TRAIN_REV, TRAIN_PLAIN)]

    assert [r.target for r in rows("n")] == [0.8, 0.8, 1.0, None]  # the scale rows keep theirs
    for label in (paper_pair(p).label for p in PAPER_STOCK):
        assert all(r.target is None and r.met == "" for r in rows(label))
        assert all(len(row) == len(HEADER) for row in table_rows(rows(label)))  # no target columns for users
        assert all(row[7:9] == ["", ""] for row in csv_rows(rows(label)))
    assert Row("ns", EAGER, 640, 1, [10.0], [5.0]).target is None  # letters, not substrings, pick the target scales
    assert headers(False) == (HEADER, CSV_HEADER)
    assert headers(True)[0] == ("models", *HEADER[1:]) and headers(True)[1][0] == "models"
