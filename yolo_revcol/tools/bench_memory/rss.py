"""Section 1b: peak RSS of one training step, each configuration measured in a fresh subprocess."""

from __future__ import annotations

import gc
import json
import os
import resource
import subprocess
import sys
import tempfile
from dataclasses import asdict
from pathlib import Path

import torch

from ..report import fmt, markdown_table
from .common import MIB, MODES, BenchConfig, Section, build_model, loss_of, make_input

# glibc otherwise raises its mmap threshold after the first large free and keeps later tensors in the heap, where
# freed memory is not returned to the OS: RSS would then carry the warm-up's leftovers. A fixed threshold makes every
# tensor >= 128 KiB its own mapping, released on free, so RSS follows live memory. (An explicit environment wins.)
MALLOC_ENV = {"MALLOC_MMAP_THRESHOLD_": "131072"}
# The RSS subprocess entry point: measures one configuration from a JSON spec and writes a JSON result.
RSS_CHILD = (
    "import sys; from yolo_revcol.tools.bench_memory.rss import rss_child_main; sys.exit(rss_child_main(sys.argv[1:]))"
)


def _reset_peak_rss() -> bool:
    """Reset the kernel's RSS high-water mark to the current RSS (Linux ``/proc/self/clear_refs``); True if done.

    Without the reset, the peak of importing torch (hundreds of MiB) would hide small configurations.
    """
    try:
        with open("/proc/self/clear_refs", "w") as f:
            f.write("5")
        return True
    except OSError:
        return False


def _peak_rss_kib() -> tuple[int, int]:
    """Return (this address space's RSS high-water mark, ``ru_maxrss``), both in KiB (Linux).

    ``getrusage(RUSAGE_SELF).ru_maxrss`` is the larger of the address space's high-water mark and a per-process
    maximum that ``exec`` sets from the *parent's* memory at fork time, so a worker started by a large parent
    reports at least the parent's RSS. The first value is the high-water mark alone (``VmHWM`` in
    ``/proc/self/status``, what ``clear_refs`` resets); where it cannot be read, ``ru_maxrss`` stands in for it.
    """
    ru = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]), ru
    except OSError:
        pass
    return ru, ru


def rss_worker(spec: dict) -> dict:
    """Subprocess body: build one configuration, warm up, run forward+backward once more, report peak RSS.

    The high-water mark covers the whole process, which is why each configuration gets its own process; it is
    also reset (where Linux allows) before the warm-up and again before the measured step.

    Args:
        spec (dict): ``{"cfg": asdict(BenchConfig), "block": str, "columns": int, "mode": str}``.

    Returns:
        (dict): KiB values ``base`` (RSS after building model and input), ``warm`` (peak of the warm-up step,
            which also allocates the ``.grad`` buffers), ``before`` (RSS before the measured step, gradients
            allocated) and ``peak`` (peak of the measured step), each also as ``ru_<name>`` read from
            ``ru_maxrss``; ``grad_bytes``; ``reset`` (whether the high-water mark could be reset; if not,
            ``base``/``before`` are the running maximum instead).
    """
    cfg = BenchConfig(**spec["cfg"])
    if cfg.threads:
        torch.set_num_threads(cfg.threads)
    model, x = build_model(cfg, spec["block"], spec["columns"], spec["mode"]), make_input(cfg)
    gc.collect()
    out = {}
    reset = _reset_peak_rss()
    out["base"], out["ru_base"] = _peak_rss_kib()
    loss_of(model(x)).backward()  # warm-up
    out["warm"], out["ru_warm"] = _peak_rss_kib()
    model.zero_grad(set_to_none=False)  # keep the gradient buffers: the measured step does not allocate them
    gc.collect()
    reset = _reset_peak_rss() and reset
    out["before"], out["ru_before"] = _peak_rss_kib()
    loss_of(model(x)).backward()
    out["peak"], out["ru_peak"] = _peak_rss_kib()
    out["grad_bytes"] = sum(p.grad.nbytes for p in model.parameters() if p.grad is not None)
    out["reset"] = reset
    return out


def rss_child_main(argv: list[str]) -> int:
    """Subprocess entry: ``argv`` is ``[spec JSON, result path]``; measures and writes the result as JSON."""
    Path(argv[1]).write_text(json.dumps(rss_worker(json.loads(argv[0]))))
    return 0


def measure_rss(cfg: BenchConfig, block: str, columns: int, mode: str) -> dict:
    """Run ``rss_worker`` in a fresh interpreter (started through ``RSS_CHILD``) and return its result.

    Args:
        cfg (BenchConfig): Sizes.
        block (str): Block family.
        columns (int): Number of columns.
        mode (str): One of ``MODES``.

    Returns:
        (dict): The worker's result.

    Raises:
        RuntimeError: If the subprocess fails.
    """
    spec = json.dumps(dict(cfg=asdict(cfg), block=block, columns=columns, mode=mode))
    with tempfile.TemporaryDirectory(prefix="yolo_revcol_rss_") as tmp:
        out = Path(tmp) / "rss.json"
        proc = subprocess.run(
            [sys.executable, "-c", RSS_CHILD, spec, str(out)],
            capture_output=True,
            text=True,
            check=False,
            env={**MALLOC_ENV, **os.environ},
        )
        if proc.returncode != 0 or not out.is_file():
            raise RuntimeError(f"RSS worker ({block}, {mode}, {columns} columns) failed:\n{proc.stdout}\n{proc.stderr}")
        return json.loads(out.read_text())


