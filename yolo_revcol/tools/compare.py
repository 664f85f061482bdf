"""Compare RevCol YOLO models with stock Ultralytics models: layers, parameters and GFLOPs per scale.

No weights are needed: both sides are built from their YAMLs (stock ones from Ultralytics' own ``cfg/models``), each
with the model class of its task (detect, segment, pose, obb, classify), as Ultralytics builds them.

Examples:
    yolo-revcol compare                      # YOLOv8 n/s/m/l/x vs yolov8-revcol, writes results/compare_yolov8.*
    yolo-revcol compare --scales n s --imgsz 640 --readme README.md
    yolo-revcol compare --families all --readme README.md   # every family; README's yolov8 and per-task blocks
    yolo-revcol compare --paper --readme README.md        # the paper's RevCol-T/S/B YAMLs vs YOLOv8 m/l/x
    yolo-revcol compare --breakdown --scales n s --readme docs/design.md   # params and GFLOPs per part
    yolo-revcol compare --model my-yolov8n-revcol.yaml   # your own YAML against the stock model of its scale
"""

from __future__ import annotations

import argparse
import functools
import sys
from dataclasses import dataclass
from pathlib import Path

from ..paths import cfg_dir
from .toolbox import (
    add_report_arguments,
    build_model,
    command_line,
    drop_training_heads,
    figure,
    inference_size,
    machine,
    markdown_table,
    replace_blocks,
    write_result,
)

SCALES = "nsmlx"
TARGET = 0.80  # RevCol / stock, for parameters and for GFLOPs
CLS_IMGSZ = 224  # classification GFLOPs are reported at 224, as Ultralytics reports them for its -cls models
# family -> (stock YAML, RevCol YAML); the task follows from each YAML's head, as Ultralytics decides it
PAIRS = {
    "yolov8": ("yolov8{s}.yaml", "yolov8{s}-revcol.yaml"),
    "yolov8-seg": ("yolov8{s}-seg.yaml", "yolov8{s}-revcol-seg.yaml"),
    "yolov8-pose": ("yolov8{s}-pose.yaml", "yolov8{s}-revcol-pose.yaml"),
    "yolov8-obb": ("yolov8{s}-obb.yaml", "yolov8{s}-revcol-obb.yaml"),
    "yolov8-cls": ("yolov8{s}-cls.yaml", "yolov8{s}-revcol-cls.yaml"),
    "yolo11": ("yolo11{s}.yaml", "yolo11{s}-revcol.yaml"),
}
# The paper's backbones (cfg/revcol-{t,s,b}-yolov8.yaml, not scaled) against the stock YOLOv8 scale nearest in size
PAPER_PAIRS = (
    ("yolov8m.yaml", "revcol-t-yolov8.yaml"),
    ("yolov8l.yaml", "revcol-s-yolov8.yaml"),
    ("yolov8x.yaml", "revcol-b-yolov8.yaml"),
)
PAPER_BLOCK = "compare-paper"
README_BLOCKS = {"yolov8": "compare-yolov8"}  # the other families share one per-task block
TASKS_BLOCK = "compare-tasks"


@dataclass
class Summary:
    """Size of one model."""

    name: str
    layers: int
    params: int
    gflops: float
    scale: str = ""
    task: str = "detect"
    imgsz: int = 640  # image size of the GFLOPs figure
    gradients: int = 0  # parameters that require grad, the "gradients" of Ultralytics' summary line
    train_only: int = 0  # parameters of training-only auxiliary heads (RevCol ``aux``), not in ``params``


def summarize(yaml: str | Path, name: str, imgsz: int) -> Summary:
    """Build ``yaml`` (no weights) and measure its inference model as ``model.info()`` does, named ``name``: leaf
    modules, parameters, gradients and GFLOPs at ``imgsz`` (``CLS_IMGSZ`` for classification); the parameters of
    training-only heads apart (``train_only``)."""
    from ultralytics.nn.tasks import guess_model_scale

    model = build_model(yaml)
    task = model.task
    imgsz = CLS_IMGSZ if task == "classify" else imgsz
    params, flops, train_only = inference_size(model, imgsz)
    layers = sum(1 for m in model.modules() if not m._modules)  # leaf modules, as Ultralytics counts layers
    gradients = sum(p.numel() for p in model.parameters() if p.requires_grad)
    return Summary(name, layers, params, flops, guess_model_scale(yaml), task, imgsz, gradients, train_only)


