"""Ablations of the RevCol backbone at one scale: which block, stem, columns and training path to ship.

Every variant is the shipped ``cfg/yolov8-revcol.yaml`` with only its RevCol row changed (same channels and blocks
per level, same neck and head). Each variant's YAML is written next to its run, its params and GFLOPs are measured
like ``yolo-revcol compare`` does, and it is trained from scratch with exactly the settings of
``yolo-revcol accuracy`` (stock YOLOv8 at the same scale trained alongside as the reference). Two studies:

* ``design``: block family (the paper's ConvNeXt block vs a YOLOv8-style C2f block with BatchNorm/SiLU), stem
  (4x4 patchify vs two 3x3 stride-2 convs), drop path, and reversible vs plain backprop;
* ``columns``: the column count as a scaling axis (1, 2, 4, 8 columns) with the shipped block and stem.

A finished run is reused when its YAML and settings are identical (its ``result.json`` records both), so a second
study or a rerun trains only what changed. Writes ``ablation_<study>.md``/``.csv``/``.png`` and prints the tables.

Examples:
    yolo-revcol ablation                              # both studies at scale n, 10 epochs at 256 px (CPU: hours)
    yolo-revcol ablation --study columns --jobs 2     # two trainings at a time
    yolo-revcol ablation --no-train                   # params/GFLOPs only, seconds
    yolo-revcol ablation --readme README.md           # also fill the <!-- ablation-<study>:start/end --> blocks
"""

from __future__ import annotations

import argparse
import copy
import hashlib
import json
import math
import os
import sys
import tempfile
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass, field
from pathlib import Path

import yaml

from ..paths import cfg_dir
from .bench_accuracy import (
    DEFAULT_DATA,
    Result,
    Settings,
    add_training_arguments,
    fill_training_defaults,
    prepare_data,
    quick_dataset,
    run_model,
)
from .report import command_line, machine, markdown_table, replace_block, write_csv

BASE_YAML = "yolov8-revcol.yaml"


@dataclass
class Variant:
    """One RevCol configuration: the shipped row with some arguments replaced.

    Attributes:
        name (str): Short name, used in file names.
        what (str): What it changes, for the table.
        options (dict): RevCol options by name (block, stem, drop_path, reversible, layer_scale...).
        columns (int | None): Column count for every scale (None: the YAML's).
        channels (list[int] | None): Channels per level before width scaling (None: the YAML's).
        layers (list[int] | None): Blocks per level before depth scaling (None: the YAML's).
    """

    name: str
    what: str
    options: dict = field(default_factory=dict)
    columns: int | None = None
    channels: list[int] | None = None
    layers: list[int] | None = None


C2F_PATCHIFY = {"block": "c2f", "stem": "patchify"}
STUDIES = {
    "design": [
        Variant("convnext-patchify", "paper: ConvNeXt block, LayerNorm, 4x4 patchify stem", {"block": "convnext"}),
        Variant("convnext-yolo", "ConvNeXt block, 3x3 s2 conv stem", {"block": "convnext", "stem": "yolo"}),
        Variant("c2f-patchify", "C2f block (BN/SiLU), 4x4 patchify stem", C2F_PATCHIFY),
        Variant("c2f-yolo", "C2f block (BN/SiLU), 3x3 s2 conv stem", {"block": "c2f", "stem": "yolo"}),
        Variant("c2f-patchify-dp0.1", "C2f + patchify stem, drop path 0.1", {"block": "c2f", "drop_path": 0.1}),
        Variant("c2f-patchify-plain", "C2f + patchify stem, plain backprop", {"block": "c2f", "reversible": False}),
    ],
    "columns": [
        Variant(f"c2f-{n}col", f"{n} column{'s' if n > 1 else ''} (C2f, patchify stem)", C2F_PATCHIFY, n)
        for n in (1, 2, 4)
    ]
    # Reconstructing through 8 columns is too inexact for useful gradients (RevCol warns: error ~1); exact states
    # every 4 columns keep it at the 4-column level.
    + [Variant("c2f-8col", "8 columns, checkpoint_every 4", {**C2F_PATCHIFY, "checkpoint_every": 4}, 8)],
    # Where the budget goes. At scale n the depth multiple 0.33 turns blocks 1/1/3/1 into one block per level, so
    # more depth needs larger block counts in the row; halving the stride-4 level pays for it.
    "budget": [
        Variant("c2f-deeper", "blocks 2/2/6/2 (n: 1/1/2/1)", C2F_PATCHIFY, layers=[2, 2, 6, 2]),
        Variant(
            "c2f-narrow-p2-deeper",
            "stride-4 level 32 (n: 8) channels, blocks 1/3/6/3 (n: 1/1/2/1)",
            C2F_PATCHIFY,
            channels=[32, 128, 256, 512],
            layers=[1, 3, 6, 3],
        ),
    ],
}


