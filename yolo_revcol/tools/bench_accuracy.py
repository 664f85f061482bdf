"""Train stock YOLOv8n and YOLOv8n-RevCol with identical settings and compare accuracy, training time and memory.

Each model trains from scratch (no weights) in its own Python subprocess, so that its peak resident memory and wall
time are its own. Reported per model: parameters and GFLOPs of the trained model (at the training size and at 640),
mAP50 and mAP50-95 of the final validation of ``best.pt``, ``model.train()`` wall time, the training loop's own time
(Ultralytics' ``results.csv``) and peak RSS. Writes ``accuracy_<dataset>.md``, ``.csv`` and ``.png`` (mAP50-95 per
epoch) and prints the table.

Examples:
    yolo-revcol accuracy                          # yolov8n vs yolov8n-revcol on revcol-shapes, ~15+ min on CPU
    yolo-revcol accuracy --quick --out /tmp/acc   # smoke test: 1 epoch at 64 px on a tiny generated dataset
    yolo-revcol accuracy --data coco8.yaml --models yolov8n.yaml cfg/yolov8n-revcol.yaml cfg/yolov8s-revcol.yaml
    yolo-revcol accuracy --readme README.md       # also replace the <!-- accuracy:start/end --> block
"""

from __future__ import annotations

import argparse
import csv
import json
import math
import os
import re
import resource
import subprocess
import sys
import tempfile
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

from ..paths import cfg_dir
from .report import command_line, machine, markdown_table, replace_block, write_csv

DEFAULT_MODELS = ("yolov8n.yaml", "yolov8n-revcol.yaml")  # first one is the baseline of the ratio rows
DEFAULT_DATA = "datasets/revcol-shapes.yaml"  # relative to cfg_dir()
MAP_COLUMN = "metrics/mAP50-95(B)"
# The subprocess entry point: trains one model from a JSON spec and writes a JSON result.
CHILD = "import sys; from yolo_revcol.tools.bench_accuracy import child_main; sys.exit(child_main(sys.argv[1:]))"


@dataclass
class Settings:
    """Training settings shared by every model of one benchmark (Ultralytics ``train`` arguments)."""

    epochs: int = 10
    imgsz: int = 256
    batch: int = 16
    optimizer: str = "AdamW"
    lr0: float = 0.003
    warmup_epochs: float = 1.0
    close_mosaic: int = 3
    seed: int = 0
    workers: int = 2
    deterministic: bool = True
    plots: bool = False
    device: str = "cpu"

    def describe(self) -> str:
        """One line listing every setting, for the report header."""
        return ", ".join(f"{k} {v}" for k, v in asdict(self).items())


@dataclass
class Result:
    """What one training run measured.

    Attributes:
        name (str): Model name (YAML stem).
        params (int): Parameters of the trained model (with the dataset's number of classes).
        gflops (float): GFLOPs at the training image size.
        gflops_640 (float): GFLOPs at 640.
        map50 (float): mAP50 of the final validation of ``best.pt``.
        map50_95 (float): mAP50-95 of the final validation of ``best.pt``.
        train_s (float): Wall time of ``model.train()`` (setup, epochs, final validation).
        loop_s (float): Training-loop time Ultralytics logs in ``results.csv`` (epochs and per-epoch validation).
        rss_mib (float): Peak resident memory of the training process.
        save_dir (str): Ultralytics' run directory.
        curve (list[float]): mAP50-95 after each epoch, from ``results.csv``.
    """

    name: str
    params: int
    gflops: float
    gflops_640: float
    map50: float
    map50_95: float
    train_s: float
    loop_s: float
    rss_mib: float
    save_dir: str
    curve: list[float] = field(default_factory=list)


def resolve_model(name: str) -> str:
    """Return a model YAML for Ultralytics: a path (made absolute), a YAML of this repository's ``cfg/``, or the name.

    Scaled names need not exist as files (``yolov8n-revcol.yaml`` is ``yolov8-revcol.yaml`` at scale n, which
    Ultralytics resolves itself); names found in neither place (``yolov8n.yaml``) come from Ultralytics' own
    ``cfg/models``.
    """
    path = Path(name)
    if path.is_file() or (path.parent != Path(".") and path.parent.is_dir()):
        return str(path.resolve())
    unified = re.sub(r"(\d+)([nslmx])(.+)?$", r"\1\3", path.stem) + path.suffix  # as Ultralytics drops the scale
    return str(cfg_dir() / name) if (cfg_dir() / name).is_file() or (cfg_dir() / unified).is_file() else name


