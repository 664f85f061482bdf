"""Compare RevCol YOLO models with stock Ultralytics models: layers, parameters and GFLOPs per scale.

No weights are needed: both sides are built from their YAMLs (stock ones from Ultralytics' own ``cfg/models``), each
with the model class of its task (detect, segment, pose, obb, classify), as Ultralytics builds them.

Examples:
    yolo-revcol compare                      # YOLOv8 n/s/m/l/x vs yolov8-revcol, writes results/compare_yolov8.*
    yolo-revcol compare --scales n s --imgsz 640 --readme README.md
    yolo-revcol compare --family all --readme README.md   # every family; README's yolov8 and per-task blocks
    yolo-revcol compare --paper --readme README.md        # the paper's RevCol-T/S/B YAMLs vs YOLOv8 m/l/x
"""

from __future__ import annotations

import argparse
import contextlib
import logging
from dataclasses import dataclass
from pathlib import Path

from ..paths import cfg_dir
from .report import command_line, machine, markdown_table, replace_block, write_csv

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
# The paper's backbones (cfg/yolov8-revcol-{t,s,b}.yaml, not scaled) against the stock YOLOv8 scale nearest in size
PAPER_PAIRS = (
    ("yolov8m.yaml", "yolov8-revcol-t.yaml"),
    ("yolov8l.yaml", "yolov8-revcol-s.yaml"),
    ("yolov8x.yaml", "yolov8-revcol-b.yaml"),
)
PAPER_BLOCK = "compare-paper"
README_BLOCKS = {"yolov8": "compare-yolov8"}  # the other families share one per-task block
TASKS_BLOCK = "compare-tasks"
# Why a family misses the target where it does: facts about the stock models, which do not depend on the RevCol row
# (from their per-layer parameters and convolution FLOPs); printed under the per-task table for families that miss.
WHY = {
    "yolov8-seg": "the Segment head (box, class and mask-coefficient branches on P3-P5 and the mask prototype branch "
    "at 1/4 resolution) is kept unchanged and is most of the compute at small scales (about 6.9 of yolov8n-seg's "
    "12.1 GFLOPs), so a smaller backbone moves the total less",
    "yolo11": "YOLO11's neck and head are kept unchanged and hold about half of the parameters from scale m up "
    "(28.1M of yolo11x's 57.0M), while the stock layers the RevCol row replaces (C3k2 blocks, 24.1M at x) are already light; "
    "the yolov8-revcol row is sized against YOLOv8's heavier backbone",
}


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


@contextlib.contextmanager
def _quiet_ultralytics():
    """Silence Ultralytics' logger (ClassificationModel prints its summary even with verbose=False)."""
    from ultralytics.utils import LOGGER

    level = LOGGER.level
    LOGGER.setLevel(logging.WARNING)
    try:
        yield
    finally:
        LOGGER.setLevel(level)


def build_model(yaml: str | Path):
    """Build a model from a YAML (no weights) with the model class of its task, as Ultralytics does.

    Args:
        yaml (str | Path): Model YAML, e.g. ``cfg/yolov8n-revcol-seg.yaml`` or a stock name like ``yolov8n-seg.yaml``;
            the scale letter in the file name picks the scale.

    Returns:
        (tuple[torch.nn.Module, str]): The model and its task.
    """
    from ultralytics.nn.tasks import (
        ClassificationModel,
        DetectionModel,
        OBBModel,
        PoseModel,
        SegmentationModel,
        guess_model_task,
        yaml_model_load,
    )

    from ..integration.register import register

    register()
    classes = dict(
        detect=DetectionModel, segment=SegmentationModel, pose=PoseModel, obb=OBBModel, classify=ClassificationModel
    )
    cfg = yaml_model_load(yaml)
    task = guess_model_task(cfg)
    with _quiet_ultralytics():
        return classes[task](cfg, verbose=False), task


def summarize(yaml: str | Path, name: str, imgsz: int) -> Summary:
    """Build a model from a YAML (no weights) and measure it as ``model.info()`` does.

    Args:
        yaml (str | Path): Model YAML (see ``build_model``).
        name (str): Name for the tables.
        imgsz (int): Image size for GFLOPs; classification models use ``CLS_IMGSZ`` instead.

    Returns:
        (Summary): Layers (leaf modules, as Ultralytics counts them), parameters, gradients and GFLOPs of the
            inference model; the parameters of training-only auxiliary heads are counted apart (``train_only``).
    """
    from ultralytics.nn.tasks import guess_model_scale
    from ultralytics.utils.torch_utils import get_flops

    from ..integration.aux import revcol_of

    model, task = build_model(yaml)
    revcol = revcol_of(model)
    train_only = revcol.drop_aux_heads() if revcol is not None else 0  # measure the inference model
    imgsz = CLS_IMGSZ if task == "classify" else imgsz
    layers = sum(1 for m in model.modules() if not m._modules)  # leaf modules, as Ultralytics counts layers
    params = sum(p.numel() for p in model.parameters())
    gradients = sum(p.numel() for p in model.parameters() if p.requires_grad)
    flops = get_flops(model, imgsz)
    return Summary(name, layers, params, flops, guess_model_scale(yaml), task, imgsz, gradients, train_only)


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


