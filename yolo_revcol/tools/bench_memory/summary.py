"""The memory report's summary parts: the config paragraph, the README block and the figure."""

from __future__ import annotations

from pathlib import Path

import torch

from ...nn.reversible import auto_checkpoint_every
from ..report import figure, fmt, markdown_table
from .common import MIB, MODES, BenchConfig, Section, block_label
from .saved import TARGETS


def describe(cfg: BenchConfig, quick: bool) -> str:
    """The sizes and block families, one paragraph."""
    blocks = ", ".join(f"**{block_label(b)}**" for b in cfg.blocks)
    return (
        f"Config: block families {blocks}; channels {cfg.channels}, layers {cfg.layers}, kernel {cfg.kernel}, "
        f"mlp_ratio {cfg.mlp_ratio} (convnext), batch {cfg.batch}, input {cfg.imgsz}x{cfg.imgsz}, float32 unless a "
        f"table says otherwise, training mode, drop_path 0, seed {cfg.seed}; reversible models at the class default "
        "`checkpoint_every: auto` (as a YAML without the option gets it) unless a column names an explicit K."
        + (" **Quick (smoke-test) sizes: the targets are informational only (the stem's fixed share dominates tiny "
           "models).**" if quick else "")
    )  # fmt: skip


def auto_sentence(cfg: BenchConfig) -> str:
    """What the class default ``checkpoint_every="auto"`` resolves to at the measured column counts."""

    def resolved(dtype: torch.dtype) -> str:
        by_k: dict[int, list[str]] = {}
        for c in cfg.mem_columns:
            by_k.setdefault(auto_checkpoint_every(c, dtype), []).append(str(c))

        def listed(cols: list[str]) -> str:
            return cols[0] if len(cols) == 1 else f"{', '.join(cols[:-1])} and {cols[-1]}"

        return ", ".join(f"K={k} at {listed(cols)} column{'' if cols == ['1'] else 's'}" for k, cols in by_k.items())

    fp32, bf16, fp16 = (resolved(d) for d in (torch.float32, torch.bfloat16, torch.float16))
    where = f"in float32 and under bf16 and fp16 autocast to {fp32}" if fp32 == bf16 == fp16 else (
        f"in float32 to {fp32}; under bf16 autocast to {bf16}; under fp16 autocast to {fp16}"
    )  # fmt: skip
    return (
        f"The class default `checkpoint_every: auto` resolves per forward (`RevCol.checkpoint_interval`) {where}. "
        "K=0 keeps no column's states (the exact reverse pass rebuilds them), K=1 every column's, K=2 every second."
    )


def saved_table(cfg: BenchConfig, sections: dict[str, Section], ks: tuple[int, ...] = (1, 2)) -> tuple[list, list]:
    """Header and rows of the saved-bytes table: per block and column count, reversible at the default and at each
    explicit K of ``ks`` that was measured, plain backprop, per-column checkpointing, and reversible / plain."""
    saved = sections["saved bytes"].data["saved"]
    ks = [k for k in ks if k in cfg.mem_every]
    rows = []
    for block in cfg.blocks:
        for c in cfg.mem_columns:
            mib = {m: saved[(block, m, c)].nbytes / MIB for m in (*MODES, *(f"reversible-K{k}" for k in ks))}
            rows.append([block, c, f"{mib['reversible']:.2f}", *(f"{mib[f'reversible-K{k}']:.2f}" for k in ks)])
            rows[-1] += [f"{mib['plain']:.2f}", f"{mib['checkpoint']:.2f}", f"{mib['reversible'] / mib['plain']:.3f}"]
    header = ["block", "columns", "reversible, default (MiB)", *(f"reversible, K={k} (MiB)" for k in ks)]
    header += ["plain (MiB)", "checkpoint per column (MiB)", "reversible default / plain"]
    return header, rows


