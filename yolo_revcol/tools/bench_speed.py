"""CPU speed of RevCol YOLO models against stock YOLOv8 (``yolo-revcol speed``), both built from their YAMLs.

Measures, per pair: batch-1 inference of the fused eval models in PyTorch eager and of Ultralytics' ONNX export in
ONNX Runtime, the backbone alone (layers up to SPPF; both share the neck and head after it), and one training step
(forward, Ultralytics' loss on random boxes, backward) for stock and for RevCol through its reversible path and
with plain backprop. Models are timed alternately (``toolbox.interleave``); medians and the ratio RevCol / stock.
``--paper t s b`` times the paper's backbones against the stock YOLOv8 of their neck (``PAPER_STOCK``) instead.

Examples:
    yolo-revcol speed                                  # n and s at 640 and 320, eager + ONNX Runtime + training
    yolo-revcol speed --scales n --imgsz 640 --no-train --profile 15
    yolo-revcol speed --readme README.md docs/benchmarks.md
    yolo-revcol speed --paper t s b --no-onnx          # T and S vs YOLOv8s, B vs YOLOv8m
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import NamedTuple

from ..paths import cfg_dir
from .toolbox import (
    PAPER_MODELS,
    add_report_arguments,
    build_model,
    command_line,
    figure,
    interleave,
    machine,
    markdown_table,
    synthetic_batch,
    train_step,
    write_result,
)

SCALES = "nsmlx"
STOCK_YAML, REVCOL_YAML = "yolov8{s}.yaml", "yolov8{s}-revcol.yaml"  # stock from Ultralytics, RevCol from cfg/
TARGET_INFERENCE = 0.80  # RevCol / stock latency, eager and ONNX Runtime
TARGET_INFERENCE_SCALES = "ns"
TARGET_TRAIN = 1.0  # RevCol (reversible) / stock training-step time
TARGET_TRAIN_SCALES = "n"
EAGER, ORT = "inference, PyTorch eager", "inference, ONNX Runtime"
BACKBONE = "backbone to SPPF, PyTorch eager"  # no target: shows how much of the model RevCol replaces
TRAIN_REV, TRAIN_PLAIN = "train step, reversible", "train step, plain backprop"

PAPER_STOCK = {letter: stock for letter, (_, stock) in PAPER_MODELS.items()}
# Defaults of the options the user did not set, per mode: the paper's models are 91-313 GFLOPs at 640 (T-B), the n/s
# scales 7-21, so --paper takes fewer rounds and runs and a smaller training batch.
SCALE_DEFAULTS = dict(rounds=5, runs=10, warmup=3, train_batch=8, train_runs=2)
PAPER_DEFAULTS = dict(rounds=3, runs=3, warmup=1, train_batch=4, train_runs=1)


class Pair(NamedTuple):
    """Two models timed against each other: stock YAML, RevCol YAML and the rows' label (``n``, ``T vs yolov8s``)."""

    stock: str
    revcol: str
    label: str


@dataclass
class Row:
    """One measure (``EAGER``, ``BACKBONE``, ``ORT``, ``TRAIN_*``) of one pair at one size: per-run times (ms) of both
    models; ``scale`` is the pair's label (targets apply to the project's scales only).
    """

    scale: str
    measure: str
    imgsz: int
    batch: int
    stock: list[float] = field(default_factory=list)
    revcol: list[float] = field(default_factory=list)

    @property
    def ratio(self) -> float:
        """Median RevCol time over median stock time."""
        return statistics.median(self.revcol) / statistics.median(self.stock)

    @property
    def target(self) -> float | None:
        """The ratio this row should stay at or below, or None where the project sets no target."""
        # Compared letter by letter, not as substrings: paper labels ("T vs yolov8s") and "" never match a scale.
        if self.measure in (EAGER, ORT) and self.scale in list(TARGET_INFERENCE_SCALES):
            return TARGET_INFERENCE
        if self.measure == TRAIN_REV and self.scale in list(TARGET_TRAIN_SCALES):
            return TARGET_TRAIN
        return None

    @property
    def met(self) -> str:
        """``yes``/``no`` against the target, empty without one."""
        return "" if self.target is None else ("yes" if self.ratio <= self.target else "no")


