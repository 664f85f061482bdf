"""Training memory of RevCol's reversible path against plain backprop (CPU), and the exactness of its reverse pass.

Per block family (``c2f``, the shipped YAMLs' block; ``convnext``, the paper's) and column count, the same backbone
trained three ways (``reversible``; ``plain`` backprop; ``checkpoint``: each column under ``torch.utils.checkpoint``):
the bytes one forward saves for backward, the peak RSS of one step (a fresh process each), and the reverse pass's own
reconstruction error and gradients against plain backprop (float32, bf16 autocast). Opt-in sections: ``aux`` (what
RevCol's ``aux`` adds to a YOLO step) and ``paper`` (RevCol-T/S/B). Step time is ``yolo-revcol speed``'s.

Examples:
    yolo-revcol memory --readme README.md docs/benchmarks.md   # the full run and both blocks
    yolo-revcol memory --quick                                  # tiny sizes, a temporary output folder
    yolo-revcol memory --sections aux paper --readme docs/benchmarks.md
"""

from __future__ import annotations

import argparse
import gc
import os
import statistics
import tempfile
from collections.abc import Sequence
from pathlib import Path

import torch
import yaml
from torch import nn
from torch.utils.checkpoint import checkpoint

from ..nn import ChannelScale, RevCol, ReversibleScale
from ..paths import cfg_dir
from .toolbox import (
    MALLOC_ENV,
    PAPER_MODELS,
    add_report_arguments,
    build_model,
    command_line,
    figure,
    fmt,
    interleave,
    machine,
    markdown_table,
    offline,
    peak_rss_kib,
    reset_peak_rss,
    run_child,
    saved_mib,
    synthetic_batch,
    train_step,
    write_csv,
    write_result,
)

MODES = ("reversible", "plain", "checkpoint")
BLOCKS = ("c2f", "convnext")
DTYPES = ("float32", "bf16-autocast")
WEIGHTS = ("default", "trained-like")
ALPHA_RANGE, GAMMA, GAMMA_NOISE = (0.1, 1.0), 1.0, 0.1  # the trained-like weights (see ``trained_like``)
GRADIENT_BOUND = {"float32": 1e-5, "bf16-autocast": 1e-2}  # reversible vs plain gradients, the tests' bound
SIZE = dict(channels=[32, 64, 128, 256], layers=[1, 1, 3, 1], batch=4, imgsz=256, seed=0, threads=0)
# The gradient check stops at 8 columns (16 doubled a run of about 40 minutes on 2 busy cores); --sections paper
# checks 16 on RevCol-B.
GRIDS = dict(columns=[1, 2, 4, 8, 16], rss_columns=[1, 2, 4, 8, 16], grad_columns=[2, 4, 8])
QUICK = dict(channels=[8, 16, 24, 32], layers=[1, 1, 1, 1], batch=1, imgsz=64, threads=1)
QUICK_GRIDS = dict(columns=[1, 2, 4, 8], rss_columns=[2], grad_columns=[2, 4])
PAPER = {k: (f"RevCol-{k.upper()}", yaml_name, stock) for k, (yaml_name, stock) in PAPER_MODELS.items()}
CSV_KEYS = ("section", "block", "mode", "columns", "weights", "dtype", "metric", "value")


class Checkpointed(nn.Module):
    """A RevCol (its reversible path off) run as its stem, then each column under non-reentrant checkpointing."""

    def __init__(self, model: RevCol):
        """Wrap ``model``."""
        super().__init__()
        model.reversible = False
        self.model = model

    def forward(self, x: torch.Tensor) -> list[torch.Tensor]:
        """The last column's four states, as ``RevCol.forward`` returns them."""
        x = self.model.stem(x).to(self.model.stem.weight.dtype)
        states: list[torch.Tensor] = []
        for column in self.model.columns:  # states as separate arguments: checkpoint saves those, not list members
            states = checkpoint(lambda c, x, *prev: c(x, list(prev) or None), column, x, *states, use_reentrant=False)
        return states