@functools.cache
def layer_sizes(yaml: str, imgsz: int = 640) -> tuple[list[tuple[str, int, float]], int]:
    """Class name, parameters and GFLOPs at ``imgsz`` of each top-level layer of ``yaml``'s model, and how many of
    the layers its ``backbone`` lists. GFLOPs count convolutions and matrix products (torch's ``FlopCounterMode``),
    within about 1 % of ``model.info()``'s."""
    import torch
    from torch.utils.flop_counter import FlopCounterMode
    from ultralytics.nn.tasks import yaml_model_load

    model = build_model(yaml)
    with FlopCounterMode(display=False) as counter, torch.no_grad():
        model.eval()(torch.zeros(1, 3, imgsz, imgsz))
    counts = counter.get_flop_counts()
    prefix = f"{type(model).__name__}.model."
    layers = [
        (type(m).__name__, sum(p.numel() for p in m.parameters()), sum(counts.get(f"{prefix}{i}", {}).values()) / 1e9)
        for i, m in enumerate(model.model)
    ]
    return layers, len(yaml_model_load(yaml)["backbone"])


LEVEL_NAMES = ("P2/4", "P3/8", "P4/16", "P5/32")
BREAKDOWN_BLOCK = "breakdown"


def part_of(name: str, model) -> str:
    """The part of a detection model a parameter or module name belongs to, for ``breakdown``.

    RevCol: ``stem``, ``column k Pn: down|up|blocks`` and ``column k: alphas`` (k from 1); stock backbone layers by
    index and class; then ``SPPF``, ``neck`` (every layer between SPPF and the head) and ``head``.
    """
    parts = name.split(".")
    i = int(parts[1])
    layer = model.model[i]
    if type(layer).__name__ == "RevCol":
        if parts[2] == "stem":
            return "stem"
        if parts[2] == "columns":
            k, kind = int(parts[3]), parts[4]
            if kind == "alphas":  # a few hundred per-channel scales: one row per column
                return f"column {k + 1}: alphas"
            return f"column {k + 1} {LEVEL_NAMES[int(parts[5])]}: {parts[6]}"
        return "RevCol (other)"
    kinds = [type(m).__name__ for m in model.model]
    sppf = kinds.index("SPPF") if "SPPF" in kinds else len(kinds)
    if i == len(kinds) - 1:
        return "head"
    if i > sppf:
        return "neck"
    return "SPPF" if i == sppf else f"layer {i} {kinds[i]}"


def breakdown(yaml: str | Path, imgsz: int = 640) -> list[tuple[str, int, float]]:
    """(part, parameters, GFLOPs at ``imgsz``) of every part of ``yaml``'s model (``part_of``), in model order,
    counted as ``layer_sizes`` counts; the rows add up to the model's total."""
    import torch
    from torch.utils.flop_counter import FlopCounterMode

    model = build_model(yaml)
    drop_training_heads(model)  # the inference model
    rows: dict[str, list] = {}
    for name, p in model.model.named_parameters(prefix="model"):
        rows.setdefault(part_of(name, model), [0, 0.0])[0] += p.numel()
    leaves = {name: m for name, m in model.model.named_modules(prefix="model") if not m._modules}
    with FlopCounterMode(display=False) as counter, torch.no_grad():
        model.eval()(torch.zeros(1, 3, imgsz, imgsz))
    counts = counter.get_flop_counts()
    prefix = f"{type(model).__name__}."
    for name in leaves:
        flops = sum(counts.get(prefix + name, {}).values())
        if flops:
            rows.setdefault(part_of(name, model), [0, 0.0])[1] += flops / 1e9
    return [(part, n, g) for part, (n, g) in rows.items()]


def breakdown_pairs(scales: str, imgsz: int) -> list[tuple[str, list[tuple[str, int, float]]]]:
    """``breakdown`` of stock YOLOv8 and yolov8-revcol at each scale, in that order."""
    stock, ours = PAIRS["yolov8"]
    out = []
    for s in scales:
        out.append((stock.format(s=s).removesuffix(".yaml"), breakdown(stock.format(s=s), imgsz)))
        out.append((ours.format(s=s).removesuffix(".yaml"), breakdown(cfg_dir() / ours.format(s=s), imgsz)))
    return out