def variant_yaml(base: dict, variant: Variant) -> dict:
    """The model dictionary of ``variant``: ``base`` with its RevCol row's options replaced."""
    d = copy.deepcopy(base)
    row = d["backbone"][0]
    if row[2] != "RevCol":
        raise ValueError(f"{BASE_YAML}: layer 0 must be RevCol to run ablations, got {row[2]}")
    channels, layers, columns = row[3][:3]
    if variant.columns is not None:  # same count at every scale, written the way the YAML writes columns
        columns = {s: variant.columns for s in columns} if isinstance(columns, dict) else variant.columns
    channels = variant.channels or channels
    layers = variant.layers or layers
    row[3] = [channels, layers, columns, dict(variant.options)]
    d.pop("scale", None)
    return d


def size(model_yaml: str, imgsz: int = 640) -> tuple[int, float]:
    """Params and GFLOPs at ``imgsz`` of a detection model built from a YAML (no weights)."""
    from .compare import summarize

    s = summarize(model_yaml, Path(model_yaml).stem, imgsz)
    return s.params, s.gflops


def run_key(model_yaml: Path | str, data: str, settings: Settings) -> str:
    """Identity of a training run: the model (its parsed YAML, or its name), the dataset and every setting.

    The parsed YAML is used, not its text, so two variants that differ only in name and comments share one run.
    """
    model = yaml.safe_load(Path(model_yaml).read_text()) if Path(model_yaml).is_file() else str(model_yaml)
    scale = Path(model_yaml).stem  # the scale Ultralytics reads from the file name
    blob = json.dumps([model, scale[: scale.index("-")] if "-" in scale else scale, data, asdict(settings)], sort_keys=True)
    return hashlib.sha256(blob.encode()).hexdigest()[:16]


def train_cached(model: str, data: str, project: Path, settings: Settings, tmp: Path) -> tuple[Result, bool]:
    """Train ``model`` unless an identical finished run exists under ``project``; return its result and reuse flag."""
    cache = project / "results" / f"{run_key(model, data, settings)}.json"
    if cache.is_file():
        return Result(**{**json.loads(cache.read_text()), "name": Path(model).stem}), True
    result = run_model(model, data, project, settings, tmp)
    cache.parent.mkdir(parents=True, exist_ok=True)
    cache.write_text(json.dumps(asdict(result)))
    return result, False


HEADER = ("variant", "what changes", "params (M)", "GFLOPs @640", "params ratio", "GFLOPs ratio")
HEADER += ("mAP50", "mAP50-95", "mAP50-95 ratio", "train (s)")


def table_rows(stock: tuple, rows: list[tuple]) -> list[list]:
    """Markdown rows: stock first, then every variant with its ratios to stock."""

    def fmt(v: float, spec: str) -> str:
        return "" if v is None or (isinstance(v, float) and math.isnan(v)) else format(v, spec)

    out = []
    sp, sf, sr = stock
    out.append(["stock", "YOLOv8 backbone (reference)", f"{sp / 1e6:.2f}", f"{sf:.1f}", "1.000", "1.000"]
               + ([fmt(sr.map50, ".3f"), fmt(sr.map50_95, ".3f"), "1.000", fmt(sr.train_s, ".0f")] if sr else ["", "", "", ""]))
    for v, p, f, r in rows:
        trained = [fmt(r.map50, ".3f"), fmt(r.map50_95, ".3f")] if r else ["", ""]
        ratio = f"{r.map50_95 / sr.map50_95:.3f}" if r and sr and sr.map50_95 else ""
        out.append([v.name, v.what, f"{p / 1e6:.2f}", f"{f:.1f}", f"{p / sp:.3f}", f"{f / sf:.3f}"]
                   + trained + [ratio, fmt(r.train_s, ".0f") if r else ""])
    return out


