"""Section ``paper`` (opt-in): the paper's RevCol-T/S/B backbones, as their YAMLs build them.

Two measurements, written to ``paper_memory.md`` (both tables), ``paper_memory.csv`` (the reverse pass),
``paper_memory_step.csv`` (the training step) and the README's ``<!-- paper-memory -->`` block:

* the reverse pass at 4, 8 and 16 columns (T, S, B): division-only reconstruction error at ``checkpoint_every``
  0/2/4 (what a reverse pass without the lost-bit stacks rebuilds), and the shipped pass at the class default and
  at an explicit ``checkpoint_every: 2`` (its reconstruction error and its gradients against plain backprop), with
  init and trained-like weights, in float32 and under bf16 autocast;
* one YOLO training step (Ultralytics' loss, then backward) of the T/S/B detection models against the stock YOLOv8
  whose neck and head they use: bytes saved for backward and step time, reversible at the default and at
  ``checkpoint_every: 2``, and plain backprop.

Run it with ``yolo-revcol memory --sections paper`` (options ``--paper-models``, ``--paper-step-models``,
``--paper-rec-imgsz``, ``--paper-imgsz``, ``--paper-batch``, ``--paper-reps``).
"""

from __future__ import annotations

import statistics
from collections.abc import Sequence
from dataclasses import replace
from pathlib import Path

import torch
import yaml

from ...nn import RevCol
from ...paths import cfg_dir
from ..bench_speed import PAPER_STOCK, PAPER_YAML, build, interleave
from ..report import command_line, fmt, machine, markdown_table, write_csv, write_result
from .aux import batch_of, saved_mib, step_s
from .common import BenchConfig, set_trained_like
from .reconstruction import division_errors, gradient_check

# The paper's backbones: (name, YAML, the stock YOLOv8 whose neck and head the YAML writes out), as speed pairs them.
PAPER_MODELS = {p: (f"RevCol-{p.upper()}", PAPER_YAML.format(p=p), stock) for p, stock in PAPER_STOCK.items()}
REC_HEADER = ("backbone", "columns", "weights", "precision", "division only, K=0", "K=2", "K=4")
REC_HEADER += ("default pass: reconstruction", "default pass: gradients", "K=2 pass: reconstruction", "gradients")
EXPLICIT_K = 2  # the explicit setting measured beside the default (the T/S/B YAMLs' value before the exact pass)
REC_CSV = ("backbone", "columns", "weights", "dtype", "setting", "metric", "value")
STEP_HEADER = ("model", "training path", "saved for backward (MiB)", "/ stock", "step (ms)", "/ stock")
STEP_CSV = ("model", "path", "saved_mib", "saved_ratio", "step_ms", "step_ratio")


def revcol_options(letter: str) -> tuple[list, dict]:
    """The RevCol row of a paper YAML: its positional arguments (channels, layers, columns) and its options."""
    row = yaml.safe_load((cfg_dir() / PAPER_MODELS[letter][1]).read_text())["backbone"][0]
    args = row[3]
    return args[:3], dict(args[3]) if len(args) > 3 else {}


def paper_backbone(letter: str, every: int | str = "auto", seed: int = 0) -> RevCol:
    """The YAML's RevCol backbone (3 input channels), drop path 0 (checks replay no RNG), at ``every``."""
    (channels, layers, columns), options = revcol_options(letter)
    options = {k: v for k, v in options.items() if k not in ("weights", "drop_path", "checkpoint_every")}
    torch.manual_seed(seed)
    return RevCol(3, channels, layers, columns, checkpoint_every=every, **options).train()


def measure_paper_reconstruction(
    letter: str, cfg: BenchConfig, imgsz: int, weights: str, dtype: str
) -> dict[tuple[str, str], float | None]:
    """Division-only and shipped-pass errors of one paper backbone.

    Args:
        letter (str): ``t``, ``s`` or ``b``.
        cfg (BenchConfig): Trained-like settings and ``rec_every``; ``seed``.
        imgsz (int): Input side (batch 1).
        weights (str): ``default`` (init) or ``trained-like``.
        dtype (str): ``float32`` or ``bf16-autocast``.

    Returns:
        (dict[tuple[str, str], float | None]): (setting, metric) -> value: ``("K=<k>", "division")`` worst-column
            error per ``cfg.rec_every`` value; ``("default" | "K=2", "reconstruction" | "gradients")``.
    """
    img = torch.randn(1, 3, imgsz, imgsz, generator=torch.Generator().manual_seed(cfg.seed + 1))
    out: dict[tuple[str, str], float | None] = {}
    for setting, every in (("default", "auto"), (f"K={EXPLICIT_K}", EXPLICIT_K)):
        model = paper_backbone(letter, every, cfg.seed)
        if weights == "trained-like":
            set_trained_like(model, cfg, cfg.seed + 2)
        check = gradient_check(model, img, dtype, cfg.seed + 3)
        out[(setting, "reconstruction")], out[(setting, "gradients")] = check.reconstruction, check.total
        if setting == "default":
            for k, errors in division_errors(model, img, dtype, cfg.rec_every).items():
                out[(f"K={k}", "division")] = max(errors)
    return out


