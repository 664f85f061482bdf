"""The memory benchmark (`yolo-revcol memory`) at tiny sizes: what it measures holds for both block families, the
shipped reverse pass is exact where division alone drifts, and every section writes its files and blocks.

Its full-size figures are in results/memory.md and docs/benchmarks.md.
"""

from __future__ import annotations

import csv

import pytest
import torch
from division_inverse import reconstruct_states

from yolo_revcol.tools import bench_memory as bm
from yolo_revcol.tools.toolbox import saved_mib

TINY = {**bm.SIZE, **bm.QUICK}


def saved(block: str, columns: int, mode: str) -> float:
    model, x = bm.backbone(TINY, block, columns, mode), bm.image(TINY)
    return saved_mib(model, lambda: model(x))


@pytest.mark.parametrize("block", bm.BLOCKS)
def test_reversible_saves_flat_bytes_far_below_plain(block):
    """Reversible keeps the stem output and the last column whatever the column count; plain keeps every column's
    activations and checkpointing every column's inputs, so both grow."""
    mib = {(m, c): saved(block, c, m) for m in bm.MODES for c in (2, 8)}
    assert mib[("reversible", 8)] / mib[("reversible", 2)] < 1.05
    assert mib[("plain", 8)] / mib[("plain", 2)] > 3 and mib[("checkpoint", 8)] > mib[("checkpoint", 2)]
    assert mib[("reversible", 8)] / mib[("plain", 8)] < 0.1


@pytest.mark.parametrize("block", bm.BLOCKS)
@pytest.mark.parametrize("dtype", bm.DTYPES)
def test_reverse_pass_is_exact_and_its_gradients_match_plain(block, dtype):
    """Three trained-like columns at the defaults: the pass rebuilds the first column bit for bit and its gradients
    match plain backprop within the bound the tool states (float32 summation order, bf16 rounding)."""
    model = bm.trained_like(bm.backbone(TINY, block, 3, "plain"), seed=2)
    first, total, reconstruction = bm.gradient_check(model, bm.image(TINY), dtype)
    assert reconstruction == 0.0
    assert 0 <= first <= total < bm.GRADIENT_BOUND[dtype]


@torch.no_grad()
def division_only_error(model, img) -> float:
    """Worst relative error over the first column's levels when the states are rebuilt by division alone,
    (state - body) / alpha, from the last column back (what a reverse pass without the lost-bit stacks computes)."""
    x = model.stem(img)
    states, every = None, []
    for column in model.columns:
        states = column(x, states)
        every.append(states)
    first = reconstruct_states(model.columns, x, every[-1])[0]
    return max(float((r.double() - t.double()).norm() / t.double().norm()) for r, t in zip(first, every[0]))


def test_division_only_drifts_and_grows_with_columns_where_the_shipped_pass_is_exact():
    """Why RevCol keeps the bits that rounding discards: rebuilding by division alone loses accuracy at every
    column, more the more columns it goes through, while the shipped pass's own error stays 0 (the figures at full
    size and the command that measured them: docs/design.md, "What the division-only tables measured")."""
    img, errors = bm.image(TINY), {}
    for columns in (2, 6):
        model = bm.trained_like(bm.backbone(TINY, "convnext", columns, "plain"), seed=2)
        assert bm.gradient_check(model, img, "float32")[2] == 0.0  # the shipped pass
        errors[columns] = division_only_error(model.eval(), img)
    assert 0 < errors[2] < errors[6]
    assert errors[6] > 1e-6  # far above one float32 rounding (6e-8)


def readme_copy(path, *blocks):
    path.write_text("".join(f"before {b}\n<!-- {b}:start -->\nold\n<!-- {b}:end -->\nafter\n" for b in blocks))
    return path