def rss_section(cfg: BenchConfig) -> Section:
    """Peak RSS of one training step per block, mode and column count, each in a fresh subprocess.

    Returns:
        (Section): ``data``: ``rss`` ((block, mode, columns) -> the worker's KiB figures).
    """
    rss: dict[tuple[str, str, int], dict] = {}
    records = []
    for block in cfg.blocks:
        for c in cfg.rss_columns:
            for mode in MODES:
                rss[(block, mode, c)] = r = measure_rss(cfg, block, c, mode)
                for key in ("base", "warm", "before", "peak", "ru_base", "ru_warm", "ru_before", "ru_peak"):
                    records.append(dict(section="rss", block=block, mode=mode, columns=c, metric=f"{key}_kib",
                                        value=r[key]))  # fmt: skip
                records.append(dict(section="rss", block=block, mode=mode, columns=c, metric="grad_bytes",
                                    value=r["grad_bytes"]))  # fmt: skip
                growth = (r["peak"] - r["before"]) / 1024
                print(f"rss    {block:8s} {mode:10s} {c:2d} cols: peak {r['peak'] / 1024:8.1f} MiB, +{growth:.1f}")
    if not rss:
        return Section("", records, dict(rss=rss))
    rows = [
        [block, c, mode, f"{r['before'] / 1024:.1f}", f"{r['peak'] / 1024:.1f}",
         f"{(r['peak'] - r['before']) / 1024:.1f}", f"{(r['warm'] - r['base']) / 1024:.1f}",
         f"{r['grad_bytes'] / MIB:.1f}"]
        for (block, mode, c), r in rss.items()
    ]  # fmt: skip

    def growth_ratio(block: str, num: tuple[str, int], den: tuple[str, int]) -> float | None:
        a, b = rss.get((block, *num)), rss.get((block, *den))
        return (a["peak"] - a["before"]) / max(b["peak"] - b["before"], 1) if a and b else None

    info = []
    for block in cfg.blocks:
        for name, num, den in (
            ("RSS step growth reversible(8) / reversible(2)", ("reversible", 8), ("reversible", 2)),
            ("RSS step growth reversible(16) / reversible(2)", ("reversible", 16), ("reversible", 2)),
            ("RSS step growth reversible(4) / plain(4)", ("reversible", 4), ("plain", 4)),
            ("RSS step growth checkpoint(4) / plain(4)", ("checkpoint", 4), ("plain", 4)),
        ):
            value = growth_ratio(block, num, den)
            info.append([block, name, fmt(value)])
            records.append(dict(section="rss", block=block, metric=name, value=value))
    env = " ".join(f"{k}={os.environ.get(k, v)}" for k, v in MALLOC_ENV.items())
    reset = (
        "The RSS high-water mark is reset (`/proc/self/clear_refs` = 5) before the warm-up and again before "
        "the measured step, so `step peak - before` is the measured step's growth over the RSS it started from "
        "(model, gradient buffers, torch runtime). `first step peak - base` also contains one-time costs: "
        "allocating the gradients and whatever the first call loads (the first non-reentrant checkpoint call "
        "imports torch._dynamo/sympy lazily)."
        if all(r["reset"] for r in rss.values())
        else "The high-water mark could NOT be reset here, so `before` is the running maximum (including the "
        "import of torch) and small configurations may show no growth."
    )
    md = [
        "### Peak RSS",
        "",
        f"Peak RSS of a fresh subprocess per row (run with `{env}`, so freed tensors go back to the OS): build model "
        "and input (`base`), one warm-up forward+backward, zero the gradients (buffers kept), then one measured "
        "forward+backward (no optimizer). The peak is the kernel's RSS high-water mark, read as `VmHWM` from "
        "`/proc/self/status`: `resource.getrusage(RUSAGE_SELF).ru_maxrss` (also in the CSV as `ru_*`) is the same "
        "mark but never below the parent's RSS when the child was spawned, which hides small configurations. " + reset,
        "",
        markdown_table(
            [
                "block",
                "columns",
                "mode",
                "before (MiB)",
                "step peak (MiB)",
                "step peak - before (MiB)",
                "first step peak - base (MiB)",
                "grads (MiB)",
            ],
            rows,
        ),  # fmt: skip
        "Same ratios on RSS (informational; RSS also counts the transient gradients and recomputation buffers "
        "of backward, not only what is saved):",
        "",
        markdown_table(["block", "ratio", "value"], info),
    ]
    return Section("\n".join(md), records, dict(rss=rss))