def model_yamls(scale: str) -> tuple[str, str]:
    """(stock, RevCol) model YAMLs of one scale, as Ultralytics resolves them."""
    return STOCK_YAML.format(s=scale), str(cfg_dir() / REVCOL_YAML.format(s=scale))


def scale_pair(scale: str) -> Pair:
    """Stock YOLOv8 and ``yolov8-revcol.yaml`` at one scale, labelled by the scale (the project's targets apply)."""
    return Pair(*model_yamls(scale), scale)


def paper_pair(letter: str) -> Pair:
    """One of the paper's YAMLs (t, s or b) and the stock YOLOv8 of its neck, labelled e.g. ``T vs yolov8s``."""
    stock = PAPER_STOCK[letter]
    return Pair(stock, str(cfg_dir() / PAPER_MODELS[letter][0]), f"{letter.upper()} vs {Path(stock).stem}")


def backbone_forward(model, x):
    """Run a detection model's layers up to and including its SPPF, following each layer's inputs (``m.f``).

    Stock YOLOv8 and the RevCol YAMLs share everything after SPPF (neck and head), so this is the part that differs.

    Returns:
        (torch.Tensor): SPPF's output.
    """
    from ultralytics.nn.modules import SPPF

    outputs = []
    for m in model.model:
        if m.f == -1:
            inputs = x
        else:
            inputs = outputs[m.f] if isinstance(m.f, int) else [x if j == -1 else outputs[j] for j in m.f]
        x = m(inputs)
        outputs.append(x)
        if isinstance(m, SPPF):
            return x
    raise ValueError(f"{type(model).__name__} has no SPPF layer")


def export_onnx(checkpoint: Path, imgsz: int) -> Path:
    """Export a saved model as users do (``YOLO(checkpoint).export(format="onnx", imgsz=imgsz)``, defaults); the
    file lands next to the checkpoint.
    """
    from ultralytics import YOLO

    return Path(YOLO(str(checkpoint)).export(format="onnx", imgsz=imgsz, verbose=False))


def ort_session(onnx_path: Path, threads: int):
    """ONNX Runtime CPU session with ``threads`` intra-op threads (same as torch) and default graph optimizations."""
    import onnxruntime as ort

    options = ort.SessionOptions()
    options.intra_op_num_threads = threads
    options.inter_op_num_threads = 1  # YOLO graphs are sequential; parallelism is within ops
    return ort.InferenceSession(str(onnx_path), options, providers=["CPUExecutionProvider"])


def bench_inference(pair: Pair, sizes: list[int], args: argparse.Namespace, tmp: Path) -> list[Row]:
    """Batch-1 latency of one pair's fused eval models at each size: PyTorch eager (whole model, backbone to SPPF)
    and, unless ``--no-onnx``, ONNX Runtime on the exported files (written into ``tmp``).
    """
    import torch
    from ultralytics import YOLO

    from ..integration.register import register

    register()
    yamls, scale = (pair.stock, pair.revcol), pair.label
    yolos = [YOLO(yaml) for yaml in yamls]  # stock, RevCol: DetectionModels built from YAML, no weights
    names = [Path(yaml).stem for yaml in yamls]
    checkpoints = [tmp / f"{n}.pt" for n in names]
    for yolo, ckpt in zip(yolos, checkpoints):
        yolo.save(ckpt)  # before fusing: the exporter starts from the checkpoint, as for a user's model
    models = [y.model.float().eval().fuse(verbose=False) for y in yolos]
    rows = []
    for imgsz in sizes:
        x = torch.rand(1, 3, imgsz, imgsz, generator=torch.Generator().manual_seed(0))
        print(f"== {scale} {imgsz}: {EAGER}", flush=True)
        with torch.inference_mode():
            fns = {n: (lambda m=m, x=x: m(x)) for n, m in zip(names, models)}
            times = interleave(fns, args.rounds, args.runs, args.warmup, args.threads)
        rows.append(Row(scale, EAGER, imgsz, 1, times[names[0]], times[names[1]]))
        print(f"== {scale} {imgsz}: {BACKBONE}", flush=True)
        with torch.inference_mode():
            fns = {n: (lambda m=m, x=x: backbone_forward(m, x)) for n, m in zip(names, models)}
            times = interleave(fns, args.rounds, args.runs, args.warmup, args.threads)
        rows.append(Row(scale, BACKBONE, imgsz, 1, times[names[0]], times[names[1]]))
        if args.profile:
            profiles = [profile_ops(m, x, max(args.runs, 3)) for m in models]
            args.profiles.append((scale, imgsz, names, profiles))
        if args.onnx:
            # Each size overwrites the previous size's file (named after the checkpoint); sessions hold their copy.
            sessions = [ort_session(export_onnx(ckpt, imgsz), args.threads) for ckpt in checkpoints]
            feed = x.numpy()
            print(f"== {scale} {imgsz}: {ORT}", flush=True)
            feeds = [{s.get_inputs()[0].name: feed} for s in sessions]
            fns = {n: (lambda s=s, f=f: s.run(None, f)) for n, s, f in zip(names, sessions, feeds)}
            times = interleave(fns, args.rounds, args.runs, args.warmup, args.threads)
            rows.append(Row(scale, ORT, imgsz, 1, times[names[0]], times[names[1]]))
    return rows


