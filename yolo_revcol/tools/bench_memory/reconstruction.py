"""Section 2: the reverse pass's reconstruction error, its growth per column, and what it does to the gradients."""

from __future__ import annotations

import math
import statistics
from collections.abc import Sequence
from typing import NamedTuple

import torch
from torch import nn

from ...nn import RevCol, reconstruct_states
from ..report import fmt, markdown_table
from .common import BenchConfig, Section, build_model, make_input, set_trained_like


@torch.no_grad()
def true_states(model: RevCol, img: torch.Tensor) -> tuple[torch.Tensor, list[list[torch.Tensor]]]:
    """Run the plain forward (call in eval mode) and return the stem output and every column's four states."""
    x = model.stem(img).to(model.stem.weight.dtype)
    states, every = None, []
    for column in model.columns:
        states = column(x, states)
        every.append(states)
    return x, every


@torch.no_grad()
def reconstruct_with_checkpoints(
    columns: Sequence[nn.Module], x: torch.Tensor, exact: Sequence[Sequence[torch.Tensor]], every: int
) -> list[list[torch.Tensor]]:
    """Reconstruct all columns' states as the reverse pass does with ``checkpoint_every=every``.

    The reverse pass restarts from exact values at the last column and at every column k (0-based) with
    ``(k + 1) % every == 0``; between two such anchors it reconstructs backwards. Each segment is handed to
    ``reconstruct_states`` as a slice of the columns whose first entry is the column right after the previous
    anchor (that column's module is not used; only its states are recovered).

    Args:
        columns (Sequence[nn.Module]): All columns.
        x (torch.Tensor): Stem output.
        exact (Sequence[Sequence[torch.Tensor]]): True states of every column (only anchors are read).
        every (int): Checkpoint interval, 0 for none.

    Returns:
        (list[list[torch.Tensor]]): Reconstructed states of every column (anchors exact).
    """
    n = len(columns)
    anchors = sorted({n - 1} | ({k for k in range(n - 1) if (k + 1) % every == 0} if every else set()))
    result, start = [], 0
    for a in anchors:
        result.extend(reconstruct_states(columns[start : a + 1], x, exact[a]))
        start = a + 1
    return result


def relative_error(rec: torch.Tensor, true: torch.Tensor) -> float:
    """Return ||rec - true|| / ||true|| computed in float64."""
    true = true.double()
    return float((rec.double() - true).norm() / true.norm().clamp_min(1e-300))


def column_errors(rec: Sequence[Sequence[torch.Tensor]], true: Sequence[Sequence[torch.Tensor]]) -> list[float]:
    """Per column, the worst relative error over its four levels."""
    return [max(relative_error(r, t) for r, t in zip(rc, tc)) for rc, tc in zip(rec, true)]


def measure_reconstruction(
    cfg: BenchConfig, block: str, columns: int, weights: str, dtype: str
) -> dict[int, list[float]]:
    """Reconstruction error of every column for each ``cfg.rec_every`` value.

    Args:
        cfg (BenchConfig): Sizes and trained-like weight settings.
        block (str): Block family.
        columns (int): Number of columns.
        weights (str): ``default`` (init: layer scale 1e-6, alpha 0.5) or ``trained-like``.
        dtype (str): ``float32`` or ``bf16-autocast`` (forward and reconstruction both under CPU autocast).

    Returns:
        (dict[int, list[float]]): checkpoint_every -> per-column worst-level relative error (first column first).
    """
    model = build_model(cfg, block, columns, "plain")
    if weights == "trained-like":
        set_trained_like(model, cfg, cfg.seed + 2)
    return division_errors(model, make_input(cfg), dtype, cfg.rec_every)