BREAKDOWN_HEADER = ("model", "part", "params (k)", "GFLOPs", "share of params", "share of GFLOPs")
BREAKDOWN_SUMMARY_HEADER = ("model", "backbone params (M)", "backbone GFLOPs", "SPPF + neck + head params (M)")
BREAKDOWN_SUMMARY_HEADER += ("SPPF + neck + head GFLOPs", "total params (M)", "total GFLOPs")


def breakdown_rows(models: list[tuple[str, list[tuple[str, int, float]]]]) -> list[list]:
    """One row per part of every model, with its share of the model's totals."""
    rows = []
    for name, parts in models:
        params, gflops = sum(n for _, n, _ in parts), sum(g for _, _, g in parts)
        rows += [[name, part, f"{n / 1e3:.1f}", f"{g:.3f}", f"{n / params:.1%}", f"{g / gflops:.1%}"]
                 for part, n, g in parts]  # fmt: skip
    return rows


def breakdown_summary(models: list[tuple[str, list[tuple[str, int, float]]]]) -> list[list]:
    """One row per model: what the backbone (up to SPPF) costs against what the parts every variant keeps cost."""
    rows = []
    for name, parts in models:
        kept = [(n, g) for part, n, g in parts if part in ("SPPF", "neck", "head")]
        params, gflops = sum(n for _, n, _ in parts), sum(g for _, _, g in parts)
        kp, kg = sum(n for n, _ in kept), sum(g for _, g in kept)
        rows.append([name, f"{(params - kp) / 1e6:.2f}", f"{gflops - kg:.2f}", f"{kp / 1e6:.2f}", f"{kg:.2f}",
                     f"{params / 1e6:.2f}", f"{gflops:.2f}"])  # fmt: skip
    return rows


def write_breakdown(scales: str, imgsz: int, out: Path, readme: Path | None) -> None:
    """Print and write the per-part cost of stock YOLOv8 and yolov8-revcol (``compare_breakdown.{md,csv}``)."""
    models = breakdown_pairs(scales, imgsz)
    note = (
        f"Measured by `{command_line()}` at imgsz {imgsz} (80 classes, as the YAMLs ship) on {machine()}. GFLOPs "
        "count convolutions and matrix products (torch's FlopCounterMode), so totals sit about 1 % below "
        "`model.info()`'s. Backbone: every layer before SPPF (for RevCol: stem, and per column and level its down "
        "fusion, up fusion and blocks, and its alphas); SPPF, neck and head are the same layers in both models, "
        "sized by the maps they read.\n"
    )
    text = (
        note
        + "\n"
        + markdown_table(BREAKDOWN_SUMMARY_HEADER, breakdown_summary(models))
        + "\n"
        + markdown_table(BREAKDOWN_HEADER, breakdown_rows(models))
    )
    csv_rows_ = [[name, part, n, g] for name, parts in models for part, n, g in parts]
    write_result(
        out / "compare_breakdown",
        text,
        ("model", "part", "params", "gflops"),
        csv_rows_,
        readme=readme,
        block=BREAKDOWN_BLOCK,
    )


TASK_SUFFIX = {"detect": "", "segment": "-seg", "pose": "-pose", "obb": "-obb", "classify": "-cls"}


def stock_partner(yaml: str | Path) -> str:
    """The stock Ultralytics YAML a model YAML is measured against: same family (YOLO11 or YOLOv8), task and scale.

    The scale is the one Ultralytics builds: the letter in the file name, else the YAML's first scale (``n`` when it
    has none).
    """
    from ultralytics.nn.tasks import guess_model_scale, guess_model_task, yaml_model_load

    d = yaml_model_load(yaml)
    scale = guess_model_scale(yaml) or next(iter(d.get("scales") or {"n": None}))
    family = "yolo11" if "yolo11" in Path(yaml).name or "C3k2" in str(d.get("head")) else "yolov8"
    return f"{family}{scale}{TASK_SUFFIX[guess_model_task(d)]}.yaml"