def bench_train(pair: Pair, args: argparse.Namespace) -> list[Row]:
    """Training-step time of stock, RevCol reversible and RevCol plain backprop (one model, both paths), alternated.

    Returns:
        (list[Row]): ``TRAIN_REV`` and ``TRAIN_PLAIN``, against the same stock runs.
    """
    stock, revcol = build_model(pair.stock, train=True), build_model(pair.revcol, train=True)
    batch = synthetic_batch(args.train_batch, args.train_imgsz)
    fns = {
        "stock": train_step(stock, batch),
        "reversible": train_step(revcol, batch, reversible=True),
        "plain": train_step(revcol, batch, reversible=False),
    }
    revcol.model[0].reconstruction_error = None  # the reversible backward records it: make sure it runs
    fns["reversible"]()
    if revcol.model[0].reconstruction_error is None:
        print("warning: the reversible training step did not run RevCol's reversible backward", flush=True)
    print(f"== {pair.label} {args.train_imgsz}: training step, batch {args.train_batch}", flush=True)
    times = interleave(fns, args.rounds, args.train_runs, args.train_warmup, args.threads)
    size = dict(scale=pair.label, imgsz=args.train_imgsz, batch=args.train_batch)
    return [
        Row(measure=m, stock=times["stock"], revcol=times[n], **size)
        for n, m in (("reversible", TRAIN_REV), ("plain", TRAIN_PLAIN))
    ]


def profile_ops(model, x, runs: int) -> dict[str, tuple[float, float]]:
    """Self CPU time per operator of ``runs`` eager inferences (after one warm-up).

    Returns:
        (dict[str, tuple[float, float]]): Operator name -> (self CPU ms per inference, calls per inference).
    """
    import torch
    from torch.profiler import ProfilerActivity, profile

    with torch.inference_mode():
        model(x)
        with profile(activities=[ProfilerActivity.CPU]) as prof:
            for _ in range(runs):
                model(x)
    return {e.key: (e.self_cpu_time_total / 1e3 / runs, e.count / runs) for e in prof.key_averages()}


def profile_report(profiles: list, top: int) -> str:
    """Markdown: per eager inference pair, the ``top`` operators by self CPU time (the larger of the two models)."""
    parts = []
    for scale, imgsz, names, (stock, revcol) in profiles:
        total_s, total_r = sum(v[0] for v in stock.values()), sum(v[0] for v in revcol.values())
        none = (0.0, 0.0)
        ops = sorted(set(stock) | set(revcol), key=lambda k: -max(stock.get(k, none)[0], revcol.get(k, none)[0]))
        rows = []
        for op in ops[:top]:
            (ms_s, n_s), (ms_r, n_r) = stock.get(op, none), revcol.get(op, none)
            share = f"{100 * ms_r / total_r:.1f}"
            rows.append([f"`{op}`", f"{ms_s:.2f}", f"{n_s:g}", f"{ms_r:.2f}", f"{n_r:g}", share])
        header = ("operator", f"{names[0]} ms", "calls", f"{names[1]} ms", "calls", f"{names[1]} share %")
        parts.append(
            f"### {scale} at {imgsz}, fused, PyTorch eager, batch 1\n\n"
            f"Self CPU time per inference (torch.profiler): {names[0]} {total_s:.1f} ms, {names[1]} {total_r:.1f} ms; "
            f"top {top} operators.\n\n" + markdown_table(header, rows)
        )
    return "\n".join(parts)