def division_errors(model: RevCol, img: torch.Tensor, dtype: str, everies: Sequence[int]) -> dict[int, list[float]]:
    """Division-only reconstruction error of every column of ``model`` on ``img``, per ``checkpoint_every``.

    Args:
        model (RevCol): The backbone (put in eval mode here: DropPath off).
        img (torch.Tensor): Input batch.
        dtype (str): ``float32`` or ``bf16-autocast``.
        everies (Sequence[int]): ``checkpoint_every`` values; those >= the column count are skipped.

    Returns:
        (dict[int, list[float]]): checkpoint_every -> per-column worst-level relative error (first column first).
    """
    model.eval()
    out = {}
    with torch.autocast("cpu", dtype=torch.bfloat16, enabled=dtype == "bf16-autocast"):
        x, exact = true_states(model, img)
        for every in everies:
            if every and every >= len(model.columns):
                continue
            out[every] = column_errors(reconstruct_with_checkpoints(model.columns, x, exact, every), exact)
    return out


class GradientCheck(NamedTuple):
    """The reversible path against plain backprop on one model (relative errors, float64 norms).

    Attributes:
        first (float): Gradient error over the first column's parameters (the end of the reverse pass).
        total (float): Gradient error over all parameters.
        reconstruction (float | None): The pass's own reconstruction error of the first column's finest state
            (``RevCol.reconstruction_error``: the reconstructed value against the one recomputed from the stem),
            None with one column.
    """

    first: float
    total: float
    reconstruction: float | None


def measure_gradient_error(
    cfg: BenchConfig, block: str, columns: int, weights: str, dtype: str, every: int | str = "auto"
) -> GradientCheck:
    """The reversible path's parameter gradients and reconstruction against plain autograd on the same model.

    Both runs use the same weights, input, dtype setting and a loss that weights every output element with a fixed
    random factor, so the only difference is that the reversible path recomputes from reconstructed states.

    Args:
        cfg (BenchConfig): Sizes and trained-like weight settings.
        block (str): Block family.
        columns (int): Number of columns.
        weights (str): ``default`` or ``trained-like`` (see ``measure_reconstruction``).
        dtype (str): ``float32`` or ``bf16-autocast`` (both runs under CPU bf16 autocast).
        every (int | str): ``checkpoint_every`` of the reversible run (the class default "auto" unless given).

    Returns:
        (GradientCheck): Gradient errors (first column, all parameters) and the pass's reconstruction error.
    """
    model = build_model(cfg, block, columns, "plain", every=every)
    if weights == "trained-like":
        set_trained_like(model, cfg, cfg.seed + 2)
    return gradient_check(model, make_input(cfg), dtype, cfg.seed + 3)


def gradient_check(model: RevCol, img: torch.Tensor, dtype: str, seed: int) -> GradientCheck:
    """Compare ``model``'s reversible path with plain backprop on ``img`` (see ``measure_gradient_error``).

    Args:
        model (RevCol): The backbone, in training mode, at the ``checkpoint_every`` to check (DropPath must be 0:
            the plain run replays no RNG).
        img (torch.Tensor): Input batch.
        dtype (str): ``float32`` or ``bf16-autocast``.
        seed (int): Seed of the loss's fixed random factors.

    Returns:
        (GradientCheck): Gradient errors (first column, all parameters) and the pass's reconstruction error.
    """
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        factors = [torch.randn(o.shape, generator=g) for o in model(img)]

    def grads(reversible: bool) -> list[torch.Tensor]:
        model.reversible = reversible
        model.zero_grad(set_to_none=True)
        with torch.autocast("cpu", dtype=torch.bfloat16, enabled=dtype == "bf16-autocast"):
            out = model(img)
        sum((o.float() * f).sum() for o, f in zip(out, factors)).backward()
        return [p.grad.detach().clone() for p in model.parameters()]

    ref = grads(False)
    model.reconstruction_error = None
    rev = grads(True)
    error = model.reconstruction_error
    first = {id(p) for p in model.columns[0].parameters()}
    mask = [id(p) in first for p in model.parameters()]

    def rel(pairs: list[tuple[torch.Tensor, torch.Tensor]]) -> float:
        num = sum(float((b.double() - a.double()).pow(2).sum()) for a, b in pairs)
        den = sum(float(a.double().pow(2).sum()) for a, _ in pairs)
        return (num / max(den, 1e-300)) ** 0.5

    pairs = list(zip(ref, rev))
    return GradientCheck(
        rel([pq for pq, m in zip(pairs, mask) if m]), rel(pairs), None if error is None else float(error)
    )


