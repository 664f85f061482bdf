"""The ``yolo-revcol memory`` command: run the chosen sections and write their reports."""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from collections.abc import Callable, Sequence
from pathlib import Path

import torch

from ..report import command_line, machine, write_result
from .aux import aux_section
from .common import CSV_KEYS, QUICK, BenchConfig, Section
from .paper import PAPER_MODELS, paper_section
from .reconstruction import gradient_section, reconstruction_section
from .rss import rss_section
from .saved import saved_section
from .summary import describe, plot, readme_block, summary_block
from .timing import time_section

SECTIONS: dict[str, Callable[[BenchConfig], Section]] = {
    "saved bytes": saved_section,
    "peak RSS": rss_section,
    "reconstruction": reconstruction_section,
    "gradient check": gradient_section,
    "step time": time_section,
}
# What --sections chooses from: "memory" is the report of SECTIONS (memory.md); "aux" (aux_memory.md) and "paper"
# (paper_memory.md: the paper's RevCol-T/S/B YAMLs) are opt-in.
REPORTS = ("memory", "aux", "paper")


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    """Parse the command line; ``args.cfg`` is the ``BenchConfig`` (``--quick`` values where nothing was given)."""
    d = BenchConfig()
    description = sys.modules[__package__].__doc__.split("\n\n")[0]
    p = argparse.ArgumentParser(prog="yolo-revcol memory", description=description)
    p.add_argument(
        "--sections",
        nargs="+",
        choices=REPORTS,
        default=["memory"],
        help="memory: saved bytes, peak RSS, reconstruction, gradient check and step time (memory.md); aux: what "
        "intermediate supervision adds to a YOLO training step (aux_memory.md, opt-in); paper: the paper's "
        "RevCol-T/S/B YAMLs, their reverse pass and a YOLO training step against stock (paper_memory.md, opt-in) "
        "(default: memory)",
    )
    p.add_argument("--quick", action="store_true", help="tiny sizes and grids for a smoke test")
    p.add_argument("--out", type=Path, help="output folder (default: results/, or a temporary folder with --quick)")
    p.add_argument(
        "--readme",
        type=Path,
        nargs="+",
        metavar="FILE",
        help="also replace the <!-- memory:start/end --> block of this file (<!-- aux-memory:start/end --> for aux)",
    )
    p.add_argument("--blocks", nargs="+", choices=["c2f", "convnext"], help=f"block families (default {d.blocks})")
    p.add_argument("--channels", type=int, nargs=4, help=f"channels of the four levels (default {d.channels})")
    p.add_argument("--layers", type=int, nargs=4, help=f"blocks per level (default {d.layers})")
    p.add_argument("--batch", type=int, help=f"batch size (default {d.batch})")
    p.add_argument("--imgsz", type=int, help=f"input side, multiple of 32 (default {d.imgsz})")
    p.add_argument("--kernel", type=int, help=f"spatial kernel of the blocks (default {d.kernel})")
    p.add_argument("--mlp-ratio", type=float, help=f"MLP ratio of convnext blocks (default {d.mlp_ratio})")
    p.add_argument("--mem-columns", type=int, nargs="+", help=f"columns for saved bytes (default {d.mem_columns})")
    p.add_argument("--rss-columns", type=int, nargs="*", help=f"columns for peak RSS (default {d.rss_columns})")
    p.add_argument("--rec-columns", type=int, nargs="*", help=f"columns for reconstruction (default {d.rec_columns})")
    p.add_argument("--rec-every", type=int, nargs="+", help=f"checkpoint_every values (default {d.rec_every})")
    p.add_argument("--mem-every", type=int, nargs="*", help=f"extra reversible K, saved bytes (default {d.mem_every})")
    p.add_argument("--grad-columns", type=int, nargs="*", help=f"columns, gradient check (default {d.grad_columns})")
    p.add_argument("--time-columns", type=int, nargs="*", help=f"columns for step time (default {d.time_columns})")
    p.add_argument("--reps", type=int, help=f"timed steps per mode (default {d.reps})")
    p.add_argument("--warmup", type=int, help=f"untimed steps per mode (default {d.warmup})")
    p.add_argument("--gamma", type=float, help=f"trained-like layer scale (default {d.gamma})")
    p.add_argument("--gamma-noise", type=float, help=f"its relative perturbation (default {d.gamma_noise})")
    p.add_argument("--alpha-range", type=float, nargs=2, help=f"trained-like |alpha| range (default {d.alpha_range})")
    p.add_argument("--seed", type=int, help=f"seed (default {d.seed})")
    p.add_argument("--threads", type=int, help="torch threads (default: torch's default; 1 with --quick)")
    g = p.add_argument_group("aux section (--sections aux; --quick does not change these)")
    g.add_argument("--aux-scale", default="n", help="scale of yolov8<scale>-revcol (default n)")
    g.add_argument("--aux-imgsz", type=int, default=320, help="image side (default 320)")
    g.add_argument("--aux-batch", type=int, default=8, help="batch size (default 8)")
    g.add_argument("--aux", type=float, default=0.5, help="aux value of the supervised variants (default 0.5)")
    g.add_argument("--aux-reps", type=int, default=5, help="timed steps per variant (default 5)")
    g = p.add_argument_group("paper section (--sections paper; --quick does not change these)")
    letters = list(PAPER_MODELS)
    g.add_argument("--paper-models", nargs="+", choices=letters, default=letters, help="reverse-pass table (t s b)")
    g.add_argument("--paper-step-models", nargs="*", choices=letters, default=["t"], help="training step (t)")
    g.add_argument("--paper-rec-imgsz", type=int, default=64, help="image side of the reverse-pass checks (64)")
    g.add_argument("--paper-imgsz", type=int, default=320, help="image side of the training step (320)")
    g.add_argument("--paper-batch", type=int, default=2, help="batch size of the training step (2)")
    g.add_argument("--paper-reps", type=int, default=3, help="timed training steps per variant (3)")
    args = p.parse_args(argv)
    values = dict(QUICK) if args.quick else {}
    values.update({k: v for k, v in vars(args).items() if k in BenchConfig.__dataclass_fields__ and v is not None})
    args.cfg = BenchConfig(**values)
    if args.cfg.imgsz % 32:
        p.error(f"--imgsz must be a multiple of 32, got {args.cfg.imgsz}")
    if args.cfg.reps < 1:
        p.error(f"--reps must be >= 1, got {args.cfg.reps}")
    if args.aux_reps < 1:
        p.error(f"--aux-reps must be >= 1, got {args.aux_reps}")
    for name in ("paper_reps", "paper_batch"):
        if getattr(args, name) < 1:
            p.error(f"--{name.replace('_', '-')} must be >= 1, got {getattr(args, name)}")
    for name in ("paper_rec_imgsz", "paper_imgsz"):
        if getattr(args, name) < 32 or getattr(args, name) % 32:
            p.error(f"--{name.replace('_', '-')} must be a multiple of 32, got {getattr(args, name)}")
    args.out = args.out or (Path(tempfile.mkdtemp(prefix="yolo_revcol_memory_")) if args.quick else Path("results"))
    return args