def plot(stock: tuple, rows: list[tuple], title: str, path: Path) -> None:
    """mAP50-95 per epoch of every trained variant and of stock."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(7, 4))
    curves = [("stock", stock[2])] + [(v.name, r) for v, _, _, r in rows]
    for name, r in curves:
        if r and r.curve:
            ax.plot(range(1, len(r.curve) + 1), r.curve, marker="o", label=name, lw=2.5 if name == "stock" else 1.5)
    ax.set_xlabel("epoch")
    ax.set_ylabel("mAP50-95 (val)")
    ax.set_ylim(bottom=0)
    ax.set_title(title)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=120)
    plt.close(fig)


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    """Command-line options (training settings as in ``yolo-revcol accuracy``)."""
    p = argparse.ArgumentParser(prog="yolo-revcol ablation", description=__doc__.split("\n\n")[0])
    p.add_argument("--study", nargs="+", choices=list(STUDIES), default=list(STUDIES))
    p.add_argument("--variants", nargs="+", help="only these variants (names as in the tables)")
    p.add_argument("--scale", default="n", choices=list("nsmlx"))
    p.add_argument("--data", help=f"dataset YAML (default cfg/{DEFAULT_DATA}; --quick: a tiny generated one)")
    p.add_argument("--no-train", action="store_true", help="params and GFLOPs only")
    p.add_argument("--jobs", type=int, default=1, help="trainings at a time (each uses one torch thread on CPU)")
    add_training_arguments(p)
    p.add_argument("--project", type=Path, default=Path("runs/ablation"), help="runs and variant YAMLs go here")
    p.add_argument("--out", type=Path, default=Path("results"), help="folder for ablation_<study>.md/.csv/.png")
    p.add_argument("--readme", type=Path, help="also replace the <!-- ablation-<study>:start/end --> blocks")
    args = p.parse_args(argv)
    fill_training_defaults(args)
    known = {v.name for vs in STUDIES.values() for v in vs}
    unknown = sorted(set(args.variants or ()) - known)
    if unknown:
        p.error(f"unknown variant(s) {', '.join(unknown)}; known: {', '.join(sorted(known))}")
    if args.jobs < 1:
        p.error(f"--jobs must be >= 1, got {args.jobs}")
    return args


def main(argv: list[str] | None = None) -> int:
    """Measure (and train) every variant of the chosen studies; print and write the tables."""
    os.environ.setdefault("YOLO_OFFLINE", "1")
    args = parse_args(argv)
    from ..integration.offline import provide_fonts

    provide_fonts()
    settings = Settings(**{k: getattr(args, k) for k in Settings.__dataclass_fields__})
    base = yaml.safe_load((cfg_dir() / BASE_YAML).read_text())
    project = args.project.resolve()
    yamls = project / "yamls"
    yamls.mkdir(parents=True, exist_ok=True)
    stock_name = f"yolov8{args.scale}.yaml"

    studies = {s: [v for v in STUDIES[s] if not args.variants or v.name in args.variants] for s in args.study}
    paths: dict[str, Path] = {}
    sizes: dict[str, tuple[int, float]] = {stock_name: size(stock_name)}
    for variants in studies.values():
        for v in variants:
            # The scale letter goes into the file name, where Ultralytics reads it (yolov8n-revcol-<variant>.yaml).
            path = yamls / f"yolov8{args.scale}-revcol-{v.name}.yaml"
            path.write_text(f"# {v.what}\n" + yaml.safe_dump(variant_yaml(base, v), sort_keys=False))
            paths[v.name] = path
            sizes[v.name] = size(str(path))
            p, f = sizes[v.name]
            print(f"{path.name}: {p / 1e6:.2f} M params, {f:.1f} GFLOPs", flush=True)

    results: dict[str, Result | None] = {}
    with tempfile.TemporaryDirectory(prefix="yolo_revcol_ablation_") as tmp:
        if not args.no_train:
            # The quick dataset lives under the project, not in tmp, so its path (part of each run's key) is stable.
            data = str(quick_dataset(project / "data")) if args.quick and not args.data else args.data
            data = data or str(cfg_dir() / DEFAULT_DATA)
            data = str(Path(data).resolve()) if Path(data).is_file() else data
            prepare_data(data)
            runs_dir = project / Path(data).stem
            models = [stock_name] + [str(paths[n]) for n in dict.fromkeys(paths)]

            def train(model: str) -> tuple[str, Result]:
                result, reused = train_cached(model, data, runs_dir, settings, Path(tmp))
                print(f"{Path(model).stem}: mAP50-95 {result.map50_95:.3f}{' (reused run)' if reused else ''}", flush=True)
                return model, result

            with ThreadPoolExecutor(args.jobs) as pool:
                for model, result in pool.map(train, models):
                    results[model] = result

    stock = (*sizes[stock_name], results.get(stock_name))
    how = (
        "params/GFLOPs only (not trained)"
        if args.no_train
        else f"trained from scratch on {Path(data).stem}, identical settings: {settings.describe()}; "
        "mAP from the final validation of best.pt; runs with an identical YAML and settings are reused"
    )
    for study, variants in studies.items():
        rows = [(v, *sizes[v.name], results.get(str(paths[v.name]))) for v in variants]
        table = markdown_table(HEADER, table_rows(stock, rows))
        note = (
            f"Measured by `{command_line()}` on {machine()}.\n"
            f"Scale {args.scale}, variants of cfg/{BASE_YAML} (RevCol row only; ratios against stock yolov8{args.scale}); "
            f"{how}.\n"
        )
        print(f"\n## {study}\n" + table + "\n" + note)
        out = args.out / f"ablation_{study}"
        out.parent.mkdir(parents=True, exist_ok=True)
        out.with_suffix(".md").write_text(note + "\n" + table)
        write_csv(out.with_suffix(".csv"), HEADER, table_rows(stock, rows))
        if not args.no_train:
            plot(stock, rows, f"{study}: mAP50-95 per epoch (scale {args.scale}, imgsz {settings.imgsz})", out.with_suffix(".png"))
        if args.readme and not replace_block(args.readme, f"ablation-{study}", note + "\n" + table):
            print(f"no <!-- ablation-{study}:start --> block in {args.readme}; left it unchanged")
    return 0


if __name__ == "__main__":
    sys.exit(main())