def test_quick_run_writes_report_csv_plot_and_blocks(tmp_path):
    readme = readme_copy(tmp_path / "README.md", "memory-summary")
    docs = readme_copy(tmp_path / "benchmarks.md", "memory")
    argv = ["--quick", "--blocks", "c2f", "--columns", "2", "8", "--grad-columns", "2", "--out", str(tmp_path)]
    assert bm.main([*argv, "--readme", str(readme), str(docs)]) == 0
    text = (tmp_path / "memory.md").read_text()
    for heading in ("## Bytes saved for backward", "## Peak RSS", "## The reverse pass"):
        assert heading in text
    assert (tmp_path / "memory.png").stat().st_size > 10_000
    with open(tmp_path / "memory.csv", newline="") as f:
        rows = {(r["section"], r["mode"], r["columns"], r["metric"]): float(r["value"]) for r in csv.DictReader(f)}
    assert rows[("saved", "reversible", "8", "saved_mib")] < rows[("saved", "plain", "8", "saved_mib")]
    for mode in bm.MODES:  # the RSS child ran per mode: a whole torch process, a step that did not shrink it
        before, peak = rows[("rss", mode, "2", "before_kib")], rows[("rss", mode, "2", "peak_kib")]
        assert 100 * 1024 < before <= peak < 8 * 2**20 and rows[("rss", mode, "2", "grad_bytes")] > 0
    assert rows[("gradient", "reversible", "2", "pass_reconstruction_error")] == 0.0
    summary, block = readme.read_text(), docs.read_text()
    assert "old" not in summary + block and summary.endswith("<!-- memory-summary:end -->\nafter\n")
    assert "| block | columns | reversible (MiB) | plain (MiB) |" in summary and "pass reconstruction" not in summary
    assert "| c2f | 8 |" in block and "| c2f | trained-like | float32 | 2 | 0.0e+00 |" in block


def test_aux_section_measures_what_aux_adds(tmp_path):
    readme = readme_copy(tmp_path / "benchmarks.md", "aux-memory")
    argv = ["--sections", "aux", "--aux-imgsz", "64", "--aux-batch", "2", "--aux-reps", "1", "--out", str(tmp_path)]
    rows = bm.aux_report(bm.parse_args([*argv, "--readme", str(readme)]))
    assert not (tmp_path / "memory.md").exists()
    assert [(r[0], r[1]) for r in rows] == [("reversible", 0), ("reversible", 0.5), ("plain", 0), ("plain", 0.5)]
    mib = [r[2] for r in rows]
    assert mib[1] > mib[0] and mib[3] > mib[2] and mib[0] < mib[2]  # aux costs memory; reversible saves it
    assert rows[1][6] > 0 and "| reversible | 0.5 |" in readme.read_text()


TINY_PAPER_YAML = """\
nc: 8
backbone:
  - [-1, 1, RevCol, [[8, 16, 24, 32], [1, 1, 1, 1], 4, {block: convnext, stem: patchify, kernel: 3, drop_path: 0.1}]]
  - [0, 1, Index, [24, 2]]
  - [0, 1, Index, [32, 3]]
head:
  - [[1, 2], 1, Detect, [nc]]
"""


def test_paper_section_on_a_tiny_stand_in(tmp_path, monkeypatch):
    (tmp_path / "tiny.yaml").write_text(TINY_PAPER_YAML)
    monkeypatch.setitem(bm.PAPER, "t", ("Tiny", str(tmp_path / "tiny.yaml"), "yolov8n.yaml"))
    readme = readme_copy(tmp_path / "benchmarks.md", "paper-memory")
    argv = ["--sections", "paper", "--paper-models", "t", "--paper-rec-imgsz", "32", "--paper-imgsz", "64"]
    argv += ["--paper-batch", "1", "--out", str(tmp_path), "--readme", str(readme)]
    rec, steps = bm.paper_report(bm.parse_args(argv))
    assert {(r[2], r[3]) for r in rec} == {(w, d) for w in bm.WEIGHTS for d in bm.DTYPES}
    assert all(r[4] == 0.0 and r[6] < bm.GRADIENT_BOUND[r[3]] for r in rec)
    mib = {s[1]: s[2] for s in steps}
    assert list(mib) == ["stock", "reversible", "plain backprop"] and mib["reversible"] < mib["plain backprop"]
    assert (tmp_path / "paper_memory_step.csv").is_file() and "| Tiny | 4 | default | float32 |" in readme.read_text()


@pytest.mark.parametrize(
    "bad, message",
    [
        (["--imgsz", "100"], "--imgsz must be a positive multiple of 32, got 100"),
        (["--columns", "2", "0"], "--columns must be >= 1, got 0"),
        (["--paper-batch", "0"], "--paper-batch must be >= 1, got 0"),
        (["--blocks", "resnet"], "invalid choice: 'resnet'"),
        (["--aux", "0"], "--aux must be > 0 (the supervised variants' weight), got 0.0"),
    ],
)
def test_bad_arguments_name_the_value(bad, message, capsys):
    with pytest.raises(SystemExit):
        bm.parse_args(bad)
    assert message in capsys.readouterr().err