def write_model(yaml: str, imgsz: int) -> None:
    """Print one model YAML (a path or a name Ultralytics resolves) against its ``stock_partner``."""
    from ..integration.register import register

    register()  # before a name is resolved
    stock = stock_partner(yaml)
    ours = summarize(yaml, Path(yaml).stem, imgsz)
    theirs = summarize(stock, Path(stock).stem, imgsz)
    ours.scale = theirs.scale = theirs.scale or ours.scale
    print(f"\n{yaml} against {stock} (no weights; imgsz {theirs.imgsz})\n")
    print(markdown_table(HEADER, table_rows([(theirs, ours)])))


def why_segment() -> str:
    """Why the segmentation family misses the target: the stock Segment head's share of yolov8n-seg's compute."""
    layers, _ = layer_sizes("yolov8n-seg.yaml")
    head, total = layers[-1][2], sum(g for _, _, g in layers)
    return (
        "the Segment head (box, class and mask-coefficient branches on P3-P5 and the mask prototype branch at 1/4 "
        f"resolution) is kept unchanged and is most of the compute at small scales ({head:.1f} of the {total:.1f} "
        "GFLOPs yolov8n-seg spends in convolutions and matrix products), so a smaller backbone moves the total less"
    )


def why_yolo11() -> str:
    """Why the YOLO11 family misses the target: how YOLO11's parameters split between the backbone and the rest."""
    shares = {}
    for scale in "mx":
        layers, backbone = layer_sizes(f"yolo11{scale}.yaml")
        kinds, params = [k for k, _, _ in layers], [n for _, n, _ in layers]
        replaced = sum(params[: kinds.index("SPPF")])  # the yolo11-revcol YAML keeps SPPF and C2PSA
        shares[scale] = sum(params[backbone:]), sum(params), replaced
    (neck_m, total_m, _), (neck_x, total_x, replaced_x) = shares["m"], shares["x"]
    return (
        f"YOLO11's neck and head are kept unchanged and hold {neck_m / total_m:.0%} of yolo11m's and "
        f"{neck_x / total_x:.0%} of yolo11x's parameters ({neck_x / 1e6:.1f}M of {total_x / 1e6:.1f}M), while the "
        f"stock layers the RevCol row replaces (up to SPPF: C3k2 blocks, {replaced_x / 1e6:.1f}M at x) are already "
        "light; the yolov8-revcol row is sized against YOLOv8's heavier backbone"
    )


# Why a family misses the target where it does: facts about the stock models, which do not depend on the RevCol row,
# computed from their layers; printed under the per-task table for families that miss.
WHY = {"yolov8-seg": why_segment, "yolo11": why_yolo11}


def compare(family: str = "yolov8", scales: str = SCALES, imgsz: int = 640) -> list[tuple[Summary, Summary]]:
    """Return (stock, RevCol) summaries for each scale of a family (a key of ``PAIRS``)."""
    stock_yaml, revcol_yaml = PAIRS[family]
    return [
        (
            summarize(stock_yaml.format(s=s), stock_yaml.format(s=s).removesuffix(".yaml"), imgsz),
            summarize(cfg_dir() / revcol_yaml.format(s=s), revcol_yaml.format(s=s).removesuffix(".yaml"), imgsz),
        )
        for s in scales
    ]


HEADER = ("scale", "model", "layers", "params (M)", "GFLOPs", "params ratio", "GFLOPs ratio")


def write_paper(imgsz: int, out: Path, readme: Path | None) -> None:
    """Compare the paper's T/S/B YAMLs with the stock YOLOv8 nearest in size (``PAPER_PAIRS``): print, write
    ``compare_paper.{md,csv}`` and the README block; rows are labelled T, S and B, no target applies."""
    pairs = []
    for stock, ours in PAPER_PAIRS:
        pair = (
            summarize(stock, stock.removesuffix(".yaml"), imgsz),
            summarize(cfg_dir() / ours, ours.removesuffix(".yaml"), imgsz),
        )
        pair[0].scale = pair[1].scale = ours.split("-")[1].upper()
        pairs.append(pair)
    text = f"Measured by `{command_line()}` at imgsz {imgsz} on {machine()}.\n\n" + markdown_table(
        ("backbone", *HEADER[1:]), table_rows(pairs)
    )
    write_result(
        out / "compare_paper", text, CSV_HEADER, csv_rows(pairs, target=False), readme=readme, block=PAPER_BLOCK
    )