HEADER = ("scale", "measure", "imgsz", "batch", "stock (ms)", "RevCol (ms)", "RevCol / stock")  # targets: CSV only
CSV_HEADER = ("scale", "measure", "imgsz", "batch", "stock_ms", "revcol_ms", "ratio", "target", "target_met")
CSV_HEADER += ("stock_p25_ms", "stock_p75_ms", "revcol_p25_ms", "revcol_p75_ms", "runs")
PAPER_LABEL = "models"  # first column of --paper tables (``T vs yolov8s``) instead of "scale"


def headers(paper: bool) -> tuple[tuple[str, ...], tuple[str, ...]]:
    """(Markdown, CSV) headers of the result: ``HEADER`` and ``CSV_HEADER``, with --paper's first column renamed."""
    if not paper:
        return HEADER, CSV_HEADER
    return (PAPER_LABEL, *HEADER[1:]), (PAPER_LABEL, *CSV_HEADER[1:])


def quartiles(values: list[float]) -> tuple[float, float]:
    """25th and 75th percentile (both the value itself for a single run)."""
    if len(values) < 2:
        return values[0], values[0]
    q = statistics.quantiles(values, n=4, method="inclusive")
    return q[0], q[2]


def table_rows(rows: list[Row]) -> list[list]:
    """Markdown rows: medians with one decimal, ratios with three."""
    return [
        [r.scale, r.measure, r.imgsz, r.batch]
        + [f"{statistics.median(r.stock):.1f}", f"{statistics.median(r.revcol):.1f}", f"{r.ratio:.3f}"]
        for r in rows
    ]


def csv_rows(rows: list[Row]) -> list[list]:
    """CSV rows at full precision, with interquartile ranges and the number of timed runs."""
    return [
        [r.scale, r.measure, r.imgsz, r.batch, statistics.median(r.stock), statistics.median(r.revcol), r.ratio]
        + ["" if r.target is None else r.target, r.met, *quartiles(r.stock), *quartiles(r.revcol), len(r.revcol)]
        for r in rows
    ]


def plot(rows: list[Row], title: str, path: Path) -> None:
    """One bar per row: the ratio RevCol / stock, coloured by measure, with each row's target as a tick."""
    from matplotlib.lines import Line2D
    from matplotlib.patches import Rectangle

    colors = {
        EAGER: "tab:blue",
        BACKBONE: "tab:cyan",
        ORT: "tab:orange",
        TRAIN_REV: "tab:green",
        TRAIN_PLAIN: "tab:gray",
    }
    with figure(path, figsize=(max(7.0, 0.6 * len(rows) + 4), 4.5)) as (_, ax):
        draw_ratios(ax, rows, colors, title)
        handles = [Rectangle((0, 0), 1, 1, color=c) for m, c in colors.items() if any(r.measure == m for r in rows)]
        labels = [m for m in colors if any(r.measure == m for r in rows)]
        if any(r.target is not None for r in rows):  # --paper rows have none
            handles.append(Line2D([0], [0], color="red", linewidth=2))
            labels.append("target")
        ax.legend(handles, labels, fontsize=8, loc="upper left", bbox_to_anchor=(1.01, 1))