def backbone(size: dict, block: str, columns: int, mode: str) -> nn.Module:
    """A RevCol of ``size`` (channels, layers, seed) with ``columns`` columns, run as ``mode``, in training mode."""
    torch.manual_seed(size["seed"])
    model = RevCol(3, size["channels"], size["layers"], columns, reversible=mode == "reversible", block=block)
    return (Checkpointed(model) if mode == "checkpoint" else model).train()


def image(size: dict) -> torch.Tensor:
    """A reproducible random batch (batch, 3, imgsz, imgsz)."""
    g = torch.Generator().manual_seed(size["seed"] + 1)
    return torch.randn(size["batch"], 3, size["imgsz"], size["imgsz"], generator=g)


def loss_of(outputs: Sequence[torch.Tensor]) -> torch.Tensor:
    """A scalar that reaches all four outputs and saves nothing itself."""
    return sum(o.float().mean() for o in outputs)


def trained_like(model: RevCol, seed: int) -> RevCol:
    """Weights that look trained (a harder reverse pass than the init's): every |alpha| uniform in ``ALPHA_RANGE``
    (sign kept), every convnext layer scale ``GAMMA * (1 + GAMMA_NOISE * N(0, 1))`` per channel (its init, 1e-6,
    makes each level almost the identity; c2f blocks have none)."""
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for m in model.modules():
            if isinstance(m, ReversibleScale):  # first: alphas may be ChannelScales too
                magnitude = torch.empty(m.weight.shape).uniform_(*ALPHA_RANGE, generator=g)
                m.weight.copy_(torch.where(m.weight < 0, -magnitude, magnitude))
            elif isinstance(m, ChannelScale):
                m.weight.copy_(GAMMA * (1.0 + GAMMA_NOISE * torch.randn(m.weight.shape, generator=g)))
    return model