def peak_rss_mib() -> float:
    """Peak RSS of this process, or of a child it waited for (DataLoader workers), whichever is larger, in MiB."""
    kib = max(resource.getrusage(who).ru_maxrss for who in (resource.RUSAGE_SELF, resource.RUSAGE_CHILDREN))
    return kib / (2**20 if sys.platform == "darwin" else 2**10)  # macOS reports bytes, Linux KiB


def train_one(model: str, data: str, project: str, name: str, settings: dict) -> dict:
    """Train one model from its YAML in this process and measure it; meant to run in a fresh subprocess.

    Args:
        model (str): Model YAML (path or Ultralytics name).
        data (str): Dataset YAML.
        project (str): Absolute Ultralytics project directory.
        name (str): Run name inside ``project`` (an existing run of that name is overwritten).
        settings (dict): ``Settings`` fields, passed to ``model.train``.

    Returns:
        (dict): ``Result`` fields except ``curve``, ``name`` and ``loop_s`` (the parent reads ``results.csv``).
    """
    from ultralytics import YOLO
    from ultralytics.utils.torch_utils import get_flops

    from ..integration.offline import provide_fonts

    provide_fonts()
    yolo = YOLO(model)
    start = time.perf_counter()
    metrics = yolo.train(data=data, project=project, name=name, exist_ok=True, pretrained=False, **settings)
    train_s = time.perf_counter() - start
    values = getattr(metrics, "results_dict", metrics) or {}  # DetMetrics of the final validation of best.pt
    net = yolo.model  # best.pt, reloaded by train(): sized for the dataset's classes
    return dict(
        params=sum(p.numel() for p in net.parameters()),
        gflops=get_flops(net, settings["imgsz"]),
        gflops_640=get_flops(net, 640),
        map50=float(values.get("metrics/mAP50(B)", math.nan)),
        map50_95=float(values.get(MAP_COLUMN, math.nan)),
        train_s=train_s,
        rss_mib=peak_rss_mib(),  # last, after everything the run allocated
        save_dir=str(yolo.trainer.save_dir),
    )


def child_main(argv: list[str]) -> int:
    """Subprocess entry: ``argv`` is ``[spec JSON, result path]``; trains and writes the result as JSON."""
    spec, out = json.loads(argv[0]), Path(argv[1])
    out.write_text(json.dumps(train_one(**spec)))
    return 0


def read_results_csv(save_dir: Path) -> list[dict[str, str]]:
    """Rows of a run's ``results.csv`` with whitespace stripped from keys and values (older versions pad them)."""
    path = save_dir / "results.csv"
    if not path.is_file():
        return []
    with open(path, newline="") as f:
        return [{k.strip(): v.strip() for k, v in row.items()} for row in csv.DictReader(f)]


def run_model(model: str, data: str, project: Path, settings: Settings, tmp: Path) -> Result:
    """Train one model in a fresh Python subprocess and collect its measurements.

    Raises:
        RuntimeError: If the subprocess fails.
    """
    name = Path(model).stem
    out = tmp / f"{name}.json"
    spec = dict(model=model, data=data, project=str(project), name=name, settings=asdict(settings))
    print(f"\n== {name}: training in a subprocess ({settings.epochs} epochs, imgsz {settings.imgsz})", flush=True)
    proc = subprocess.run([sys.executable, "-c", CHILD, json.dumps(spec), str(out)])  # inherits YOLO_OFFLINE
    if proc.returncode != 0 or not out.is_file():
        raise RuntimeError(f"training {name} failed (exit code {proc.returncode})")
    measured = json.loads(out.read_text())
    rows = read_results_csv(Path(measured["save_dir"]))
    curve = [float(r.get(MAP_COLUMN, "nan") or "nan") for r in rows]
    loop_s = float(rows[-1].get("time", "nan")) if rows else math.nan
    return Result(name=name, loop_s=loop_s, curve=curve, **measured)