def draw_ratios(ax, rows: list[Row], colors: dict[str, str], title: str) -> None:
    """The bars of ``plot``: each row's ratio with its value on top and its target as a red tick."""
    x = range(len(rows))
    bars = ax.bar(x, [r.ratio for r in rows], color=[colors[r.measure] for r in rows])
    for bar, r in zip(bars, rows):
        top = (bar.get_x() + bar.get_width() / 2, bar.get_height())
        ax.annotate(f"{r.ratio:.2f}", top, ha="center", va="bottom", fontsize=8)
        if r.target is not None:
            ax.hlines(r.target, bar.get_x() - 0.05, bar.get_x() + bar.get_width() + 0.05, colors="red", linewidth=2)
    ax.axhline(1.0, color="black", linewidth=0.8)
    ticks = [f"{r.scale} {r.imgsz}" + (f" b{r.batch}" if r.batch > 1 else "") for r in rows]
    slanted = any(len(r.scale) > 1 for r in rows)  # paper labels ("T vs yolov8s 640") overlap when upright
    ax.set_xticks(list(x), ticks, fontsize=8, rotation=30 if slanted else 0, ha="right" if slanted else "center")
    ax.set_ylabel("RevCol / stock time (median)")
    ax.set_ylim(0, max(1.2, max(r.ratio for r in rows) * 1.1))
    ax.set_title(title, fontsize=10)


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    """Command-line options; the timing options the user did not set take ``SCALE_DEFAULTS`` or, with --paper,
    ``PAPER_DEFAULTS``."""

    def default(name: str) -> str:
        return f"default {SCALE_DEFAULTS[name]}; {PAPER_DEFAULTS[name]} with --paper"

    p = argparse.ArgumentParser(prog="yolo-revcol speed", description=__doc__.split("\n\n")[0])
    p.add_argument("--scales", nargs="+", choices=list(SCALES), help="scales of yolov8-revcol.yaml (default n s)")
    p.add_argument(
        "--paper",
        nargs="*",
        choices=list(PAPER_STOCK),
        help="time the paper's cfg/revcol-{t,s,b}-yolov8.yaml instead, T and S against yolov8s, B against yolov8m "
        "(no letter: t); no targets; writes speed_paper.* and the <!-- speed-paper:start/end --> block",
    )
    p.add_argument("--imgsz", nargs="+", type=int, default=[640, 320], help="inference sizes (default 640 320)")
    p.add_argument("--rounds", type=int, help=f"alternating rounds ({default('rounds')})")
    p.add_argument("--runs", type=int, help=f"timed inference runs per model and round ({default('runs')})")
    p.add_argument("--warmup", type=int, help=f"untimed inference runs per model first ({default('warmup')})")
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1
    p.add_argument("--threads", type=int, default=cores, help="torch and ONNX Runtime (default: all cores)")
    p.add_argument("--train-batch", type=int, help=f"training batch ({default('train_batch')})")
    p.add_argument("--train-imgsz", type=int, default=320, help="training image size (default 320)")
    p.add_argument("--train-runs", type=int, help=f"timed training steps per model and round ({default('train_runs')})")
    p.add_argument("--train-warmup", type=int, default=1, help="untimed training steps per model first (default 1)")
    p.add_argument("--no-onnx", dest="onnx", action="store_false", help="skip ONNX export and ONNX Runtime timing")
    p.add_argument("--no-train", dest="train", action="store_false", help="skip the training-step timing")
    p.add_argument("--profile", type=int, default=0, metavar="N", help="also write the top-N operators of eager pairs")
    add_report_arguments(p, "speed.md/.csv/.png (speed_paper.*)", "the speed (speed-paper) block")
    args = p.parse_args(argv)
    if args.paper is not None:
        if args.scales is not None:
            p.error(f"--scales {' '.join(args.scales)} does not apply with --paper (the paper's YAMLs are not scaled)")
        args.paper = list(dict.fromkeys(args.paper)) or ["t"]  # bare --paper: T; repeated letters timed once
    args.scales = args.scales or ["n", "s"]
    for name, value in (PAPER_DEFAULTS if args.paper else SCALE_DEFAULTS).items():
        if getattr(args, name) is None:
            setattr(args, name, value)
    for name in ("rounds", "runs", "threads", "train_batch", "train_runs"):
        if getattr(args, name) < 1:
            p.error(f"--{name.replace('_', '-')} must be >= 1, got {getattr(args, name)}")
    for name in ("warmup", "train_warmup", "profile"):
        if getattr(args, name) < 0:
            p.error(f"--{name.replace('_', '-')} must be >= 0, got {getattr(args, name)}")
    for size in [*args.imgsz, args.train_imgsz]:
        if size < 32 or size % 32:
            p.error(f"image sizes must be multiples of 32, got {size}")
    args.profiles = []
    return args