def gradient_check(model: RevCol, img: torch.Tensor, dtype: str, seed: int = 3) -> tuple[float, float, float | None]:
    """The reversible path against plain backprop on one model (drop path 0: no RNG is replayed).

    Both runs share weights, input and dtype setting; the loss weights every output element with a fixed random
    factor. Returns the relative gradient error (float64 norms) over the first column's parameters (the end of the
    reverse pass) and over all parameters, and the pass's own ``RevCol.reconstruction_error`` (the first column's
    finest state rebuilt through every later column against the one recomputed from the stem; None at 1 column).
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
        return [p.grad.detach().double() for p in model.parameters()]

    plain = grads(False)
    model.reconstruction_error = None
    rev, error = grads(True), model.reconstruction_error
    first = {id(p) for p in model.columns[0].parameters()}
    pairs = list(zip(plain, rev, (id(p) in first for p in model.parameters())))

    def rel(only_first: bool) -> float:
        chosen = [(a, b) for a, b, f in pairs if f or not only_first]
        num = sum(float((b - a).pow(2).sum()) for a, b in chosen)
        return (num / max(sum(float(a.pow(2).sum()) for a, _ in chosen), 1e-300)) ** 0.5

    return rel(True), rel(False), None if error is None else float(error)


def rss_worker(size: dict, block: str, columns: int, mode: str) -> dict:
    """In a fresh process (``run_child``): build, one warm-up step (it allocates the gradients), then one measured
    forward and backward; the RSS high-water mark is reset before each. Returns KiB ``before`` (RSS before the
    measured step), ``peak`` (its peak), ``grad_bytes`` and ``reset`` (whether the mark could be reset)."""
    if size["threads"]:
        torch.set_num_threads(size["threads"])
    model, x = backbone(size, block, columns, mode), image(size)
    loss_of(model(x)).backward()
    model.zero_grad(set_to_none=False)  # the measured step does not allocate the gradient buffers
    gc.collect()
    reset = reset_peak_rss()
    before = peak_rss_kib()
    loss_of(model(x)).backward()
    grads = sum(p.grad.nbytes for p in model.parameters() if p.grad is not None)
    return dict(before=before, peak=peak_rss_kib(), grad_bytes=grads, reset=reset)


# ------------------------------------------------------------------------------------------------ section memory


def measure(args: argparse.Namespace) -> dict:
    """Every measurement of the ``memory`` section: ``saved`` (block, mode, columns) -> MiB, ``rss`` (same key) ->
    ``rss_worker``'s result, ``grad`` (block, weights, dtype, columns) -> ``gradient_check``'s result."""
    size, data = args.size, dict(saved={}, rss={}, grad={})
    for block in args.blocks:
        for c in args.columns:
            for mode in MODES:
                model, x = backbone(size, block, c, mode), image(size)
                data["saved"][(block, mode, c)] = mib = saved_mib(model, lambda m=model, x=x: m(x))
                print(f"saved  {block:8s} {mode:10s} {c:2d} columns: {mib:8.2f} MiB", flush=True)
        for c in args.rss_columns:
            for mode in MODES:
                spec = dict(size=size, block=block, columns=c, mode=mode)
                r = run_child("yolo_revcol.tools.bench_memory:rss_worker", spec, env=MALLOC_ENV, capture=True)
                data["rss"][(block, mode, c)] = r
                print(f"rss    {block:8s} {mode:10s} {c:2d} columns: +{(r['peak'] - r['before']) / 1024:.1f} MiB")
        for weights in WEIGHTS:
            for dtype in DTYPES:
                for c in args.grad_columns:
                    model = backbone(size, block, c, "plain")
                    if weights == "trained-like":
                        trained_like(model, size["seed"] + 2)
                    data["grad"][(block, weights, dtype, c)] = e = gradient_check(model, image(size), dtype)
                    print(f"grad   {block:8s} {weights:12s} {dtype:13s} {c:2d} columns: all {e[1]:.1e}, "
                          f"reconstruction {fmt(e[2], '.1e')}", flush=True)  # fmt: skip
    return data


def records(data: dict) -> list[list]:
    """The CSV rows (``CSV_KEYS``), unrounded."""
    rows = [["saved", b, m, c, "", "", "saved_mib", v] for (b, m, c), v in data["saved"].items()]
    for (b, m, c), r in data["rss"].items():
        rows += [["rss", b, m, c, "", "", f"{k}_kib" if k != "grad_bytes" else k, r[k]] for k in r if k != "reset"]
    for (b, w, d, c), e in data["grad"].items():
        names = ("grad_rel_error_first_column", "grad_rel_error_all", "pass_reconstruction_error")
        rows += [["gradient", b, "reversible", c, w, d, n, v] for n, v in zip(names, e)]
    return rows


def saved_table(args: argparse.Namespace, data: dict) -> str:
    """Saved MiB per block and column count: reversible, plain, checkpoint per column, and the ratios to plain."""
    rows = []
    for block in args.blocks:
        for c in args.columns:
            r, p, k = (data["saved"][(block, m, c)] for m in MODES)
            rows.append([block, c, f"{r:.2f}", f"{p:.2f}", f"{k:.2f}", f"{r / p:.3f}", f"{k / p:.3f}"])
    header = ["block", "columns", "reversible (MiB)", "plain (MiB)", "checkpoint per column (MiB)"]
    return markdown_table([*header, "reversible / plain", "checkpoint / plain"], rows)


def ratios_sentence(args: argparse.Namespace, data: dict) -> str:
    """How flat the reversible bytes stay over columns, and their share of plain backprop's, per block."""
    saved, parts = data["saved"], []
    for block in args.blocks:
        cols = [c for c in args.columns if c > 2 and 2 in args.columns]
        flat = [f"{saved[(block, 'reversible', c)] / saved[(block, 'reversible', 2)]:.2f}x" for c in cols]
        flat = f"{listed(flat)} its 2-column bytes at {listed(map(str, cols))} columns, and " if cols else ""
        big = max(args.columns)
        share = saved[(block, "reversible", big)] / saved[(block, "plain", big)]
        parts.append(f"{block}: reversible saves {flat}{share:.3f}x plain's at {big} columns.")
    return " ".join(parts)