def measure_paper_step(letter: str, imgsz: int, batch: int, reps: int) -> list[list]:
    """One training step of a paper YOLO and its stock partner: saved bytes and interleaved step times.

    Args:
        letter (str): ``t``, ``s`` or ``b``.
        imgsz (int): Image side.
        batch (int): Batch size.
        reps (int): Timed steps per variant (after one untimed step each), interleaved.

    Returns:
        (list[list]): Rows in ``STEP_CSV`` order, stock first, unrounded.
    """
    _, revcol_yaml, stock_yaml = PAPER_MODELS[letter]
    torch.manual_seed(0)
    stock, revcol = build(stock_yaml, train=True), build(str(cfg_dir() / revcol_yaml), train=True)
    layer = revcol.model[0]
    shipped = layer.reversible, layer.checkpoint_every
    variants = {
        "stock": (stock, None, None),
        "reversible, default": (revcol, True, "auto"),
        f"reversible, checkpoint_every {EXPLICIT_K}": (revcol, True, EXPLICIT_K),
        "plain backprop": (revcol, False, "auto"),
    }
    data = batch_of(batch, imgsz)

    def configured(model, reversible, every):
        if reversible is not None:
            layer.reversible, layer.checkpoint_every = reversible, every
        return model

    saved = {k: saved_mib(configured(*v), data) for k, v in variants.items()}
    steps = {k: (lambda v=v: step_s(configured(*v), data)) for k, v in variants.items()}
    ms = interleave(steps, reps, 1, 1, torch.get_num_threads())
    layer.reversible, layer.checkpoint_every = shipped
    base_ms = statistics.median(ms["stock"])
    rows = []
    for k in variants:
        model = Path(stock_yaml).stem if k == "stock" else Path(revcol_yaml).stem
        t = statistics.median(ms[k])
        rows.append([model, k, saved[k], saved[k] / saved["stock"], t, t / base_ms])
    return rows


def paper_section(
    out: Path,
    letters: Sequence[str] = ("t", "s", "b"),
    cfg: BenchConfig | None = None,
    rec_imgsz: int = 64,
    imgsz: int = 320,
    batch: int = 2,
    reps: int = 3,
    readme: Path | None = None,
    step_letters: Sequence[str] = ("t",),
) -> tuple[list[list], list[list]]:
    """Measure the paper backbones, write ``<out>/paper_memory.{md,csv}`` and refresh the README block.

    Args:
        out (Path): Output folder.
        letters (Sequence[str]): Backbones of the reconstruction table.
        cfg (BenchConfig | None): Trained-like settings, ``rec_every``, seed (defaults: ``BenchConfig()``).
        rec_imgsz (int): Input side of the reconstruction checks (batch 1).
        imgsz (int): Image side of the training step.
        batch (int): Batch size of the training step.
        reps (int): Timed training steps per variant.
        readme (Path | None): README whose ``<!-- paper-memory:start/end -->`` block is replaced.
        step_letters (Sequence[str]): Backbones of the training-step table.

    Returns:
        (tuple[list[list], list[list]]): The reconstruction CSV rows and the training-step rows.
    """
    cfg = replace(cfg or BenchConfig(), rec_every=[0, 2, 4])
    rec_rows, rec_csv = [], []
    for letter in letters:
        name = PAPER_MODELS[letter][0]
        columns = revcol_options(letter)[0][2]
        for weights in ("default", "trained-like"):
            for dtype in ("float32", "bf16-autocast"):
                e = measure_paper_reconstruction(letter, cfg, rec_imgsz, weights, dtype)
                for (setting, metric), v in e.items():
                    rec_csv.append([name, columns, weights, dtype, setting, metric, v])
                division = [fmt(e.get((f"K={k}", "division")), ".1e", "-") for k in (0, 2, 4)]
                settings = ("default", f"K={EXPLICIT_K}")
                passes = [fmt(e[(s, m)], ".1e") for s in settings for m in ("reconstruction", "gradients")]
                label = "init" if weights == "default" else weights
                rec_rows.append([name, columns, label, dtype.replace("-", " "), *division, *passes])
                print(f"paper  {name} {weights:12s} {dtype:13s}: " + " ".join(f"{c}" for c in (*division, *passes)))
    step_rows = [row for letter in step_letters for row in measure_paper_step(letter, imgsz, batch, reps)]
    note = (
        f"Measured by `{command_line()}` on {machine()}.\n"
        f"Reverse pass: each YAML's RevCol row (drop path 0, batch 1 at {rec_imgsz} px); relative errors, worst "
        "column and level for division only (`reconstruct_states`, restarting from kept columns at K), the pass's "
        "own `reconstruction_error` and the error of all parameter gradients against plain backprop for the shipped "
        f"pass at the class default and at `checkpoint_every: {EXPLICIT_K}`; trained-like weights set every |alpha| "
        f"in [{cfg.alpha_range[0]}, {cfg.alpha_range[1]}] and layer scales about {cfg.gamma} (the init's layer "
        f"scale 1e-6 is the easy case). Training step: batch {batch} at {imgsz} px, random images with three "
        f"boxes each, Ultralytics' loss then backward; saved bytes counted once per storage, parameters excluded; "
        f"step times are medians of {reps} interleaved steps in one run.\n"
    )
    steps = [[m, p, f"{s:.1f}", f"{sr:.3f}", f"{t:.0f}", f"{tr:.3f}"] for m, p, s, sr, t, tr in step_rows]
    tables = [markdown_table(REC_HEADER, rec_rows)] + ([markdown_table(STEP_HEADER, steps)] if steps else [])
    text = "\n".join([note, *tables])
    write_result(out / "paper_memory", text, REC_CSV, rec_csv, readme=readme, block="paper-memory")
    write_csv(out / "paper_memory_step.csv", STEP_CSV, step_rows)
    print(f"wrote {out / 'paper_memory_step.csv'}")
    return rec_csv, step_rows