def prepare_data(data: str) -> None:
    """Resolve (and, for the embedded dataset, generate) the dataset before any timing starts."""
    from ultralytics.data.utils import check_det_dataset

    check_det_dataset(data)


def quick_dataset(root: Path) -> Path:
    """Generate a tiny detection dataset (8 train, 4 val images at 64 px) under ``root``; return its YAML."""
    from ..data.synthetic import CLASS_NAMES, generate_detection_dataset

    images = generate_detection_dataset(root / "quick-shapes", train=8, val=4, imgsz=64, seed=0)
    names = "".join(f"  {i}: {n}\n" for i, n in enumerate(CLASS_NAMES))
    path = root / "quick-shapes.yaml"
    path.write_text(f"path: {images}\ntrain: images/train\nval: images/val\nnames:\n{names}")
    return path


HEADER = ("model", "params (M)", "GFLOPs @imgsz", "GFLOPs @640", "mAP50", "mAP50-95")
HEADER += ("train (s)", "loop (s)", "peak RSS (MiB)")
CSV_HEADER = ("model", "params", "gflops_imgsz", "gflops_640", "map50", "map50_95", "train_s", "loop_s", "peak_rss_mib")
CSV_HEADER += ("save_dir",)


def ratio(a: float, b: float) -> str:
    """``a / b`` with three decimals, or empty when undefined."""
    return f"{a / b:.3f}" if b and not (math.isnan(a) or math.isnan(b)) else ""


def table_rows(results: list[Result]) -> list[list]:
    """One row per model, then one ratio row per model against the first (mAP50-95, time, memory)."""
    rows = [
        [r.name, f"{r.params / 1e6:.2f}", f"{r.gflops:.2f}", f"{r.gflops_640:.1f}"]
        + [f"{r.map50:.3f}", f"{r.map50_95:.3f}"]
        + [f"{r.train_s:.1f}", f"{r.loop_s:.1f}", f"{r.rss_mib:.0f}"]
        for r in results
    ]
    base = results[0]
    for r in results[1:]:
        rows.append(
            [f"{r.name} / {base.name}", "", "", "", "", ratio(r.map50_95, base.map50_95)]
            + [ratio(r.train_s, base.train_s), ratio(r.loop_s, base.loop_s), ratio(r.rss_mib, base.rss_mib)]
        )
    return rows


def csv_rows(results: list[Result]) -> list[list]:
    """One row per model, full precision."""
    return [
        [r.name, r.params, r.gflops, r.gflops_640, r.map50, r.map50_95, r.train_s, r.loop_s, r.rss_mib, r.save_dir]
        for r in results
    ]