def listed(items) -> str:
    """``a``, ``a and b``, ``a, b and c``."""
    items = list(items)
    return " and ".join([", ".join(items[:-1]), items[-1]] if len(items) > 1 else items)


def gradient_table(args: argparse.Namespace, data: dict, weights: Sequence[str] = WEIGHTS, full: bool = True) -> str:
    """The reverse pass's own reconstruction error and its gradient error against plain backprop."""
    rows = []
    for (b, w, d, c), (first, total, rec) in data["grad"].items():
        if w in weights:
            rows.append([b, w, d.replace("-", " "), c, fmt(rec, ".1e", "-"), *([f"{first:.1e}"] if full else [])])
            rows[-1].append(f"{total:.1e}")
    header = ["block", "weights", "precision", "columns", "pass reconstruction"]
    return markdown_table(header + (["gradients, first column"] if full else []) + ["gradients, all"], rows)


def rss_table(data: dict) -> str:
    """Peak RSS of one training step per configuration."""
    rows = [
        [b, c, m, f"{r['before'] / 1024:.1f}", f"{r['peak'] / 1024:.1f}", f"{(r['peak'] - r['before']) / 1024:.1f}"]
        + [f"{r['grad_bytes'] / 2**20:.1f}"]
        for (b, m, c), r in data["rss"].items()
    ]
    header = ["block", "columns", "mode", "before (MiB)", "step peak (MiB)", "step peak - before (MiB)", "grads (MiB)"]
    return markdown_table(header, rows)


def describe(args: argparse.Namespace) -> str:
    """The sizes, one paragraph."""
    s = args.size
    return (
        f"Config: block families {', '.join(args.blocks)} (c2f: the shipped YAMLs' block; convnext: the paper's and "
        f"`RevCol`'s default); channels {s['channels']}, layers {s['layers']}, batch {s['batch']}, input "
        f"{s['imgsz']}x{s['imgsz']}, float32 unless a table says otherwise, training mode, drop path 0, seed "
        f"{s['seed']}." + (" **Quick (smoke-test) sizes: the stem dominates such tiny models.**" if args.quick else "")
    )


SAVED_NOTE = (
    "Bytes saved for backward in one training-mode forward of the whole backbone, stem included: distinct storages "
    "packed by `torch.autograd.graph.saved_tensors_hooks`, parameters and buffers excluded (`toolbox.saved_mib`). "
    "For `checkpoint` the hooks see what each `checkpoint(column, ...)` call keeps, its inputs."
)
GRAD_NOTE = (
    "The reverse pass: parameter gradients of `reversible=True` against `reversible=False` on the same model, input "
    "and precision (under bf16 autocast both runs are, so the reference is bf16 training too), loss = every output "
    "element times a fixed random factor; relative errors ||g_rev - g_plain|| / ||g_plain||. `pass reconstruction`: "
    "`RevCol.reconstruction_error`, the first column's finest state rebuilt through every later column against the "
    "same state recomputed from the stem (0 = bit for bit). Weights: default = the init (convnext layer scale 1e-6); "
    f"trained-like = every |alpha| uniform in [{ALPHA_RANGE[0]}, {ALPHA_RANGE[1]}] and convnext layer scales "
    f"{GAMMA} x (1 + {GAMMA_NOISE} N(0, 1)). Training mode: c2f's BatchNorms use batch statistics."
)