def summary_block(cfg: BenchConfig, sections: dict[str, Section], note: str) -> str:
    """The README's short form: bytes saved for backward, reversible at the default against plain backprop and
    per-column checkpointing, by column count."""
    header, rows = saved_table(cfg, sections, ks=())
    return (
        f"{note}\nBytes saved for backward during one training step (MiB; `saved_tensors_hooks`, distinct storages):"
        f"\n\n{markdown_table(header, rows)}"
    )


def readme_block(cfg: BenchConfig, sections: dict[str, Section], note: str) -> str:
    """The README summary: saved bytes at the default and explicit K, targets, the reverse pass's error and time."""
    targets = sections["saved bytes"].data["targets"]
    header, rows = saved_table(cfg, sections)
    verdicts = []
    for block in cfg.blocks:
        # From saved.TARGETS, where the targets are defined: growth over columns, and the share of plain backprop.
        growth = [(num[1], targets[(block, name)]) for name, num, den, _ in TARGETS if den[0] == "reversible"]
        growth = [(c, v) for c, v in growth if v[0] is not None]
        share, s_limit = next(targets[(block, name)] for name, _, den, _ in TARGETS if den[0] == "plain")
        ratios = " and ".join(fmt(v[0], ".2f") + "x" for _, v in growth)
        counts = " and ".join(str(c) for c, _ in growth)
        flat = f"{ratios} its 2-column bytes at {counts} columns and " if growth else ""
        verdicts.append(f"{block}: reversible (default) saves {flat}{fmt(share)}x plain's at 4 columns.")
    parts = [
        note,
        "Bytes saved for backward (`saved_tensors_hooks`, distinct storages, stem included; default = the class "
        "default `checkpoint_every: auto`; K = an explicit `checkpoint_every`):",
        "",
        markdown_table(header, rows),
        " ".join(verdicts) + " " + auto_sentence(cfg),
        "",
    ]
    rec, growth = sections["reconstruction"].data["rec"], sections["reconstruction"].data["growth"]
    grad = sections["gradient check"].data["grad"]
    if rec or grad:
        lo, hi = cfg.alpha_range
        rec_rows = []
        for block in cfg.blocks:
            for c in sorted({*cfg.rec_columns, *cfg.grad_columns}):
                row = [block, c]
                for dtype in ("float32", "bf16-autocast"):
                    division, exact = rec.get((block, "trained-like", dtype, c, 0)), grad.get(
                        (block, "trained-like", dtype, c, "auto"))  # fmt: skip
                    row.append(fmt(division[0] if division else None, ".1e", "-"))
                    row += [fmt(exact.reconstruction if exact else None, ".1e", "-")]
                    row += [fmt(exact.total if exact else None, ".1e", "-")]
                rec_rows.append(row)
        rates = [
            f"{b} {d}: {fmt(g[0], '.1f')}x ({fmt(g[1], '.1f')}-{fmt(g[2], '.1f')}x)"
            for (b, w, d), g in growth.items()
            if w == "trained-like" and g
        ]
        parts += [
            f"Relative error of the first column's states after the reverse pass and of all parameter gradients "
            f"against plain backprop, trained-like weights (|alpha| in [{lo}, {hi}]; convnext layer scales about "
            f"{cfg.gamma}). Division only: (x - body) / alpha without the lost-bit stacks (what a reverse pass "
            "without them rebuilds, K=0); default: RevCol's reverse pass as shipped (its own "
            "`reconstruction_error`, and the gradients of a real backward):",
            "",
            markdown_table(
                [
                    "block",
                    "columns",
                    "float32: division only",
                    "float32: default pass",
                    "float32: gradients",
                    "bf16 autocast: division only",
                    "bf16 autocast: default pass",
                    "bf16 autocast: gradients",
                ],
                rec_rows,
            ),  # fmt: skip
        ]
        if rates:
            parts.append(
                f"Division only, each further reconstructed column multiplies the error by (geometric mean, range; "
                f"{max(cfg.rec_columns)} columns): " + "; ".join(rates) + "."
            )
        parts.append("")
    ratios = sections["step time"].data["ratios"]
    if ratios:
        steps = [
            f"{block} " + ", ".join(f"{ratios[(block, c, 'reversible')]:.2f}x at {c}" for c in cfg.time_columns)
            for block in cfg.blocks
        ]
        parts += [
            f"Training step (forward + backward + SGD step), reversible (default) / plain, medians of {cfg.reps} "
            f"interleaved steps in one run: {'; '.join(steps)} columns (the reverse pass recomputes every level "
            "once more and pops its bit stacks).",
        ]
    return "\n".join(parts) + "\n"


