"""The memory report's summary parts: the config paragraph, the README block and the figure."""

from __future__ import annotations

from pathlib import Path

import torch

from ...nn.reversible import auto_checkpoint_every
from ..report import figure, fmt, markdown_table
from .common import MIB, MODES, BenchConfig, Section, block_label


def describe(cfg: BenchConfig, quick: bool) -> str:
    """The sizes and block families, one paragraph."""
    blocks = ", ".join(f"**{block_label(b)}**" for b in cfg.blocks)
    return (
        f"Config: block families {blocks}; channels {cfg.channels}, layers {cfg.layers}, kernel {cfg.kernel}, "
        f"mlp_ratio {cfg.mlp_ratio} (convnext), batch {cfg.batch}, input {cfg.imgsz}x{cfg.imgsz}, float32 unless a "
        f"table says otherwise, training mode, drop_path 0, seed {cfg.seed}; every reversible model with an explicit "
        "`checkpoint_every` (K), not the class default `auto`."
        + (" **Quick (smoke-test) sizes: the targets are informational only (the stem's fixed share dominates tiny "
           "models).**" if quick else "")
    )  # fmt: skip


def auto_sentence(cfg: BenchConfig) -> str:
    """What the class default ``checkpoint_every="auto"`` resolves to at the measured column counts."""

    def resolved(dtype: torch.dtype) -> str:
        by_k: dict[int, list[str]] = {}
        for c in cfg.mem_columns:
            by_k.setdefault(auto_checkpoint_every(c, dtype), []).append(str(c))
        return ", ".join(
            f"K={k} at {' and '.join(cols)} column{'' if cols == ['1'] else 's'}" for k, cols in by_k.items()
        )

    return (
        "The class default `checkpoint_every: auto` resolves per forward (`RevCol.checkpoint_interval`): in float32 "
        f"to {resolved(torch.float32)}; under bf16 autocast to {resolved(torch.bfloat16)}"
        + (" (fp16 alike)" if resolved(torch.float16) == resolved(torch.bfloat16) else "")
        + ". K=1 keeps every column's states. The K columns above are those settings, measured in float32."
    )


def readme_block(cfg: BenchConfig, sections: dict[str, Section], note: str) -> str:
    """The README summary: saved bytes, targets, what ``auto`` means, reconstruction error and step-time ratios."""
    saved, targets = sections["saved bytes"].data["saved"], sections["saved bytes"].data["targets"]
    ks = [k for k in (1, 2) if k in cfg.mem_every]
    rows = []
    for block in cfg.blocks:
        for c in cfg.mem_columns:
            mib = {m: saved[(block, m, c)].nbytes / MIB for m in (*MODES, *(f"reversible-K{k}" for k in ks))}
            rows.append([block, c, f"{mib['reversible']:.2f}", *(f"{mib[f'reversible-K{k}']:.2f}" for k in ks)])
            rows[-1] += [f"{mib['plain']:.2f}", f"{mib['checkpoint']:.2f}", f"{mib['reversible'] / mib['plain']:.3f}"]
    header = ["block", "columns", "reversible, K=0 (MiB)", *(f"reversible, K={k} (MiB)" for k in ks), "plain (MiB)"]
    header += ["checkpoint per column (MiB)", "reversible K=0 / plain"]
    verdicts = []
    for block in cfg.blocks:
        (growth, g_limit), (share, s_limit) = (targets[(block, name)] for name in (
            "saved bytes reversible(8) / reversible(2)", "saved bytes reversible(4) / plain(4)"))  # fmt: skip
        verdicts.append(
            f"{block}: reversible (K=0) at 8 columns is {fmt(growth, '.2f')}x its 2-column figure (target <= "
            f"{g_limit}x), at 4 columns {fmt(share)}x plain (target <= {s_limit}x)."
        )
    parts = [
        note,
        "Bytes saved for backward (`saved_tensors_hooks`, distinct storages, stem included; K = `checkpoint_every`):",
        "",
        markdown_table(header, rows),
        " ".join(verdicts) + " " + auto_sentence(cfg),
        "",
    ]
    rec, growth = sections["reconstruction"].data["rec"], sections["reconstruction"].data["growth"]
    if rec:
        lo, hi = cfg.alpha_range
        rec_rows = []
        for block in cfg.blocks:
            for c in cfg.rec_columns:
                keys = [(block, "trained-like", d, c, k) for d in ("float32", "bf16-autocast") for k in (0, 2)]
                cells = [rec.get(k) for k in keys]
                first = [fmt(v[0] if v else None, ".1e", "-") for v in cells[:3]]
                rec_rows.append([block, c, *first, fmt(max(cells[3]) if cells[3] else None, ".1e", "-")])
        rates = [
            f"{b} {d}: {fmt(g[0], '.1f')}x ({fmt(g[1], '.1f')}-{fmt(g[2], '.1f')}x)"
            for (b, w, d), g in growth.items()
            if w == "trained-like" and g
        ]
        parts += [
            f"Relative reconstruction error of the first column's states, trained-like weights (|alpha| in [{lo}, "
            f"{hi}]; convnext layer scales about {cfg.gamma}):",
            "",
            markdown_table(
                [
                    "block",
                    "columns",
                    "float32, K=0",
                    "float32, K=2",
                    "bf16 autocast, K=0",
                    "bf16 autocast, K=2 (worst column)",
                ],
                rec_rows,
            ),  # fmt: skip
            f"Each further reconstructed column multiplies the error by (geometric mean, range; K=0 at "
            f"{max(cfg.rec_columns)} columns, trained-like): " + "; ".join(rates) + ".",
            "",
        ]
    ratios = sections["step time"].data["ratios"]
    if ratios:
        steps = [
            f"{block} " + ", ".join(f"{ratios[(block, c, 'reversible')]:.2f}x at {c}" for c in cfg.time_columns)
            for block in cfg.blocks
        ]
        parts += [
            f"Training step (forward + backward + SGD step), reversible (K=0) / plain, medians of {cfg.reps} "
            f"interleaved steps in one run: {'; '.join(steps)} columns (recomputation costs one extra forward of "
            "every level).",
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
    everies = sorted({e for _, _, _, e in errors})
    for i, (w, d) in enumerate(settings):
        for e in everies:
            cols = sorted(c for w2, d2, c, e2 in errors if (w2, d2, e2) == (w, d, e))
            if cols:
                values = [max(errors[(w, d, c, e)], 1e-12) for c in cols]  # exact zeros cannot be drawn on a log axis
                style = ("-", "--", ":", "-.")[everies.index(e) % 4]
                ax.semilogy(cols, values, marker="o", ls=style, color=f"C{i}", label=f"{w}, {d}, K={e}")