def memory_report(args: argparse.Namespace) -> None:
    """Run the ``memory`` section and write its report, CSV, plot and blocks."""
    print(f"$ {command_line()}\n{machine()}", flush=True)
    data = measure(args)
    note = f"Measured by `{command_line()}` on {machine()}.\n{describe(args)}\n"
    parts = ["# RevCol training memory", "", note, "## Bytes saved for backward", "", SAVED_NOTE, ""]
    parts += [saved_table(args, data), ratios_sentence(args, data), ""]
    if data["rss"]:
        env = " ".join(f"{k}={os.environ.get(k, v)}" for k, v in MALLOC_ENV.items())
        reset = "" if all(r["reset"] for r in data["rss"].values()) else " (**could not be reset here**)"
        parts += ["## Peak RSS", "", f"One fresh process per row (`{env}`, so freed tensors go back to the OS): "
                  "build, one warm-up step, then one measured forward and backward; `VmHWM` reset before it"
                  f"{reset}.", "", rss_table(data)]  # fmt: skip
    if data["grad"]:
        parts += ["## The reverse pass: reconstruction and gradients", "", GRAD_NOTE, "", gradient_table(args, data)]
    block = [note + f"Full tables (peak RSS, both weight settings) and the plot: `{args.out / 'memory.md'}`.\n"]
    block += [SAVED_NOTE, "", saved_table(args, data), ratios_sentence(args, data), ""]
    if data["grad"]:
        block += [GRAD_NOTE.split(" Weights:")[0] + " Trained-like weights:", ""]
        block += [gradient_table(args, data, ("trained-like",), full=False)]
    write_result(
        args.out / "memory",
        "\n".join(parts) + "\n",
        CSV_KEYS,
        records(data),
        plot=lambda path: plot(path, args, data),
        readme=args.readme,
        readme_text="\n".join(block) + "\n",
        summary=f"{note}\n{SAVED_NOTE}\n\n{saved_table(args, data)}",
    )


def plot(path: Path, args: argparse.Namespace, data: dict) -> None:
    """One row per block: saved MiB, RSS growth of the step and the gradient error, against the column count."""
    with figure(path, len(args.blocks), 3, figsize=(16, 4.4 * len(args.blocks)), squeeze=False) as (fig, axes):
        for block, ax in zip(args.blocks, axes):
            for mode in MODES:
                cols = [c for c in args.columns if (block, mode, c) in data["saved"]]
                ax[0].plot(cols, [data["saved"][(block, mode, c)] for c in cols], "o-", label=mode)
                cols = [c for c in args.rss_columns if (block, mode, c) in data["rss"]]
                rss = [data["rss"][(block, mode, c)] for c in cols]
                ax[1].plot(cols, [(r["peak"] - r["before"]) / 1024 for r in rss], "o-", label=mode)
            for i, (w, d) in enumerate((w, d) for w in WEIGHTS for d in DTYPES):
                cols = [c for c in args.grad_columns if (block, w, d, c) in data["grad"]]
                values = [max(data["grad"][(block, w, d, c)][1], 1e-12) for c in cols]  # zeros on a log axis
                ax[2].semilogy(cols, values, "o-", color=f"C{i}", label=f"{w}, {d}")
            titles = ("saved for backward", "peak RSS of the step - RSS before it", "reversible vs plain gradients")
            for a, title, ylabel in zip(ax, titles, ("MiB", "MiB", "relative error (1e-12: exact)")):
                a.set(title=f"{block}: {title}", xlabel="columns", ylabel=ylabel)
                a.grid(alpha=0.3)
                if a.get_legend_handles_labels()[0]:
                    a.legend(fontsize=7)


# --------------------------------------------------------------------------------------------------- section aux


def loss_saved_mib(models: dict, batch: dict) -> dict[str, float]:
    """Name -> MiB that one training forward and loss save for backward; ``models``: name -> (model, reversible or
    None), the RevCol training path set before each."""
    saved = {}
    for name, (model, reversible) in models.items():
        if reversible is not None:
            model.model[0].reversible = reversible
        saved[name] = saved_mib(model, lambda m=model: m.loss(batch)[0])
    return saved


