"""The memory benchmark script runs end to end at tiny sizes (its full figures are in results/memory.md)."""

from __future__ import annotations

import sys

from conftest import ROOT, run


def test_bench_memory_quick(tmp_path):
    proc = run([sys.executable, str(ROOT / "runs_scripts" / "bench_memory.py"), "--quick", "--out-dir", str(tmp_path)])
    assert "saved bytes" in proc.stdout.lower() or "saved" in proc.stdout
    text = (tmp_path / "memory.md").read_text()
    assert "## 1. Memory" in text and "## 2. Reconstruction error" in text and "## 3. Training step time" in text
    assert (tmp_path / "memory.csv").stat().st_size > 0 and (tmp_path / "memory.png").stat().st_size > 10_000
