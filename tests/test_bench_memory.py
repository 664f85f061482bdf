"""The memory benchmark (`yolo-revcol memory`) at tiny sizes: the figures it must hold, for both block families,
and its opt-in aux section (what intermediate supervision adds to a YOLO training step).

Its full-size figures are in results/memory.md; here each measurement runs on a few-KiB RevCol where the expected
values follow from the model's shapes.
"""

from __future__ import annotations

import csv
import sys

import pytest
from conftest import ROOT, run

from yolo_revcol.tools.bench_memory import (
    MODES,
    QUICK,
    BenchConfig,
    growth_per_column,
    main,
    measure_gradient_error,
    measure_reconstruction,
    measure_rss,
    measure_saved,
)

BLOCKS = ("c2f", "convnext")
TINY = BenchConfig(**QUICK)


def state_bytes(cfg: BenchConfig) -> int:
    """Bytes of one column's four float32 states (strides 4, 8, 16, 32)."""
    return 4 * cfg.batch * sum(c * (cfg.imgsz // 2 ** (i + 2)) ** 2 for i, c in enumerate(cfg.channels))


@pytest.mark.parametrize("block", BLOCKS)
def test_saved_bytes_flat_for_reversible_linear_for_plain(block):
    """Reversible saves the same bytes at 2, 4 and 8 columns (and at 16 its wider stacks' extra); plain and checkpoint
    grow by a fixed step per column."""
    saved = {(m, c): measure_saved(TINY, block, c, m).nbytes for m in MODES for c in (2, 4, 8)}
    saved[("reversible", 16)] = measure_saved(TINY, block, 16, "reversible").nbytes  # the default checkpoint_every
    assert saved[("reversible", 2)] == saved[("reversible", 4)] == saved[("reversible", 8)]
    # from 9 columns the lost-bit stacks are int64, not int32: one column's float32 states more, then flat again
    assert saved[("reversible", 16)] - saved[("reversible", 8)] == state_bytes(TINY)
    plain_step = (saved[("plain", 4)] - saved[("plain", 2)]) / 2
    assert plain_step > state_bytes(TINY)  # a plain column keeps more than its states: every activation inside
    assert saved[("plain", 8)] - saved[("plain", 4)] == pytest.approx(4 * plain_step, rel=0.02)
    # checkpoint keeps each column's inputs: one more column's states per column
    assert saved[("checkpoint", 8)] - saved[("checkpoint", 4)] == 4 * state_bytes(TINY)
    assert saved[("reversible", 8)] / saved[("plain", 8)] < 0.1


@pytest.mark.parametrize("block", BLOCKS)
def test_checkpoint_every_keeps_exactly_its_columns(block):
    """K=2 at 8 columns also keeps columns 2, 4 and 6 (the last is kept anyway): three columns' states more."""
    k0, k2 = (measure_saved(TINY, block, 8, "reversible", every).nbytes for every in (0, 2))
    assert k2 - k0 == 3 * state_bytes(TINY)


@pytest.mark.parametrize("block", BLOCKS)
def test_reconstruction_error_anchors_and_growth(block):
    """Kept columns are exact, keeping every 2nd column lowers the first column's error, and it grows with depth."""
    cfg = BenchConfig(**{**QUICK, "rec_every": [0, 2]})
    four = measure_reconstruction(cfg, block, 4, "trained-like", "float32")
    assert four[2][1] == four[2][3] == four[0][3] == 0.0  # anchors: column 2 (K=2) and the last column
    assert 0 < four[2][0] < four[0][0] < 1e-2
    two = measure_reconstruction(cfg, block, 2, "trained-like", "float32")
    assert two[0][0] < four[0][0]  # one reconstructed column, then three
    growth, low, high = growth_per_column(four[0])
    assert 1 < low <= growth <= high


def test_growth_per_column():
    assert growth_per_column([8.0, 4.0, 2.0, 1.0, 0.0]) == pytest.approx((2.0, 2.0, 2.0))
    assert growth_per_column([9.0, 1.0, 0.0])[0] == pytest.approx(9.0)
    assert growth_per_column([1.0, 0.0]) is None and growth_per_column([1.0, 0.0, 0.0]) is None


@pytest.mark.parametrize("block", BLOCKS)
def test_gradient_error_small_in_float32(block):
    """Two float32 columns: the reversible path's gradients match plain backprop to float32 rounding."""
    first, total, reconstruction = measure_gradient_error(TINY, block, 2, "default", "float32", 0)
    assert 0 <= first < 1e-4 and 0 <= total < 1e-4 and reconstruction == 0.0


@pytest.mark.parametrize("dtype", ["float32", "bf16-autocast"])
def test_default_pass_is_exact_where_division_only_drifts(dtype):
    """Four trained-like convnext columns at the default: the pass rebuilds the first column bit for bit (its own
    reconstruction error is 0) and its gradients match plain backprop, while division alone is visibly off."""
    cfg = BenchConfig(**{**QUICK, "rec_every": [0]})
    check = measure_gradient_error(cfg, "convnext", 4, "trained-like", dtype)  # checkpoint_every: the default
    division = measure_reconstruction(cfg, "convnext", 4, "trained-like", dtype)[0][0]
    assert check.reconstruction == 0.0 and division > 1e-7
    assert check.total < (1e-5 if dtype == "float32" else 1e-2)


def test_rss_worker_runs_as_a_module_entry_point():
    r = measure_rss(TINY, "c2f", 2, "reversible")
    assert r["peak"] >= r["before"] > 0 and r["grad_bytes"] > 0


@pytest.mark.slow
def test_memory_command_writes_report_csv_plot_and_readme_block(tmp_path):
    readme, docs = tmp_path / "README.md", tmp_path / "benchmarks.md"
    readme.write_text("before\n<!-- memory-summary:start -->\nold\n<!-- memory-summary:end -->\nafter\n")
    docs.write_text("before\n<!-- memory:start -->\nold\n<!-- memory:end -->\nafter\n")
    cmd = [sys.executable, str(ROOT / "runs_scripts" / "bench_memory.py"), "--quick", "--out", str(tmp_path)]
    run([*cmd, "--rss-columns", "--grad-columns", "2", "--readme", str(readme), str(docs)])
    summary = readme.read_text()  # the short form: one saved-bytes table, default against plain, no explicit K
    assert "old" not in summary and "| block | columns | reversible, default (MiB) | plain (MiB) |" in summary
    assert summary.count("\n| c2f |") == summary.count("\n| convnext |") > 0
    text = (tmp_path / "memory.md").read_text()
    assert "## 1. Memory" in text and "## 2. Reconstruction error" in text and "## 3. Training step time" in text
    assert "c2f (shipped YAMLs)" in text and "convnext (class default)" in text
    with open(tmp_path / "memory.csv", newline="") as f:
        records = list(csv.DictReader(f))
    saved = {
        (r["block"], r["mode"], int(r["columns"])): int(r["value"])
        for r in records
        if r["section"] == "saved" and r["metric"] == "saved_bytes"
    }
    for block in BLOCKS:  # the CSV holds the bytes themselves, not display-rounded MiB
        assert saved[(block, "reversible", 8)] == measure_saved(TINY, block, 8, "reversible").nbytes
    assert {r["block"] for r in records} == set(BLOCKS)
    assert (tmp_path / "memory.png").stat().st_size > 10_000
    block = docs.read_text()
    assert block.startswith("before\n<!-- memory:start -->\nMeasured by `") and block.endswith(
        "<!-- memory:end -->\nafter\n"
    )
    assert "old" not in block and "| c2f | 8 |" in block and "| convnext | 8 |" in block
    assert "reversible, default (MiB)" in block and "float32: default pass" in block  # the default beside K


def test_aux_section_measures_what_aux_adds(tmp_path):
    """`--sections aux` alone, tiny: four rows, supervision saves more, reversible saves less than plain backprop."""
    argv = ["--sections", "aux", "--aux-scale", "n", "--aux-imgsz", "64", "--aux-batch", "2", "--aux-reps", "1"]
    assert main([*argv, "--out", str(tmp_path)]) == 0
    assert not (tmp_path / "memory.md").exists()  # the default report did not run
    table = [line for line in (tmp_path / "aux_memory.md").read_text().splitlines() if line.startswith("| ")]
    rows = [[c.strip() for c in line.split("|")[1:-1]] for line in table[1:]]  # skip the header
    variants = [("reversible", "0"), ("reversible", "0.5"), ("plain", "0"), ("plain", "0.5")]
    assert [(r[0], r[1]) for r in rows] == variants
    with open(tmp_path / "aux_memory.csv", newline="") as f:
        saved = [float(r["saved_mib"]) for r in csv.DictReader(f)]
    assert saved[1] > saved[0] and saved[3] > saved[2]  # the heads and the handed-out states cost memory
    assert saved[0] < saved[2]  # the reversible path saves less than plain backprop


def test_auto_sentence_says_column_for_one_and_columns_for_more():
    from dataclasses import replace

    from yolo_revcol.tools.bench_memory import BenchConfig, auto_sentence

    one, several = auto_sentence(replace(BenchConfig(), mem_columns=[1])), auto_sentence(BenchConfig())
    assert "K=0 at 1 column." in one and "1 columns" not in one and "columns" in several


TINY_PAPER_YAML = """\
nc: 8
backbone:
  - [-1, 1, RevCol, [[8, 16, 24, 32], [1, 1, 1, 1], 4, {block: convnext, stem: patchify, kernel: 3, drop_path: 0.1}]]
  - [0, 1, Index, [24, 2]]
  - [0, 1, Index, [32, 3]]
head:
  - [[1, 2], 1, Detect, [nc]]
"""


def test_paper_section_reports_default_beside_explicit_setting(tmp_path, monkeypatch):
    """`--sections paper` on a tiny 4-column stand-in for RevCol-T: the default pass rebuilds exactly where division
    alone drifts, both reversible settings save less than plain backprop, and the files and README block are written.
    """
    from yolo_revcol.tools.bench_memory import paper

    (tmp_path / "tiny-revcol.yaml").write_text(TINY_PAPER_YAML)
    monkeypatch.setitem(paper.PAPER_MODELS, "t", ("Tiny", str(tmp_path / "tiny-revcol.yaml"), "yolov8n.yaml"))
    readme = tmp_path / "README.md"
    readme.write_text("<!-- paper-memory:start -->\nold\n<!-- paper-memory:end -->\n")
    rec, steps = paper.paper_section(tmp_path, ["t"], TINY, rec_imgsz=32, imgsz=64, batch=1, reps=1, readme=readme)
    values = {(w, d, s, m): v for _, columns, w, d, s, m, v in rec}
    for weights in ("default", "trained-like"):
        for dtype, tol in (("float32", 1e-5), ("bf16-autocast", 1e-2)):
            for setting in ("default", "K=2"):
                assert values[(weights, dtype, setting, "reconstruction")] == 0.0
                assert values[(weights, dtype, setting, "gradients")] < tol
    assert values[("trained-like", "float32", "K=0", "division")] > 1e-7  # what the lost-bit stacks remove
    division = {k: values[("trained-like", "float32", f"K={k}", "division")] for k in (0, 2)}
    assert division[2] < division[0]  # a kept column restarts the drift
    assert [s[1] for s in steps] == ["stock", "reversible, default", "reversible, checkpoint_every 2", "plain backprop"]
    saved = {s[1]: s[2] for s in steps}
    assert steps[0][3] == steps[0][5] == 1.0
    assert 0 < saved["reversible, default"] < saved["plain backprop"]
    assert 0 < saved["reversible, checkpoint_every 2"] < saved["plain backprop"]
    assert all((tmp_path / f).is_file() for f in ("paper_memory.md", "paper_memory.csv", "paper_memory_step.csv"))
    block = readme.read_text()
    assert "old" not in block and "| Tiny | 4 | init | float32 |" in block and "| yolov8n | stock |" in block


@pytest.mark.parametrize(
    "bad, message",
    [
        (["--paper-imgsz", "100"], "--paper-imgsz must be a multiple of 32, got 100"),
        (["--paper-reps", "0"], "--paper-reps must be >= 1, got 0"),
        (["--paper-models", "x"], "argument --paper-models: invalid choice: 'x'"),
    ],
)
def test_paper_options_are_checked(bad, message, capsys):
    from yolo_revcol.tools.bench_memory import parse_args

    args = parse_args(["--sections", "paper"])
    assert args.paper_models == ["t", "s", "b"] and args.paper_step_models == ["t"]
    with pytest.raises(SystemExit):
        parse_args(["--sections", "paper", *bad])
    assert message in capsys.readouterr().err
