"""Compare RevCol YOLO models with stock Ultralytics models: layers, parameters and GFLOPs per scale.

No weights are needed: both sides are built from their YAMLs (stock ones from Ultralytics' own ``cfg/models``).

Examples:
    yolo-revcol compare                      # YOLOv8 n/s/m/l/x vs yolov8-revcol, writes results/compare.*
    yolo-revcol compare --scales n s --imgsz 640 --readme README.md
"""

from __future__ import annotations

import argparse
from dataclasses import dataclass
from pathlib import Path

from ..paths import cfg_dir
from .report import command_line, machine, markdown_table, replace_block, write_csv

SCALES = "nsmlx"
TARGET = 0.80  # RevCol / stock, for parameters and for GFLOPs
PAIRS = {"yolov8": ("yolov8{s}.yaml", "yolov8{s}-revcol.yaml")}  # family -> (stock YAML, RevCol YAML)


@dataclass
class Summary:
    """Size of one model."""

    name: str
    layers: int
    params: int
    gflops: float


def summarize(yaml: str | Path, name: str, imgsz: int) -> Summary:
    """Build a detection model from a YAML (no weights) and measure it as ``model.info()`` does."""
    from ultralytics.nn.tasks import DetectionModel
    from ultralytics.utils.torch_utils import get_flops

    from ..integration.register import register

    register()
    model = DetectionModel(str(yaml), verbose=False)
    layers = sum(1 for m in model.modules() if not m._modules)  # leaf modules, as Ultralytics counts layers
    return Summary(name, layers, sum(p.numel() for p in model.parameters()), get_flops(model, imgsz))


def compare(family: str = "yolov8", scales: str = SCALES, imgsz: int = 640) -> list[tuple[Summary, Summary]]:
    """Return (stock, RevCol) summaries for each scale."""
    stock_yaml, revcol_yaml = PAIRS[family]
    return [
        (
            summarize(stock_yaml.format(s=s), stock_yaml.format(s=s).removesuffix(".yaml"), imgsz),
            summarize(cfg_dir() / revcol_yaml.format(s=s), revcol_yaml.format(s=s).removesuffix(".yaml"), imgsz),
        )
        for s in scales
    ]


HEADER = ("scale", "model", "layers", "params (M)", "GFLOPs", "params ratio", "GFLOPs ratio", f"both <= {TARGET:.2f}x")


def table_rows(pairs: list[tuple[Summary, Summary]]) -> list[list]:
    """One stock row and one RevCol row (with ratios) per scale."""
    rows = []
    for stock, ours in pairs:
        scale = stock.name[-1]
        p, g = ours.params / stock.params, ours.gflops / stock.gflops
        rows.append([scale, stock.name, stock.layers, f"{stock.params / 1e6:.2f}", f"{stock.gflops:.1f}", "", "", ""])
        ok = "yes" if p <= TARGET and g <= TARGET else "no"
        rows.append([scale, ours.name, ours.layers, f"{ours.params / 1e6:.2f}", f"{ours.gflops:.1f}", f"{p:.3f}", f"{g:.3f}", ok])
    return rows


def plot(pairs: list[tuple[Summary, Summary]], family: str, path: Path) -> None:
    """Side-by-side bars of parameters and GFLOPs per scale."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import numpy as np

    scales = [stock.name[-1] for stock, _ in pairs]
    x, w = np.arange(len(pairs)), 0.38
    fig, axes = plt.subplots(1, 2, figsize=(10, 4))
    for ax, key, label in ((axes[0], "params", "parameters (M)"), (axes[1], "gflops", "GFLOPs at 640")):
        scale = 1e6 if key == "params" else 1.0
        stock = [getattr(s, key) / scale for s, _ in pairs]
        ours = [getattr(o, key) / scale for _, o in pairs]
        ax.bar(x - w / 2, stock, w, label=f"{family} (stock)")
        bars = ax.bar(x + w / 2, ours, w, label=f"{family}-revcol")
        for bar, s, o in zip(bars, stock, ours):
            ax.annotate(f"{o / s:.2f}x", (bar.get_x() + bar.get_width() / 2, bar.get_height()), ha="center", va="bottom", fontsize=8)
        ax.set_xticks(x, scales)
        ax.set_xlabel("scale")
        ax.set_ylabel(label)
        ax.legend()
    fig.suptitle("RevCol backbone vs stock YOLOv8 (no weights; built from YAML)")
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=120)
    plt.close(fig)


def main(argv: list[str] | None = None) -> int:
    """Run the comparison, print the table, write Markdown, CSV and PNG (and optionally the README block)."""
    parser = argparse.ArgumentParser(prog="yolo-revcol compare", description=__doc__.split("\n\n")[0])
    parser.add_argument("--family", default="yolov8", choices=sorted(PAIRS))
    parser.add_argument("--scales", nargs="+", default=list(SCALES), choices=list(SCALES))
    parser.add_argument("--imgsz", type=int, default=640, help="image size for GFLOPs (default 640)")
    parser.add_argument("--out", type=Path, default=Path("results"), help="folder for compare.md/.csv/.png")
    parser.add_argument("--readme", type=Path, help="also replace the <!-- compare:start/end --> block of this file")
    args = parser.parse_args(argv)

    pairs = compare(args.family, "".join(args.scales), args.imgsz)
    rows = table_rows(pairs)
    table = markdown_table(HEADER, rows)
    note = f"Measured by `{command_line()}` at imgsz {args.imgsz} on {machine()}.\n"
    print(table + "\n" + note)
    stem = args.out / f"compare_{args.family}"
    stem.parent.mkdir(parents=True, exist_ok=True)
    stem.with_suffix(".md").write_text(note + "\n" + table)
    write_csv(stem.with_suffix(".csv"), HEADER, rows)
    plot(pairs, args.family, stem.with_suffix(".png"))
    print(f"wrote {stem}.md, {stem}.csv, {stem}.png")
    if args.readme and not replace_block(args.readme, f"compare-{args.family}", note + "\n" + table):
        print(f"no <!-- compare-{args.family}:start --> block in {args.readme}; left it unchanged")
    return 0