def plot(results: list[Result], title: str, path: Path) -> None:
    """mAP50-95 after each epoch, one line per model."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from matplotlib.ticker import MaxNLocator

    fig, ax = plt.subplots(figsize=(7, 4))
    for r in results:
        ax.plot(range(1, len(r.curve) + 1), r.curve, marker="o", label=r.name)
    ax.set_xlim(0.5, max(len(r.curve) for r in results) + 0.5)
    ax.xaxis.set_major_locator(MaxNLocator(integer=True, min_n_ticks=1))  # whole epochs, even for one epoch
    ax.set_ylim(bottom=0)
    ax.set_xlabel("epoch")
    ax.set_ylabel("mAP50-95 (val)")
    ax.set_title(title)
    ax.grid(alpha=0.3)
    ax.legend()
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=120)
    plt.close(fig)


def add_training_arguments(p: argparse.ArgumentParser) -> None:
    """Add the training settings every training benchmark shares (``--epochs`` .. ``--quick``), defaults from
    ``Settings``; ``--epochs`` and ``--imgsz`` stay None when not given, for ``--quick`` to fill."""
    d = Settings()
    p.add_argument("--epochs", type=int, help=f"default {d.epochs} (--quick: 1)")
    p.add_argument("--imgsz", type=int, help=f"default {d.imgsz} (--quick: 64)")
    p.add_argument("--batch", type=int, default=d.batch)
    p.add_argument("--optimizer", default=d.optimizer)
    p.add_argument("--lr0", type=float, default=d.lr0)
    p.add_argument("--warmup-epochs", type=float, default=d.warmup_epochs)
    p.add_argument("--close-mosaic", type=int, default=d.close_mosaic)
    p.add_argument("--seed", type=int, default=d.seed)
    p.add_argument("--workers", type=int, default=d.workers, help="Ultralytics uses 0 on CPU whatever is set")
    p.add_argument("--deterministic", action=argparse.BooleanOptionalAction, default=d.deterministic)
    p.add_argument("--plots", action=argparse.BooleanOptionalAction, default=d.plots, help="Ultralytics' run plots")
    p.add_argument("--device", default=d.device)
    p.add_argument("--quick", action="store_true", help="smoke test: 1 epoch, imgsz 64, 8+4 generated images")


def fill_training_defaults(args: argparse.Namespace) -> None:
    """Fill ``--epochs`` and ``--imgsz`` left unset: the ``Settings`` defaults, or the ``--quick`` smoke-test ones."""
    d = Settings()
    args.epochs = args.epochs or (1 if args.quick else d.epochs)
    args.imgsz = args.imgsz or (64 if args.quick else d.imgsz)


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    """Command-line options; ``--quick`` fills epochs and imgsz only where they were not given."""
    p = argparse.ArgumentParser(prog="yolo-revcol accuracy", description=__doc__.split("\n\n")[0])
    p.add_argument("--data", help=f"dataset YAML (default cfg/{DEFAULT_DATA}; --quick: a tiny generated one)")
    p.add_argument("--models", nargs="+", default=list(DEFAULT_MODELS), help="model YAMLs; the first is the baseline")
    add_training_arguments(p)
    p.add_argument("--project", type=Path, default=Path("runs/accuracy"), help="Ultralytics project for the runs")
    p.add_argument("--out", type=Path, default=Path("results"), help="folder for accuracy_<dataset>.md/.csv/.png")
    p.add_argument("--readme", type=Path, help="also replace the <!-- accuracy:start/end --> block of this file")
    args = p.parse_args(argv)
    fill_training_defaults(args)
    if len({Path(m).stem for m in args.models}) != len(args.models):
        p.error(f"model names (YAML stems) must differ: {args.models}")
    return args


def main(argv: list[str] | None = None) -> int:
    """Train every model alike, print the table, write Markdown, CSV and PNG (and optionally the README block)."""
    os.environ.setdefault("YOLO_OFFLINE", "1")  # before Ultralytics is imported; subprocesses inherit it
    args = parse_args(argv)
    from ..integration.offline import provide_fonts

    provide_fonts()
    settings = Settings(
        **{k: getattr(args, k) for k in Settings.__dataclass_fields__}  # every field has an option of the same name
    )
    with tempfile.TemporaryDirectory(prefix="yolo_revcol_accuracy_") as tmp:
        data = str(quick_dataset(Path(tmp))) if args.quick and not args.data else args.data
        data = data or str(cfg_dir() / DEFAULT_DATA)
        data = str(Path(data).resolve()) if Path(data).is_file() else data  # else an Ultralytics dataset name
        prepare_data(data)
        stem = Path(data).stem
        project = args.project.resolve() / stem  # absolute: Ultralytics puts relative projects under runs/<task>/
        results = [run_model(resolve_model(m), data, project, settings, Path(tmp)) for m in args.models]

    rows = table_rows(results)
    table = markdown_table(HEADER, rows)
    note = (
        f"Measured by `{command_line()}` on {machine()}.\n"
        f"Dataset {stem}; from scratch, identical settings: {settings.describe()}. "
        "mAP from the final validation of best.pt; train = `model.train()` wall time, loop = Ultralytics' "
        "training-loop time (results.csv); peak RSS of each model's own training process.\n"
    )
    print("\n" + table + "\n" + note)
    out = args.out / f"accuracy_{stem}"
    out.parent.mkdir(parents=True, exist_ok=True)
    out.with_suffix(".md").write_text(note + "\n" + table)
    write_csv(out.with_suffix(".csv"), CSV_HEADER, csv_rows(results))
    plot(results, f"{stem}: mAP50-95 per epoch, imgsz {settings.imgsz}", out.with_suffix(".png"))
    print(f"wrote {out}.md, {out}.csv, {out}.png")
    if args.readme and not replace_block(args.readme, "accuracy", note + "\n" + table):
        print(f"no <!-- accuracy:start --> block in {args.readme}; left it unchanged")
    return 0


if __name__ == "__main__":
    sys.exit(main())