def growth_per_column(errors: Sequence[float]) -> tuple[float, float, float] | None:
    """How much each further reconstructed column multiplies the error, from one K=0 per-column row.

    Args:
        errors (Sequence[float]): Error of columns 1..N (first column first; column N is exact).

    Returns:
        (tuple[float, float, float] | None): Geometric mean, smallest and largest of the ratios of consecutive
            reconstructed columns' errors (column j over column j + 1), or None with fewer than two reconstructed
            columns or a zero error.
    """
    rebuilt = list(errors[:-1])
    if len(rebuilt) < 2 or min(rebuilt) <= 0:
        return None
    steps = [a / b for a, b in zip(rebuilt, rebuilt[1:])]
    return math.exp(statistics.fmean(math.log(s) for s in steps)), min(steps), max(steps)


def reconstruction_section(cfg: BenchConfig) -> Section:
    """Reconstruction error of every column per block, weights, dtype, column count and ``checkpoint_every``.

    Returns:
        (Section): ``data``: ``rec`` ((block, weights, dtype, columns, K) -> per-column errors) and ``growth``
            ((block, weights, dtype) -> ``growth_per_column`` of the K=0 row at the largest column count).
    """
    rec: dict[tuple[str, str, str, int, int], list[float]] = {}
    records = []
    for block in cfg.blocks:
        for weights in ("default", "trained-like"):
            for dtype in ("float32", "bf16-autocast"):
                for c in cfg.rec_columns:
                    for every, errs in measure_reconstruction(cfg, block, c, weights, dtype).items():
                        rec[(block, weights, dtype, c, every)] = errs
                        for j, e in enumerate(errs):
                            records.append(
                                dict(section="reconstruction", block=block, weights=weights, dtype=dtype, columns=c,
                                     checkpoint_every=every, column=j + 1, metric="rel_error", value=e)
                            )  # fmt: skip
                        print(f"rec    {block:8s} {weights:12s} {dtype:13s} {c:2d} cols K={every}: max {max(errs):.2e}")
    if not rec:
        return Section("", records, dict(rec=rec, growth={}))
    n = max(cfg.rec_columns)
    per = {k: v for k, v in rec.items() if k[3] == n}
    growth = {(b, w, d): growth_per_column(v) for (b, w, d, _, e), v in per.items() if e == 0}
    for (block, weights, dtype), g in growth.items():
        records.append(dict(section="reconstruction", block=block, weights=weights, dtype=dtype, columns=n,
                            checkpoint_every=0, metric="growth_per_column", value=g[0] if g else None))  # fmt: skip
    lo, hi = cfg.alpha_range
    md = [
        "## 2. Reconstruction error",
        "",
        "First the division-only arithmetic, x_prev = (x - body) / alpha, which is what a reverse pass rebuilds "
        "without the lost-bit stacks that make RevCol's exact (the error those stacks remove, and what keeping "
        "every K-th column used to buy); the last table of this section is the reverse pass itself. "
        "True states: plain forward in eval mode, every column's four states recorded. Reconstruction: "
        "`reconstruct_states` from the stem output and the last column's states, "
        "restarting from the exact states of every K-th column when `checkpoint_every = K` (anchors are exact, "
        "error 0). Error of a column: max over its four levels of ||rec - true|| / ||true|| (float64 norms). "
        "`bf16-autocast`: the forward and the reconstruction both run under `torch.autocast('cpu', "
        "dtype=torch.bfloat16)` (states are float32; level bodies compute in bf16).",
        "",
        "Weights: **default** = the model's init (convnext: conv weights trunc-normal std 0.02, layer scale gamma = "
        "1e-6; c2f: PyTorch's default init; alpha = 0.5). **trained-like** = default init, then every alpha's "
        f"magnitude drawn uniformly from [{lo}, {hi}] per channel, sign kept (all positive, as initialised), and "
        f"every convnext block's gamma = {cfg.gamma} x (1 + {cfg.gamma_noise} N(0, 1)) per channel (c2f blocks have "
        "no layer scale).",
        "",
        markdown_table(
            ["block", "weights", "dtype", "columns", "checkpoint_every", "first column", "worst column"],
            [
                [b, w, d, c, e, f"{v[0]:.2e}", f"{max(v):.2e} (col {v.index(max(v)) + 1})"]
                for (b, w, d, c, e), v in rec.items()
            ],
        ),
        f"### Per column ({n} columns; column {n} is the saved last column, exact)",
        "",
        markdown_table(
            ["block", "weights", "dtype", "K", *[str(j + 1) for j in range(n - 1)]],
            [[b, w, d, e, *[f"{x:.1e}" for x in v[:-1]]] for (b, w, d, _, e), v in per.items()],
        ),
        "### Growth per reconstructed column",
        "",
        f"From each K=0 row above: the ratio of the errors of consecutive reconstructed columns (column j over column "
        f"j + 1), geometric mean and range over columns 1 to {n - 1}.",
        "",
        markdown_table(
            ["block", "weights", "dtype", "growth per column (geometric mean)", "smallest", "largest"],
            [[b, w, d, *(fmt(x, ".1f") for x in (g or (None,) * 3))] for (b, w, d), g in growth.items()],
        ),
    ]
    return Section("\n".join(md), records, dict(rec=rec, growth=growth))