def yolo_step(models: dict, batch: dict, reps: int) -> dict[str, tuple[float, float]]:
    """Name -> (saved MiB, median step ms) of YOLO training steps; ``models`` as ``loss_saved_mib`` takes them.
    The steps (zero grad, forward, loss, backward) are interleaved, one untimed step each first."""
    saved = loss_saved_mib(models, batch)
    steps = {name: train_step(m, batch, reversible) for name, (m, reversible) in models.items()}
    ms = interleave(steps, reps, 1, 1, torch.get_num_threads())
    return {name: (saved[name], statistics.median(ms[name])) for name in models}


def aux_report(args: argparse.Namespace) -> list[list]:
    """yolov8<scale>-revcol with and without ``aux``, reversible and plain: saved bytes and step time."""
    d = yaml.safe_load((cfg_dir() / "yolov8-revcol.yaml").read_text())
    models = {}
    for a in (0.0, args.aux):
        d["backbone"][0][3][3]["aux"] = a
        torch.manual_seed(0)
        model = build_model(dict(d, scale=args.aux_scale), train=True, nc=8)
        models.update({(path, a): (model, path == "reversible") for path in ("reversible", "plain")})
    r = yolo_step(models, synthetic_batch(args.aux_batch, args.aux_imgsz, nc=8), args.aux_reps)
    rows = []
    for path in ("reversible", "plain"):
        base_mib, base_ms = r[(path, 0.0)]
        heads = sum(q.numel() for q in models[(path, args.aux)][0].model[0].aux_heads.parameters())
        for a in (0.0, args.aux):
            mib, ms = r[(path, a)]
            rows.append([path, a, mib, mib / base_mib, ms, ms / base_ms, heads if a else 0])
    note = (
        f"Measured by `{command_line()}` on {machine()}.\nyolov8{args.aux_scale}-revcol, 8 classes, batch "
        f"{args.aux_batch} at {args.aux_imgsz} px, random images with 4 boxes each, one training step (Ultralytics' "
        f"loss, then backward); saved bytes as `toolbox.saved_mib` counts them; median of {args.aux_reps} interleaved "
        "steps.\n"
    )
    header = ("training path", "aux", "saved for backward (MiB)", "ratio", "step (ms)", "step ratio", "aux head params")
    table = [
        [p, f"{a:g}", f"{m:.1f}", f"{mr:.3f}", f"{t:.0f}", f"{tr:.3f}", f"{h:,}"] for p, a, m, mr, t, tr, h in rows
    ]
    keys = ("path", "aux", "saved_mib", "saved_ratio", "step_ms", "step_ratio", "aux_head_params")
    write_result(args.out / "aux_memory", f"{note}\n{markdown_table(header, table)}", keys, rows, readme=args.readme,
                 block="aux-memory")  # fmt: skip
    return rows


# ------------------------------------------------------------------------------------------------- section paper


def paper_backbone(letter: str) -> RevCol:
    """The RevCol row of a paper YAML (3 input channels, drop path 0 for the gradient check)."""
    row = yaml.safe_load((cfg_dir() / PAPER[letter][1]).read_text())["backbone"][0][3]
    options = {k: v for k, v in (row[3] if len(row) > 3 else {}).items() if k not in ("weights", "drop_path")}
    torch.manual_seed(0)
    return RevCol(3, *row[:3], **options).train()