HEADER = ("scale", "model", "layers", "params (M)", "GFLOPs", "params ratio", "GFLOPs ratio", f"both <= {TARGET:.2f}x")


def compare_paper(imgsz: int = 640) -> list[tuple[Summary, Summary]]:
    """Return (stock, RevCol) summaries of ``PAPER_PAIRS``: the paper's T/S/B YAMLs and the stock YOLOv8 m/l/x."""
    return [
        (
            summarize(stock, stock.removesuffix(".yaml"), imgsz),
            summarize(cfg_dir() / ours, ours.removesuffix(".yaml"), imgsz),
        )
        for stock, ours in PAPER_PAIRS
    ]


PAPER_HEADER = (
    "RevCol model", "params (M)", "GFLOPs", "stock model", "params (M)", "GFLOPs", "params ratio", "GFLOPs ratio"
)  # fmt: skip


def paper_rows(pairs: list[tuple[Summary, Summary]]) -> list[list]:
    """One row per pair: RevCol model, stock model, and RevCol / stock ratios."""
    return [
        [ours.name, f"{ours.params / 1e6:.2f}", f"{ours.gflops:.1f}", stock.name, f"{stock.params / 1e6:.2f}",
         f"{stock.gflops:.1f}", f"{ours.params / stock.params:.2f}", f"{ours.gflops / stock.gflops:.2f}"]
        for stock, ours in pairs
    ]  # fmt: skip


def write_paper(imgsz: int, out: Path, readme: Path | None) -> None:
    """Compare the paper's T/S/B YAMLs with stock YOLOv8: print, write ``compare_paper.{md,csv}``, fill the README block."""
    rows = paper_rows(compare_paper(imgsz))
    table = markdown_table(PAPER_HEADER, rows)
    note = f"Measured by `{command_line()}` at imgsz {imgsz} on {machine()}.\n"
    print(f"{table}\n{note}")
    out.mkdir(parents=True, exist_ok=True)
    (out / "compare_paper.md").write_text(note + "\n" + table)
    write_csv(out / "compare_paper.csv", PAPER_HEADER, rows)
    print(f"wrote {out / 'compare_paper.md'}, {out / 'compare_paper.csv'}")
    if readme and not replace_block(readme, PAPER_BLOCK, note + "\n" + table):
        print(f"no <!-- {PAPER_BLOCK}:start --> block in {readme}; left it unchanged")


def table_rows(pairs: list[tuple[Summary, Summary]]) -> list[list]:
    """One stock row and one RevCol row (with ratios) per scale."""
    rows = []
    for stock, ours in pairs:
        scale = stock.scale
        p, g = ours.params / stock.params, ours.gflops / stock.gflops
        rows.append([scale, stock.name, stock.layers, f"{stock.params / 1e6:.2f}", f"{stock.gflops:.1f}", "", "", ""])
        ok = "yes" if p <= TARGET and g <= TARGET else "no"
        name = ours.name + (f" (+{ours.train_only / 1e6:.2f}M training-only)" if ours.train_only else "")
        rows.append([scale, name, ours.layers, f"{ours.params / 1e6:.2f}", f"{ours.gflops:.1f}", f"{p:.3f}", f"{g:.3f}", ok])
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
            names = (PAIRS[family][1].format(s=""), PAIRS[family][0].format(s=""), stock0.task) if i == 0 else ("", "", "")
            rows.append([*(n.removesuffix(".yaml") for n in names), label, *cells])
    table = markdown_table(header, rows)
    if misses:
        lines = [f"Above {TARGET:.2f}x (bold): " + ", ".join(m for _, m in misses) + "."]
        for family in dict.fromkeys(f for f, _ in misses):
            if family in WHY:
                lines.append(f"{PAIRS[family][1].format(s='').removesuffix('.yaml')}: {WHY[family]}.")
        table += "\n" + "\n".join(lines) + "\n"
    else:
        table += f"\nEvery ratio is at most {TARGET:.2f}x.\n"
    return table