def memory_report(args: argparse.Namespace) -> int:
    """Run every section of ``SECTIONS``, print and write the report (and optionally the README block).

    Args:
        args (argparse.Namespace): From ``parse_args``.

    Returns:
        (int): 0 when every memory target passes (always with ``--quick``, whose tiny sizes are not representative:
            there the fixed stem activations dominate), else 1.
    """
    cfg = args.cfg
    command, where = command_line(), machine()
    print(f"$ {command}\n{where}\nconfig: {cfg}", flush=True)
    sections, seconds = {}, {}
    for name, section in SECTIONS.items():
        start = time.perf_counter()
        sections[name] = section(cfg)
        seconds[name] = time.perf_counter() - start
    timing = ", ".join(f"{name} {s:.0f} s" for name, s in seconds.items())
    load = ", ".join(f"{v:.2f}" for v in os.getloadavg()) if hasattr(os, "getloadavg") else "n/a"
    note = f"Measured by `{command}` on {where}.\n{describe(cfg, args.quick)}\n"
    text = "\n".join(
        ["# RevCol memory, reconstruction and step-time benchmark", "", note]
        + [s.markdown for s in sections.values() if s.markdown]
        + [f"Total time {sum(seconds.values()):.0f} s ({timing}); load average at end {load}.", ""]
    )
    records = [r for s in sections.values() for r in s.records]
    write_result(
        args.out / "memory",
        text,
        CSV_KEYS,
        [[r.get(k, "") for k in CSV_KEYS] for r in records],
        plot=lambda path: plot(path, cfg, sections),
        readme=args.readme,
        readme_text=readme_block(
            cfg, sections, f"{note}Full tables, peak RSS, gradient checks and the plot: `{args.out / 'memory.md'}`.\n"
        ),
        summary=summary_block(cfg, sections, f"Measured by `{command}` on {where}.\n{describe(cfg, args.quick)}"),
    )
    passed = all(v is None or v <= limit for v, limit in sections["saved bytes"].data["targets"].values())
    print("targets:", "PASS" if passed else "FAIL", "(informational at --quick sizes)" if args.quick else "")
    return 0 if passed or args.quick else 1


def main(argv: Sequence[str] | None = None) -> int:
    """Run the chosen reports: ``memory`` (``memory_report``), ``aux`` (``aux.aux_section``), ``paper``
    (``paper.paper_section``).

    Returns:
        (int): ``memory_report``'s status (0 when it does not run).
    """
    args = parse_args(argv)
    if args.cfg.threads:
        torch.set_num_threads(args.cfg.threads)
    status = memory_report(args) if "memory" in args.sections else 0
    if "aux" in args.sections:
        aux_section(args.out, args.aux_scale, args.aux_imgsz, args.aux_batch, args.aux, args.aux_reps, args.readme)
    if "paper" in args.sections:
        paper_section(
            args.out,
            args.paper_models,
            args.cfg,
            args.paper_rec_imgsz,
            args.paper_imgsz,
            args.paper_batch,
            args.paper_reps,
            args.readme,
            args.paper_step_models,
        )
    return status
