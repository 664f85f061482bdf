"""Section 3: the training-step time of every mode, relative to plain backprop."""

from __future__ import annotations

import copy
import statistics

import torch
from torch import nn

from ..bench_speed import interleave
from ..report import markdown_table
from .common import MODES, BenchConfig, CheckpointedRevCol, Section, build_model, loss_of, make_input


def train_step(model: nn.Module, optimizer: torch.optim.Optimizer, img: torch.Tensor) -> None:
    """One forward + backward + optimizer step."""
    optimizer.zero_grad(set_to_none=True)
    loss_of(model(img)).backward()
    optimizer.step()


def measure_step_times(cfg: BenchConfig, block: str, columns: int) -> dict[str, list[float]]:
    """Time training steps of all modes, interleaved in one process, from identical initial weights.

    ``bench_speed.interleave`` runs ``cfg.warmup`` untimed steps per mode, then ``cfg.reps`` rounds each timing one
    step of every mode, the order rotating each round so no mode always runs first.

    Args:
        cfg (BenchConfig): Sizes, repetitions.
        block (str): Block family.
        columns (int): Number of columns.

    Returns:
        (dict[str, list[float]]): mode -> step times in seconds.
    """
    base = build_model(cfg, block, columns, "plain")
    models = {}
    for mode in MODES:
        m = copy.deepcopy(base)
        m.reversible = mode == "reversible"
        models[mode] = CheckpointedRevCol(m).train() if mode == "checkpoint" else m.train()
    img = make_input(cfg)
    steps = {}
    for mode, m in models.items():
        optimizer = torch.optim.SGD(m.parameters(), lr=1e-4, momentum=0.9)
        steps[mode] = lambda m=m, o=optimizer: train_step(m, o, img)
    ms = interleave(steps, cfg.reps, 1, cfg.warmup, torch.get_num_threads())
    return {mode: [t / 1e3 for t in ms[mode]] for mode in MODES}


def time_section(cfg: BenchConfig) -> Section:
    """Training-step time of every mode per block and column count, and the ratios to plain.

    Returns:
        (Section): ``data``: ``times`` ((block, columns) -> mode -> seconds of every timed step) and ``ratios``
            ((block, columns, mode) -> median / plain's median).
    """
    times: dict[tuple[str, int], dict[str, list[float]]] = {}
    ratios: dict[tuple[str, int, str], float] = {}
    records, rows = [], []
    for block in cfg.blocks:
        for c in cfg.time_columns:
            times[(block, c)] = t = measure_step_times(cfg, block, c)
            med = {m: statistics.median(v) for m, v in t.items()}
            for mode, v in t.items():
                records += [dict(section="time", block=block, mode=mode, columns=c, rep=j, metric="step_s", value=s)
                            for j, s in enumerate(v)]  # fmt: skip
            for mode in ("reversible", "checkpoint"):
                ratios[(block, c, mode)] = med[mode] / med["plain"]
                records.append(dict(section="time", block=block, mode=mode, columns=c, metric="median_ratio_vs_plain",
                                    value=ratios[(block, c, mode)]))  # fmt: skip
            rows.append([block, c, *(f"{med[m]:.3f}" for m in ("plain", "reversible", "checkpoint"))])
            rows[-1] += [f"{ratios[(block, c, 'reversible')]:.2f}", f"{ratios[(block, c, 'checkpoint')]:.2f}"]
            print(f"time   {block:8s} {c:2d} cols: " + ", ".join(f"{m} {s:.3f} s" for m, s in med.items()), flush=True)
    if not times:
        return Section("", records, dict(times=times, ratios=ratios))
    md = [
        "## 3. Training step time",
        "",
        f"Forward + backward + SGD(momentum 0.9) step, same config, identical initial weights, reversible at the "
        f"class default `checkpoint_every: auto`; {cfg.warmup} untimed step(s) per mode, then {cfg.reps} rounds "
        "each timing one step of every mode (order rotated every round); medians. Ratios of medians, from one run "
        "of the command.",
        "",
        markdown_table(
            [
                "block",
                "columns",
                "plain (s)",
                "reversible (s)",
                "checkpoint (s)",
                "reversible / plain",
                "checkpoint / plain",
            ],
            rows,
        ),  # fmt: skip
    ]
    return Section("\n".join(md), records, dict(times=times, ratios=ratios))