def table_rows(pairs: list[tuple[Summary, Summary]]) -> list[list]:
    """One stock row and one RevCol row (with ratios) per scale."""
    rows = []
    for stock, ours in pairs:
        scale = stock.scale
        p, g = ours.params / stock.params, ours.gflops / stock.gflops
        rows.append([scale, stock.name, stock.layers, f"{stock.params / 1e6:.2f}", f"{stock.gflops:.1f}", "", ""])
        name = ours.name + (f" (+{ours.train_only / 1e6:.2f}M training-only)" if ours.train_only else "")
        rows.append(
            [scale, name, ours.layers, f"{ours.params / 1e6:.2f}", f"{ours.gflops:.1f}", f"{p:.3f}", f"{g:.3f}"]
        )
    return rows


CSV_HEADER = ("scale", "model", "layers", "params", "gflops", "params_ratio", "gflops_ratio", "target_met")
CSV_HEADER += ("train_only_params",)


def csv_rows(pairs: list[tuple[Summary, Summary]], target: bool = True) -> list[list]:
    """``table_rows`` at full precision: parameter counts, unrounded GFLOPs and ratios, training-only parameters; with
    ``target``, whether both ratios are within ``TARGET``."""
    rows = []
    for stock, ours in pairs:
        p, g = ours.params / stock.params, ours.gflops / stock.gflops
        rows.append([stock.scale, stock.name, stock.layers, stock.params, stock.gflops, "", "", "", stock.train_only])
        ok = ("yes" if p <= TARGET and g <= TARGET else "no") if target else ""
        rows.append([ours.scale, ours.name, ours.layers, ours.params, ours.gflops, p, g, ok, ours.train_only])
    return rows


def task_table(results: dict[str, list[tuple[Summary, Summary]]]) -> str:
    """Compact Markdown table of RevCol / stock ratios: one params row and one GFLOPs row per family, scales as columns.

    Ratios above ``TARGET`` are bold; a note under the table names them and, from ``WHY``, says what causes them.
    """
    scales = [s for s in SCALES if any(stock.scale == s for pairs in results.values() for stock, _ in pairs)]
    header = ("RevCol model", "stock model", "task", "ratio", *scales)
    rows, misses = [], []
    for family, pairs in results.items():
        by_scale = {stock.scale: (stock, ours) for stock, ours in pairs}
        stock0, ours0 = pairs[0]
        for i, (key, label) in enumerate((("params", "params"), ("gflops", f"GFLOPs @{stock0.imgsz}"))):
            cells = []
            for s in scales:
                if s not in by_scale:
                    cells.append("")
                    continue
                stock, ours = by_scale[s]
                r = getattr(ours, key) / getattr(stock, key)
                cells.append(f"**{r:.3f}**" if r > TARGET else f"{r:.3f}")
                if r > TARGET:
                    misses.append((family, f"{ours.name} {label.split()[0]} {r:.3f}x"))
            names = (
                (PAIRS[family][1].format(s=""), PAIRS[family][0].format(s=""), stock0.task) if i == 0 else ("", "", "")
            )
            rows.append([*(n.removesuffix(".yaml") for n in names), label, *cells])
    table = markdown_table(header, rows)
    if misses:
        lines = [f"Above {TARGET:.2f}x (bold): " + ", ".join(m for _, m in misses) + "."]
        for family in dict.fromkeys(f for f, _ in misses):
            if family in WHY:
                lines.append(f"{PAIRS[family][1].format(s='').removesuffix('.yaml')}: {WHY[family]()}.")
        table += "\n" + "\n".join(lines) + "\n"
    else:
        table += f"\nEvery ratio is at most {TARGET:.2f}x.\n"
    return table