def paper_report(args: argparse.Namespace) -> tuple[list[list], list[list]]:
    """The paper's backbones: their reverse pass (reconstruction and gradients against plain backprop), and one YOLO
    training step of each ``--paper-step-models`` model against its stock partner; ``paper_memory.*``."""
    img = torch.randn(1, 3, args.paper_rec_imgsz, args.paper_rec_imgsz, generator=torch.Generator().manual_seed(1))
    rec = []
    for letter in args.paper_models:
        for weights in WEIGHTS:
            for dtype in DTYPES:
                model = paper_backbone(letter)
                if weights == "trained-like":
                    trained_like(model, 2)
                first, total, error = gradient_check(model, img, dtype)
                rec.append([PAPER[letter][0], len(model.columns), weights, dtype, error, first, total])
                print(f"paper  {PAPER[letter][0]} {weights:12s} {dtype:13s}: reconstruction {fmt(error, '.1e')}, "
                      f"gradients {total:.1e}", flush=True)  # fmt: skip
    steps = []
    for letter in args.paper_step_models:
        name, revcol_yaml, stock_yaml = PAPER[letter]
        torch.manual_seed(0)
        stock, revcol = build_model(stock_yaml, train=True), build_model(cfg_dir() / revcol_yaml, train=True)
        variants = {"stock": (stock, None), "reversible": (revcol, True), "plain backprop": (revcol, False)}
        nc = min(stock.model[-1].nc, revcol.model[-1].nc)  # a stand-in YAML in the tests may have fewer classes
        batch = synthetic_batch(args.paper_batch, args.paper_imgsz, nc=nc)
        saved = loss_saved_mib(variants, batch)  # step time: yolo-revcol speed --paper
        steps += [
            [Path(stock_yaml if k == "stock" else revcol_yaml).stem, k, v, v / saved["stock"]] for k, v in saved.items()
        ]
    note = (
        f"Measured by `{command_line()}` on {machine()}.\nReverse pass: each YAML's RevCol row (drop path 0), batch 1 "
        f"at {args.paper_rec_imgsz} px; the pass's own `reconstruction_error` and the relative error of the "
        "parameter gradients against plain backprop (first column, all), init and trained-like weights (every "
        f"|alpha| in [{ALPHA_RANGE[0]}, {ALPHA_RANGE[1]}], layer scales about {GAMMA}). Training step: the YAML as "
        f"built (its drop path), batch {args.paper_batch} at {args.paper_imgsz} px, random images with 4 boxes each, "
        "Ultralytics' loss; saved bytes as `toolbox.saved_mib` counts them (step times: `yolo-revcol speed --paper`).\n"
    )
    header = ("backbone", "columns", "weights", "precision", "pass reconstruction", "gradients, first column")
    rows = [[n, c, w, d.replace("-", " "), fmt(e, ".1e", "-"), f"{f:.1e}", f"{t:.1e}"] for n, c, w, d, e, f, t in rec]
    tables = [markdown_table([*header, "gradients, all"], rows)]
    if steps:
        step_header = ("model", "training path", "saved for backward (MiB)", "/ stock")
        rows = [[m, p, f"{s:.1f}", f"{sr:.3f}"] for m, p, s, sr in steps]
        tables.append(markdown_table(step_header, rows))
    keys = ("backbone", "columns", "weights", "dtype", "pass_reconstruction", "grad_first_column", "grad_all")
    write_result(args.out / "paper_memory", "\n".join([note, *tables]), keys, rec, readme=args.readme,
                 block="paper-memory")  # fmt: skip
    write_csv(args.out / "paper_memory_step.csv", ("model", "path", "saved_mib", "saved_ratio"), steps)
    return rec, steps