def plot(path: Path, cfg: BenchConfig, sections: dict[str, Section]) -> None:
    """One row of panels per block: saved MiB, RSS growth, step-time ratios, reconstruction and gradient error."""
    saved, rss = sections["saved bytes"].data["saved"], sections["peak RSS"].data["rss"]
    rec, grad = sections["reconstruction"].data["rec"], sections["gradient check"].data["grad"]
    ratios = sections["step time"].data["ratios"]
    rows = len(cfg.blocks)
    with figure(path, rows, 5, figsize=(26, 4.6 * rows), squeeze=False, dpi=100) as (fig, axes):
        for block, ax in zip(cfg.blocks, axes):
            for mode in [*MODES, *(f"reversible-K{e}" for e in cfg.mem_every)]:
                cols = [c for c in cfg.mem_columns if (block, mode, c) in saved]
                mib = [saved[(block, mode, c)].nbytes / MIB for c in cols]
                ax[0].plot(cols, mib, "o-" if mode in MODES else "x--", label=mode)
            for mode in MODES:
                cols = [c for c in cfg.rss_columns if (block, mode, c) in rss]
                grow = [(rss[(block, mode, c)]["peak"] - rss[(block, mode, c)]["before"]) / 1024 for c in cols]
                ax[1].plot(cols, grow, "o-", label=mode)
            cols = [c for c in cfg.time_columns if (block, c, "reversible") in ratios]
            for j, mode in enumerate(("reversible", "checkpoint")):
                x = [i + (j - 0.5) * 0.35 for i in range(len(cols))]
                ax[2].bar(x, [ratios[(block, c, mode)] for c in cols], 0.35, label=f"{mode} / plain")
            ax[2].axhline(1.0, color="k", lw=0.8)
            ax[2].set_xticks(range(len(cols)), [str(c) for c in cols])
            plot_errors(ax[3], {k[1:]: max(v) for k, v in rec.items() if k[0] == block})
            plot_errors(ax[4], {k[1:]: v[1] for k, v in grad.items() if k[0] == block})
            titles = ("saved for backward (excl. params)", "fwd+bwd peak RSS - RSS before the step",
                      "training step time ratio (medians)", "reconstruction error, worst column",
                      "reversible vs plain gradient error, all params")  # fmt: skip
            ylabels = ("MiB", "MiB", "ratio", "relative error", "relative error")
            for a, title, ylabel in zip(ax, titles, ylabels):
                a.set(title=f"{block}: {title}", xlabel="columns", ylabel=ylabel)
                a.grid(alpha=0.3)
                if a.get_legend_handles_labels()[0]:
                    a.legend(fontsize=7)


def plot_errors(ax, errors: dict[tuple[str, str, int, int], float]) -> None:
    """Log-scale lines of one error per (weights, dtype, K) against the column count (colour: setting, style: K)."""
    settings = sorted({(w, d) for w, d, _, _ in errors})
    everies = sorted({e for _, _, _, e in errors}, key=str)  # "auto" beside ints
    for i, (w, d) in enumerate(settings):
        for e in everies:
            cols = sorted(c for w2, d2, c, e2 in errors if (w2, d2, e2) == (w, d, e))
            if cols:
                values = [max(errors[(w, d, c, e)], 1e-12) for c in cols]  # exact zeros cannot be drawn on a log axis
                style = ("-", "--", ":", "-.")[everies.index(e) % 4]
                ax.semilogy(cols, values, marker="o", ls=style, color=f"C{i}", label=f"{w}, {d}, K={e}")