def plot(pairs: list[tuple[Summary, Summary]], family: str, path: Path) -> None:
    """Side-by-side bars of parameters and GFLOPs per scale."""
    import numpy as np

    scales = [stock.scale for stock, _ in pairs]
    x, w = np.arange(len(pairs)), 0.38
    with figure(path, 1, 2, figsize=(10, 4)) as (fig, axes):
        panels = ((axes[0], "params", "parameters (M)"), (axes[1], "gflops", f"GFLOPs at {pairs[0][0].imgsz}"))
        for ax, key, label in panels:
            scale = 1e6 if key == "params" else 1.0
            stock = [getattr(s, key) / scale for s, _ in pairs]
            ours = [getattr(o, key) / scale for _, o in pairs]
            ax.bar(x - w / 2, stock, w, label=f"{family} (stock)")
            bars = ax.bar(x + w / 2, ours, w, label=PAIRS[family][1].format(s="").removesuffix(".yaml"))
            for bar, s, o in zip(bars, stock, ours):
                top = (bar.get_x() + bar.get_width() / 2, bar.get_height())
                ax.annotate(f"{o / s:.2f}x", top, ha="center", va="bottom", fontsize=8)
            ax.set_xticks(x, scales)
            ax.set_xlabel("scale")
            ax.set_ylabel(label)
            ax.legend()
        fig.suptitle(f"RevCol backbone vs stock {family} (no weights; built from YAML)")


def main(argv: list[str] | None = None) -> int:
    """Run the comparison, print the tables, write Markdown, CSV and PNG per family (and optionally README blocks)."""
    parser = argparse.ArgumentParser(prog="yolo-revcol compare", description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--families",
        nargs="+",
        default=["yolov8"],
        choices=[*PAIRS, "all"],
        metavar="FAMILY",
        help=f"model families to compare: {', '.join(PAIRS)}, or all (default: yolov8)",
    )
    parser.add_argument("--scales", nargs="+", default=list(SCALES), choices=list(SCALES))
    parser.add_argument(
        "--imgsz", type=int, default=640, help=f"image size for GFLOPs (default 640; -cls: {CLS_IMGSZ})"
    )
    add_report_arguments(
        parser, "compare_<family>.*", "the compare-yolov8 and compare-tasks (-paper, breakdown) blocks"
    )
    parser.add_argument(
        "--paper",
        action="store_true",
        help="compare the paper's RevCol-T/S/B YAMLs with stock YOLOv8 m/l/x instead (compare_paper.*, README block "
        f"<!-- {PAPER_BLOCK}:start/end -->)",
    )
    parser.add_argument(
        "--breakdown",
        action="store_true",
        help="params and GFLOPs per part (stem, each column's down/up fusions and blocks per level, SPPF, neck, head) "
        f"of yolov8 and yolov8-revcol at --scales (compare_breakdown.*, block <!-- {BREAKDOWN_BLOCK}:start/end -->)",
    )
    parser.add_argument(
        "--model",
        metavar="YAML",
        help="measure this model YAML (a path, or a name such as yolov8s-revcol.yaml) against the stock model of its "
        "family, task and scale; prints the table and writes nothing",
    )
    args = parser.parse_args(argv)
    if args.model:
        try:
            write_model(args.model, args.imgsz)
        except (FileNotFoundError, ValueError) as e:
            print(f"yolo-revcol compare: {e}", file=sys.stderr)
            return 2
        return 0
    if args.breakdown:
        write_breakdown("".join(args.scales), args.imgsz, args.out, args.readme)
        return 0
    if args.paper:
        write_paper(args.imgsz, args.out, args.readme)
        return 0
    families = list(PAIRS) if "all" in args.families else list(dict.fromkeys(args.families))

    cmd, where = command_line(), machine()
    results = {}
    for family in families:
        pairs = results[family] = compare(family, "".join(args.scales), args.imgsz)
        note = f"Measured by `{cmd}` at imgsz {pairs[0][0].imgsz} on {where}.\n"
        text = note + "\n" + markdown_table(HEADER, table_rows(pairs))
        block = README_BLOCKS.get(family)  # the other families share the per-task block, written below
        write_result(
            args.out / f"compare_{family}",
            text,
            CSV_HEADER,
            csv_rows(pairs),
            plot=lambda path, pairs=pairs, family=family: plot(pairs, family, path),
            readme=args.readme if block else None,
            block=block,
        )

    others = {f: p for f, p in results.items() if f not in README_BLOCKS}
    if others:
        table = task_table(others)
        print(table)
        note = f"Measured by `{cmd}` on {where}; GFLOPs at the imgsz in each row, as `model.info()` reports them.\n"
        if args.readme and replace_blocks(args.readme, {TASKS_BLOCK: note + "\n" + table}):
            print(f"no <!-- {TASKS_BLOCK}:start --> block in {', '.join(map(str, args.readme))}; left it unchanged")
    return 0