def plot(pairs: list[tuple[Summary, Summary]], family: str, path: Path) -> None:
    """Side-by-side bars of parameters and GFLOPs per scale."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import numpy as np

    scales = [stock.scale for stock, _ in pairs]
    x, w = np.arange(len(pairs)), 0.38
    fig, axes = plt.subplots(1, 2, figsize=(10, 4))
    for ax, key, label in ((axes[0], "params", "parameters (M)"), (axes[1], "gflops", f"GFLOPs at {pairs[0][0].imgsz}")):
        scale = 1e6 if key == "params" else 1.0
        stock = [getattr(s, key) / scale for s, _ in pairs]
        ours = [getattr(o, key) / scale for _, o in pairs]
        ax.bar(x - w / 2, stock, w, label=f"{family} (stock)")
        bars = ax.bar(x + w / 2, ours, w, label=PAIRS[family][1].format(s="").removesuffix(".yaml"))
        for bar, s, o in zip(bars, stock, ours):
            ax.annotate(f"{o / s:.2f}x", (bar.get_x() + bar.get_width() / 2, bar.get_height()), ha="center", va="bottom", fontsize=8)
        ax.set_xticks(x, scales)
        ax.set_xlabel("scale")
        ax.set_ylabel(label)
        ax.legend()
    fig.suptitle(f"RevCol backbone vs stock {family} (no weights; built from YAML)")
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=120)
    plt.close(fig)


def main(argv: list[str] | None = None) -> int:
    """Run the comparison, print the tables, write Markdown, CSV and PNG per family (and optionally README blocks)."""
    parser = argparse.ArgumentParser(prog="yolo-revcol compare", description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--family",
        "--families",
        nargs="+",
        default=["yolov8"],
        choices=[*PAIRS, "all"],
        metavar="FAMILY",
        help=f"model families to compare: {', '.join(PAIRS)}, or all (default: yolov8)",
    )
    parser.add_argument("--scales", nargs="+", default=list(SCALES), choices=list(SCALES))
    parser.add_argument("--imgsz", type=int, default=640, help=f"image size for GFLOPs (default 640; -cls: {CLS_IMGSZ})")
    parser.add_argument("--out", type=Path, default=Path("results"), help="folder for compare_<family>.md/.csv/.png")
    parser.add_argument(
        "--readme",
        type=Path,
        help="also replace this file's <!-- compare-yolov8:start/end --> block (yolov8) and <!-- compare-tasks:start/end --> "
        "block (every other family compared)",
    )
    parser.add_argument(
        "--paper",
        action="store_true",
        help="compare the paper's RevCol-T/S/B YAMLs with stock YOLOv8 m/l/x instead (compare_paper.*, README block "
        f"<!-- {PAPER_BLOCK}:start/end -->)",
    )
    args = parser.parse_args(argv)
    if args.paper:
        write_paper(args.imgsz, args.out, args.readme)
        return 0
    families = list(PAIRS) if "all" in args.family else list(dict.fromkeys(args.family))

    cmd, where = command_line(), machine()
    results = {}
    for family in families:
        pairs = results[family] = compare(family, "".join(args.scales), args.imgsz)
        rows = table_rows(pairs)
        table = markdown_table(HEADER, rows)
        family_note = f"Measured by `{cmd}` at imgsz {pairs[0][0].imgsz} on {where}.\n"
        print(f"{family}\n{table}\n{family_note}")
        stem = args.out / f"compare_{family}"
        stem.parent.mkdir(parents=True, exist_ok=True)
        stem.with_suffix(".md").write_text(family_note + "\n" + table)
        write_csv(stem.with_suffix(".csv"), HEADER, rows)
        plot(pairs, family, stem.with_suffix(".png"))
        print(f"wrote {stem}.md, {stem}.csv, {stem}.png")
        block = README_BLOCKS.get(family)
        if args.readme and block and not replace_block(args.readme, block, family_note + "\n" + table):
            print(f"no <!-- {block}:start --> block in {args.readme}; left it unchanged")

    others = {f: p for f, p in results.items() if f not in README_BLOCKS}
    if others:
        table = task_table(others)
        print(table)
        note = f"Measured by `{cmd}` on {where}; GFLOPs at the imgsz in each row, as `model.info()` reports them.\n"
        if args.readme and not replace_block(args.readme, TASKS_BLOCK, note + "\n" + table):
            print(f"no <!-- {TASKS_BLOCK}:start --> block in {args.readme}; left it unchanged")
    return 0