def describe(args: argparse.Namespace) -> str:
    """The method, for the report header."""
    parts = []
    if args.paper:
        pairs = ", ".join(f"`{Path(q.revcol).name}` vs `{q.stock}` ({q.label})" for q in map(paper_pair, args.paper))
        b_note = "; B's backbone P3/P4 are 144/288 channels, YOLOv8m's 192/384" if "b" in args.paper else ""
        parts.append(
            f"The paper's backbones, each against the stock YOLOv8 whose neck and Detect head its YAML writes out "
            f"(same widths, repeats and Detect{b_note}): {pairs}. "
        )
    parts.append(
        "Batch-1 inference of the fused eval models (`.eval().fuse()`), random input: PyTorch eager under "
        "`torch.inference_mode()`; the same for the backbone alone (layers up to and including SPPF)"
    )
    if args.onnx:
        import onnxruntime

        parts.append(
            f"; ONNX Runtime {onnxruntime.__version__} CPUExecutionProvider on the file of Ultralytics' exporter "
            f'(`YOLO(checkpoint).export(format="onnx", imgsz=...)`, defaults: float32, static shape, onnxslim), '
            "default graph optimizations"
        )
    parts.append(f". Threads for torch and ONNX Runtime (intra-op): {args.threads}.")
    if args.train:
        parts.append(
            f" Training step: train mode, batch {args.train_batch} at {args.train_imgsz}, random images with 4 random "
            "boxes each, zero_grad + forward + Ultralytics' v8DetectionLoss + backward (no optimizer step); RevCol "
            "reversible (YAML default) and plain backprop (`RevCol.reversible = False`) share one model."
        )
    warm, timed = f"{args.warmup} runs", f"{args.runs} runs"
    if args.train:
        warm, timed = f"{warm} ({args.train_warmup} training steps)", f"{timed} ({args.train_runs} training steps)"
    parts.append(
        f" Warm-up {warm} per model, then {args.rounds} rounds of {timed} per model back to back, order rotating; "
        f"medians over all timed runs, ratio = RevCol median / stock median."
    )
    return "".join(parts) + "\n"


def main(argv: list[str] | None = None) -> int:
    """Time every measure, print the table, write Markdown, CSV and PNG (and optionally the README block)."""
    os.environ.setdefault("YOLO_OFFLINE", "1")  # before Ultralytics is imported: the exporter must not go online
    args = parse_args(argv)
    import torch

    torch.set_num_threads(args.threads)
    pairs = [paper_pair(p) for p in args.paper] if args.paper else [scale_pair(s) for s in args.scales]
    rows: list[Row] = []
    with tempfile.TemporaryDirectory(prefix="yolo_revcol_speed_") as tmp:
        for pair in pairs:
            folder = Path(tmp) / Path(pair.revcol).stem  # T and S share their stock model's name: one folder each
            folder.mkdir()
            rows += bench_inference(pair, args.imgsz, args, folder)
            if args.train:
                rows += bench_train(pair, args)
    torch.set_num_threads(args.threads)  # as timed, for machine()
    note = f"Measured by `{command_line()}` on {machine()}.\n" + describe(args)
    header, csv_header = headers(bool(args.paper))
    if args.paper:
        stem, block = "speed_paper", "speed-paper"
        title = f"RevCol-T/S/B / stock YOLOv8 time on CPU, threads: {args.threads} (lower is faster)"
    else:
        stem, block = "speed", "speed"
        title = f"RevCol / stock YOLOv8 time on CPU, threads: {args.threads} (lower is faster)"
    text = note + "\n" + markdown_table(header, table_rows(rows))
    write_result(
        args.out / stem,
        text,
        csv_header,
        csv_rows(rows),
        lambda path: plot(rows, title, path),
        args.readme,
        block=block,
    )
    if args.profiles:
        text = f"Measured by `{command_line()}` on {machine()}.\n\n" + profile_report(args.profiles, args.profile)
        profile_md = args.out / f"{stem}_profile.md"
        profile_md.write_text(text)
        print(f"{text}\nwrote {profile_md}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