def gradient_section(cfg: BenchConfig) -> Section:
    """Relative error of the reversible path's parameter gradients against plain backprop.

    Returns:
        (Section): ``data``: ``grad`` ((block, weights, dtype, columns, K) -> ``GradientCheck``; K "auto" is the
            class default).
    """
    grad: dict[tuple[str, str, str, int, int | str], GradientCheck] = {}
    records = []
    metrics = ("grad_rel_error_first_column", "grad_rel_error_all", "pass_reconstruction_error")
    for block in cfg.blocks:
        for weights in ("default", "trained-like"):
            for dtype in ("float32", "bf16-autocast"):
                for c in cfg.grad_columns:
                    for every in ("auto", *(e for e in cfg.rec_every if e and e < c)):
                        grad[(block, weights, dtype, c, every)] = e = measure_gradient_error(
                            cfg, block, c, weights, dtype, every
                        )
                        for metric, v in zip(metrics, e):
                            records.append(dict(section="gradient", block=block, weights=weights, dtype=dtype,
                                                columns=c, checkpoint_every=every, metric=metric, value=v))  # fmt: skip
                        print(f"grad   {block:8s} {weights:12s} {dtype:13s} {c:2d} cols K={every}: all {e.total:.3e}, "
                              f"reconstruction {fmt(e.reconstruction, '.1e')}", flush=True)  # fmt: skip
    if not grad:
        return Section("", records, dict(grad=grad))
    md = [
        "### The reverse pass itself: reconstruction and gradients",
        "",
        "What training gets: parameter gradients of `reversible=True` (at the class default `checkpoint_every: "
        "auto`, and at explicit K) against `reversible=False` on the same model, weights (as above), input and "
        "dtype setting (for `bf16-autocast` both runs are under autocast, so the reference is bf16 training too); "
        "loss = sum of every output element times a fixed random factor. ||g_rev - g_plain|| / ||g_plain|| over the "
        "first column's parameters and over all parameters. `pass reconstruction`: the reverse pass's own error "
        "at its end (`RevCol.reconstruction_error`, the first column's finest state reconstructed through every "
        "later column against the same state recomputed from the stem). Training mode: c2f's BatchNorms use batch "
        "statistics.",
        "",
        markdown_table(
            [
                "block",
                "weights",
                "dtype",
                "columns",
                "checkpoint_every",
                "first column params",
                "all params",
                "pass reconstruction",
            ],
            [[b, w, d, c, k, f"{x:.2e}", f"{y:.2e}", fmt(r, ".2e")] for (b, w, d, c, k), (x, y, r) in grad.items()],
        ),  # fmt: skip
    ]
    return Section("\n".join(md), records, dict(grad=grad))