# ------------------------------------------------------------------------------------------------------- command


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    """The command line; ``args.size`` gathers the backbone sizes (``--quick``'s where none was given)."""
    p = argparse.ArgumentParser(prog="yolo-revcol memory", description=__doc__.split("\n\n")[0])
    p.add_argument("--sections", nargs="+", choices=("memory", "aux", "paper"), default=["memory"],
                   help="memory: saved bytes, peak RSS, the reverse pass (memory.*); aux: what RevCol's aux adds to a "
                   "YOLO step (aux_memory.*); paper: RevCol-T/S/B (paper_memory.*) (default: memory)")  # fmt: skip
    p.add_argument("--quick", action="store_true", help="tiny sizes and grids (a smoke test)")
    add_report_arguments(
        p, "memory.* (aux_memory.*, paper_memory.*; default results, --quick: a temporary one)", "the blocks", None
    )
    p.add_argument("--blocks", nargs="+", choices=BLOCKS, default=list(BLOCKS), help="block families (c2f convnext)")
    p.add_argument("--channels", type=int, nargs=4, help=f"channels of the four levels ({SIZE['channels']})")
    p.add_argument("--layers", type=int, nargs=4, help=f"blocks per level ({SIZE['layers']})")
    for name in ("batch", "imgsz", "seed", "threads"):
        p.add_argument(f"--{name}", type=int, help=f"{name} (default {SIZE[name]}; 0 threads: torch's default)")
    p.add_argument("--columns", type=int, nargs="+", help=f"columns, saved bytes ({GRIDS['columns']})")
    p.add_argument("--rss-columns", type=int, nargs="*", help=f"columns, peak RSS ({GRIDS['rss_columns']}; none: skip)")
    p.add_argument("--grad-columns", type=int, nargs="*", help=f"columns, reverse pass ({GRIDS['grad_columns']})")
    g = p.add_argument_group("aux section")
    g.add_argument("--aux-scale", default="n", choices=list("nsmlx"), help="scale of yolov8<scale>-revcol (n)")
    g.add_argument("--aux-imgsz", type=int, default=320, help="image side (320)")
    g.add_argument("--aux-batch", type=int, default=8, help="batch size (8)")
    g.add_argument("--aux", type=float, default=0.5, help="aux value of the supervised variants (0.5)")
    g.add_argument("--aux-reps", type=int, default=5, help="timed steps per variant (5)")
    g = p.add_argument_group("paper section")
    g.add_argument("--paper-models", nargs="+", choices=list(PAPER), default=list(PAPER), help="reverse pass (t s b)")
    g.add_argument("--paper-step-models", nargs="*", choices=list(PAPER), default=["t"], help="training step (t)")
    g.add_argument("--paper-rec-imgsz", type=int, default=64, help="image side of the reverse-pass check (64)")
    g.add_argument("--paper-imgsz", type=int, default=320, help="image side of the training step (320)")
    g.add_argument("--paper-batch", type=int, default=2, help="batch size of the training step (2)")
    args = p.parse_args(argv)
    args.size = {k: v if getattr(args, k) is None else getattr(args, k) for k, v in SIZE.items()}
    if args.quick:
        args.size.update({k: v for k, v in QUICK.items() if getattr(args, k) is None})
    for k, v in (QUICK_GRIDS if args.quick else GRIDS).items():
        setattr(args, k, v if getattr(args, k) is None else getattr(args, k))
    for name in ("imgsz", "aux_imgsz", "paper_rec_imgsz", "paper_imgsz"):
        value = args.size["imgsz"] if name == "imgsz" else getattr(args, name)
        if value < 32 or value % 32:
            p.error(f"--{name.replace('_', '-')} must be a positive multiple of 32, got {value}")
    checks = [("batch", [args.size["batch"]]), ("channels", args.size["channels"]), ("layers", args.size["layers"])]
    checks += [(n, getattr(args, n)) for n in ("columns", "rss_columns", "grad_columns", "aux_batch", "aux_reps")]
    for name, values in checks + [(n, [getattr(args, n)]) for n in ("paper_batch",)]:
        for v in values if isinstance(values, list) else [values]:
            if v < 1:
                p.error(f"--{name.replace('_', '-')} must be >= 1, got {v}")
    if args.aux <= 0:
        p.error(f"--aux must be > 0 (the supervised variants' weight), got {args.aux}")
    args.out = args.out or (Path(tempfile.mkdtemp(prefix="yolo_revcol_memory_")) if args.quick else Path("results"))
    return args


def main(argv: Sequence[str] | None = None) -> int:
    """Run the chosen sections (``memory`` first, then ``aux``, then ``paper``)."""
    args = parse_args(argv)
    offline()
    if args.size["threads"]:
        torch.set_num_threads(args.size["threads"])
    if "memory" in args.sections:
        memory_report(args)
    if "aux" in args.sections:
        aux_report(args)
    if "paper" in args.sections:
        paper_report(args)
    return 0


if __name__ == "__main__":
    import sys

    sys.exit(main())
