"""The toolbox every ``yolo-revcol`` tool shares; tools import it and never each other.

* models: ``build_model`` (any task, RevCol registered), ``model_size``;
* timing: ``interleave`` (alternating timed runs), ``synthetic_batch``, ``train_step``, ``saved_mib``;
* child processes: ``run_child`` (a function in a fresh interpreter, JSON in and out), ``peak_rss_kib``;
* statistics: ``mean_std``, ``decide`` (the 2-standard-error rule), ``pm``, ``diff_se``, ``ratio``;
* reports: ``markdown_table``, ``write_result`` (.md, .csv, .png and README/docs blocks), ``command_line``,
  ``machine``, ``figure``.
"""

from __future__ import annotations

import contextlib
import csv
import gc
import importlib
import json
import logging
import math
import os
import platform
import re
import resource
import shlex
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path

SIGNIFICANCE = 2.0  # a difference of means counts only beyond this many standard errors
MIB = 2**20
DISTILL_FIELDS = ("distill", "dis")
# The paper's backbones (cfg/, not scaled): letter -> (YAML, the stock YOLOv8 whose neck and Detect head it writes
# out). T and S end in 128/256/512 channels as YOLOv8s's backbone and write its head; B ends in 144/288/576 and writes
# YOLOv8m's widths and repeats, only the two C2f after its concats read 288/144 where yolov8m's read 384/192
# (tests/test_bench_speed.py checks every parameter shape after SPPF).
PAPER_MODELS = {
    "t": ("revcol-t-yolov8.yaml", "yolov8s.yaml"),
    "s": ("revcol-s-yolov8.yaml", "yolov8s.yaml"),
    "b": ("revcol-b-yolov8.yaml", "yolov8m.yaml"),
}


def markdown_table(header: Sequence[str], rows: Sequence[Sequence]) -> str:
    """Render rows as a GitHub Markdown table."""
    lines = ["| " + " | ".join(map(str, header)) + " |", "|" + "|".join("---" for _ in header) + "|"]
    lines += ["| " + " | ".join(map(str, row)) + " |" for row in rows]
    return "\n".join(lines) + "\n"


def fmt(value: float | None, spec: str = ".3f", missing: str = "n/a") -> str:
    """Format a number for a Markdown table, or return ``missing`` for None and NaN (an undefined ratio)."""
    return missing if value is None or (isinstance(value, float) and math.isnan(value)) else format(value, spec)


def write_csv(path: Path, header: Sequence[str], rows: Sequence[Sequence]) -> None:
    """Write rows to a CSV file with a header line."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "w", newline="") as f:
        csv.writer(f).writerows([header, *rows])


def command_line() -> str:
    """The command that is running, as a user would retype it (paths relative to the repository when inside it)."""
    root = Path(__file__).resolve().parents[2]

    def rel(p: str) -> str:
        try:
            return str(Path(p).absolute().relative_to(root))
        except ValueError:
            return p

    script = Path(sys.argv[0])
    if script.parent.name == "bin":  # a console command such as yolo-revcol
        return shlex.join([script.name, *sys.argv[1:]])
    package = Path(__file__).resolve().parents[1]
    try:  # `python -m yolo_revcol.tools.x` sets argv[0] to the module's file: name the module, as it was typed
        module = script.resolve().relative_to(package.parent).with_suffix("")
    except ValueError:
        return shlex.join([rel(sys.executable), rel(sys.argv[0]), *sys.argv[1:]])
    parts = module.parts[:-1] if module.name == "__main__" else module.parts
    return shlex.join(["python", "-m", ".".join(parts), *sys.argv[1:]])


def machine() -> str:
    """One line on the machine, software versions, torch threads and load (timings depend on all of them)."""
    import torch
    import ultralytics

    cpu = platform.processor() or platform.machine()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    load = ", ".join(f"{v:.2f}" for v in os.getloadavg()) if hasattr(os, "getloadavg") else "n/a"
    return (
        f"{cpu}, {os.cpu_count()} cores, torch threads {torch.get_num_threads()}; Python {platform.python_version()}, "
        f"torch {torch.__version__}, ultralytics {ultralytics.__version__}; load average {load}"
    )


def replace_block(path: Path, name: str, content: str) -> bool:
    """Replace the text between ``<!-- name:start -->`` and ``<!-- name:end -->`` in ``path``; False (nothing
    written) when the markers are not there."""
    text = path.read_text()
    pattern = re.compile(rf"(<!-- {re.escape(name)}:start -->\n).*?(<!-- {re.escape(name)}:end -->)", re.S)
    if not pattern.search(text):
        return False
    path.write_text(pattern.sub(lambda m: m.group(1) + content + m.group(2), text))
    return True


def replace_blocks(paths: Path | Sequence[Path] | None, blocks: dict[str, str]) -> list[str]:
    """Replace every ``<!-- name:start/end -->`` block of ``blocks`` found in any of ``paths`` (README, docs pages);
    return the names no file holds."""
    paths = [paths] if isinstance(paths, (str, Path)) else list(paths or [])
    found = {name: False for name in blocks}
    for path in paths:
        for name, content in blocks.items():
            found[name] |= replace_block(Path(path), name, content)
    return [name for name, ok in found.items() if not ok]


def add_report_arguments(p, files: str, blocks: str, out: Path | None = Path("results")) -> None:
    """Add ``--out`` (the folder for ``files``; default ``out``) and ``--readme FILE...`` (the README and docs pages
    whose ``blocks`` are replaced) to the argparse parser ``p``."""
    p.add_argument("--out", type=Path, default=out, help=f"folder for {files}" + (f" (default {out})" if out else ""))
    p.add_argument("--readme", type=Path, nargs="+", metavar="FILE", help=f"also replace {blocks} in these files")


def offline() -> None:
    """Keep Ultralytics off the network: ``YOLO_OFFLINE`` (before Ultralytics is imported; subprocesses inherit it)
    and its fonts provided locally instead of downloaded."""
    os.environ.setdefault("YOLO_OFFLINE", "1")
    from ..integration.offline import provide_fonts

    provide_fonts()


@contextlib.contextmanager
def figure(path: Path, *grid: int, dpi: int = 120, **kwargs) -> Iterator[tuple]:
    """Draw one figure and save it: yields ``(fig, axes)`` from ``plt.subplots(*grid, **kwargs)`` (Agg backend); on
    leaving, lays the figure out, saves it to ``path`` (folders created) and closes it, also when drawing failed."""
    import matplotlib

    matplotlib.use("Agg")  # files only; no display needed
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(*grid, **kwargs)
    try:
        yield fig, axes
        fig.tight_layout()
        path.parent.mkdir(parents=True, exist_ok=True)
        fig.savefig(path, dpi=dpi)
    finally:
        plt.close(fig)


def write_result(
    stem: Path,
    text: str,
    header: Sequence[str],
    rows: Sequence[Sequence],
    plot: Callable[[Path], None] | None = None,
    readme: Path | Sequence[Path] | None = None,
    block: str | None = None,
    readme_text: str | None = None,
    echo: bool = True,
    summary: str | None = None,
) -> list[Path]:
    """Write ``<stem>.md`` (``text``), ``<stem>.csv`` (``header``, unrounded ``rows``) and, given ``plot`` (drawing
    into the path it gets), ``<stem>.png``; then replace the ``<!-- block:start/end -->`` block (``block`` defaults to
    the stem's name; content ``readme_text`` or ``text``) and, given ``summary``, the ``<block>-summary`` block,
    wherever the ``readme`` files hold them. ``echo`` prints the text. Returns the files written.
    """
    stem.parent.mkdir(parents=True, exist_ok=True)
    md, table = stem.with_name(stem.name + ".md"), stem.with_name(stem.name + ".csv")
    md.write_text(text)
    write_csv(table, header, rows)
    written = [md, table]
    if plot is not None:
        written.append(stem.with_name(stem.name + ".png"))
        plot(written[-1])
    if echo:
        print(f"\n{text}\nwrote " + ", ".join(map(str, written)))
    block = block or stem.name
    blocks = {block: text if readme_text is None else readme_text}
    if summary is not None:
        blocks[f"{block}-summary"] = summary
    if readme and block in replace_blocks(readme, blocks):
        names = readme if isinstance(readme, (str, Path)) else ", ".join(map(str, readme))
        print(f"no <!-- {block}:start --> block in {names}; left it unchanged")
    return written


# ---------------------------------------------------------------------------------------------------- statistics


def mean_std(values: Sequence[float]) -> tuple[float, float]:
    """Mean and sample standard deviation (0 for a single value)."""
    return statistics.fmean(values), statistics.stdev(values) if len(values) > 1 else 0.0


def decide(variant: Sequence[float], baseline: Sequence[float], k: float = SIGNIFICANCE) -> tuple[float, float, str]:
    """The decision rule: is ``variant`` better than ``baseline`` (per-seed scores, higher is better)?

    The difference of means counts only beyond ``k`` standard errors, ``sqrt(s_v^2 / n_v + s_b^2 / n_b)``; with
    fewer than two seeds on either side nothing is decided.

    Returns:
        (tuple[float, float, str]): Difference of means, its standard error, and "better", "worse",
            "no difference" or "n/a" (too few seeds).
    """
    (mv, sv), (mb, sb) = mean_std(variant), mean_std(baseline)
    diff = mv - mb
    if len(variant) < 2 or len(baseline) < 2:
        return diff, math.nan, "n/a"
    se = math.sqrt(sv**2 / len(variant) + sb**2 / len(baseline))
    if abs(diff) > k * se:
        return diff, se, "better" if diff > 0 else "worse"
    return diff, se, "no difference"


def ratio(a: float, b: float) -> str:
    """``a / b`` with three decimals, or empty when undefined."""
    return f"{a / b:.3f}" if b and not (math.isnan(a) or math.isnan(b)) else ""


def pm(values: Sequence[float]) -> str:
    """``mean ± std`` with three decimals; a single value alone (one seed has no spread to show)."""
    m, s = mean_std(values)
    return f"{m:.3f} ± {s:.3f}" if len(values) > 1 else f"{m:.3f}"


def diff_se(diff: float, se: float) -> str:
    """``difference ± SE`` with three decimals; the difference alone where the SE is undefined (one seed)."""
    return f"{diff:+.3f}" if math.isnan(se) else f"{diff:+.3f} ± {se:.3f}"


# -------------------------------------------------------------------------------------------------------- models


@contextlib.contextmanager
def quiet_ultralytics() -> Iterator[None]:
    """Silence Ultralytics' logger (ClassificationModel prints its summary even with verbose=False)."""
    from ultralytics.utils import LOGGER

    level = LOGGER.level
    LOGGER.setLevel(logging.WARNING)
    try:
        yield
    finally:
        LOGGER.setLevel(level)


def build_model(cfg: str | Path | dict, train: bool = False, nc: int | None = None):
    """Build a model (no weights) from a YAML (its scale letter picks the scale) or model dictionary with the class of
    its task, RevCol registered; ``model.task`` names the task. ``train``: train mode with Ultralytics' default
    hyperparameters as ``model.args`` (the loss reads its gains there), else eval mode; ``nc``: number of classes.
    """
    from ultralytics.cfg import get_cfg
    from ultralytics.nn import tasks

    from ..integration.register import register

    register()
    classes = dict(
        detect=tasks.DetectionModel,
        segment=tasks.SegmentationModel,
        pose=tasks.PoseModel,
        obb=tasks.OBBModel,
        classify=tasks.ClassificationModel,
    )
    d = cfg if isinstance(cfg, dict) else tasks.yaml_model_load(cfg)
    task = tasks.guess_model_task(d)
    with quiet_ultralytics():
        model = classes[task](d, nc=nc, verbose=False)
    model.task = task
    if train:
        model.args = get_cfg()
        return model.train()
    return model.eval()


def drop_training_heads(model) -> int:
    """Make ``model`` its inference model in place: drop RevCol's training-only ``aux``/``recon`` heads; return
    their params (0 without RevCol)."""
    from ..integration.aux import revcol_of

    revcol = revcol_of(model)
    return revcol.drop_aux_heads() if revcol is not None else 0


def inference_size(model, imgsz: int = 640) -> tuple[int, float, int]:
    """Params and GFLOPs at ``imgsz`` of ``model`` as an inference model (``drop_training_heads``, in place); the
    dropped heads' params third."""
    from ultralytics.utils.torch_utils import get_flops

    train_only = drop_training_heads(model)
    return sum(p.numel() for p in model.parameters()), get_flops(model, imgsz), train_only


def model_size(cfg: str | Path | dict, imgsz: int = 640) -> tuple[int, float, int]:
    """``inference_size`` of the model ``cfg`` builds (no weights)."""
    return inference_size(build_model(cfg), imgsz)


# -------------------------------------------------------------------------------------------------------- timing


def interleave(
    fns: dict[str, Callable[[], object]], rounds: int, runs: int, warmup: int, threads: int
) -> dict[str, list[float]]:
    """Time several callables alternately: ``warmup`` untimed calls each, then ``rounds`` rounds of ``runs``
    consecutive calls of every callable, the order rotated per round (nobody always runs first).

    Returns:
        (dict[str, list[float]]): Name -> the ``rounds * runs`` call times in milliseconds.
    """
    import torch

    torch.set_num_threads(threads)  # again: Ultralytics' exporter (select_device) resets it to cores - 1
    names = list(fns)
    for name in names:
        for _ in range(warmup):
            fns[name]()
    times: dict[str, list[float]] = {name: [] for name in names}
    for r in range(rounds):
        for name in names[r % len(names) :] + names[: r % len(names)]:
            gc.collect()  # a collection inside a timed run would charge one model for the others' garbage
            for _ in range(runs):
                start = time.perf_counter()
                fns[name]()
                times[name].append((time.perf_counter() - start) * 1e3)
    return times


def synthetic_batch(batch: int, imgsz: int, nc: int = 80, boxes: int = 4, seed: int = 0) -> dict:
    """A training batch in Ultralytics' collated format: random images and ``boxes`` random labels per image.

    Returns:
        (dict): ``img`` (B, 3, H, W) in [0, 1], ``batch_idx`` (N,), ``cls`` (N, 1), ``bboxes`` (N, 4) normalized xywh.
    """
    import torch

    g = torch.Generator().manual_seed(seed)
    n = batch * boxes
    wh = 0.05 + 0.45 * torch.rand(n, 2, generator=g)  # 5-50 % of the image side
    xy = wh / 2 + (1 - wh) * torch.rand(n, 2, generator=g)  # box inside the image
    return dict(
        img=torch.rand(batch, 3, imgsz, imgsz, generator=g),
        batch_idx=torch.arange(batch).repeat_interleave(boxes).float(),
        cls=torch.randint(0, nc, (n, 1), generator=g).float(),
        bboxes=torch.cat([xy, wh], 1),
    )


def train_step(model, batch: dict, reversible: bool | None = None) -> Callable[[], None]:
    """One training step of ``model`` (``build_model(..., train=True)``) on ``batch`` as a callable: zero grads,
    forward, Ultralytics' loss, backward, no optimizer step. ``reversible`` (RevCol models) is set on every call, so
    one model serves both training paths with identical weights.
    """

    def step() -> None:
        if reversible is not None:
            model.model[0].reversible = reversible
        model.zero_grad(set_to_none=True)
        loss, _ = model.loss(batch)
        loss.sum().backward()  # the trainer's backward: the loss is (box, cls, dfl) times batch size

    return step


def saved_mib(model, forward: Callable[[], object]) -> float:
    """MiB that ``forward()`` saves for backward: distinct storages, parameters and buffers excluded.

    No reference to a saved tensor is kept, so a storage freed during the forward and its address reused counts once:
    what is still held when the forward returns.
    """
    import torch

    exclude = {t.untyped_storage().data_ptr() for t in [*model.parameters(), *model.buffers()]}
    seen: dict[int, int] = {}

    def pack(t: torch.Tensor) -> torch.Tensor:
        storage = t.untyped_storage()
        if storage.data_ptr() not in exclude:
            seen[storage.data_ptr()] = storage.nbytes()
        return t

    with torch.autograd.graph.saved_tensors_hooks(pack, lambda t: t):
        out = forward()
    del out
    return sum(seen.values()) / MIB


# ----------------------------------------------------------------------------------------------- child processes

# glibc otherwise raises its mmap threshold after the first large free and keeps later tensors in the heap, where
# freed memory is not returned to the OS: RSS would carry a warm-up's leftovers. With a fixed threshold every tensor
# >= 128 KiB is its own mapping, released on free, so RSS follows live memory. (An explicit environment wins.)
MALLOC_ENV = {"MALLOC_MMAP_THRESHOLD_": "131072"}
_CHILD = "import sys; from yolo_revcol.tools.toolbox import child_main; sys.exit(child_main(sys.argv[1:]))"


def run_child(function: str, spec: dict, env: dict | None = None, capture: bool = False) -> dict:
    """Call ``function`` (``"package.module:name"``) with ``**spec`` in a fresh Python process and return its result
    (JSON both ways). The process inherits this environment updated by ``env``; with ``capture`` its output is kept and
    shown only on failure (``RuntimeError``).
    """
    with tempfile.TemporaryDirectory(prefix="yolo_revcol_child_") as tmp:
        out = Path(tmp) / "result.json"
        proc = subprocess.run(
            [sys.executable, "-c", _CHILD, function, json.dumps(spec), str(out)],
            capture_output=capture,
            text=True,
            env={**os.environ, **(env or {})},
        )
        if proc.returncode != 0 or not out.is_file():
            detail = f":\n{proc.stdout}\n{proc.stderr}" if capture else ""
            raise RuntimeError(f"{function} failed in a subprocess (exit code {proc.returncode}){detail}")
        return json.loads(out.read_text())


def child_main(argv: list[str]) -> int:
    """Subprocess entry of ``run_child``: ``argv`` is ``[function, spec JSON, result path]``."""
    module, name = argv[0].split(":")
    result = getattr(importlib.import_module(module), name)(**json.loads(argv[1]))
    Path(argv[2]).write_text(json.dumps(result))
    return 0


def reset_peak_rss() -> bool:
    """Reset this process's RSS high-water mark to its current RSS (Linux ``/proc/self/clear_refs``); True if done."""
    try:
        with open("/proc/self/clear_refs", "w") as f:
            f.write("5")
        return True
    except OSError:
        return False


def peak_rss_kib(children: bool = False) -> int:
    """Peak RSS in KiB: this address space's high-water mark (``VmHWM``, which ``reset_peak_rss`` resets), or with
    ``children`` the larger of ``ru_maxrss`` for this process and the children it waited for (DataLoader workers).

    ``ru_maxrss`` alone would not do for small measurements: ``exec`` seeds it from the parent's memory at fork time.
    Where ``/proc`` cannot be read, ``ru_maxrss`` stands in.
    """
    who = (resource.RUSAGE_SELF, resource.RUSAGE_CHILDREN) if children else (resource.RUSAGE_SELF,)
    ru = max(resource.getrusage(w).ru_maxrss for w in who) // (1024 if sys.platform == "darwin" else 1)
    if children:
        return ru
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1])
    except OSError:
        pass
    return ru


# ------------------------------------------------------------------------------------------- training recipe


@dataclass
class Settings:
    """The benchmarks' training recipe (Ultralytics ``train`` arguments): Ultralytics' own warm-up, mosaic,
    augmentation and loss weights at the schedule calibrated for revcol-shapes on CPU, with AdamW at lr0 0.002
    (``optimizer=auto`` picks 0.000833 for 8 classes, too slow for runs this short).
    """

    epochs: int = 40
    imgsz: int = 160
    batch: int = 16
    optimizer: str = "AdamW"
    lr0: float = 0.002
    warmup_epochs: float = 3.0
    close_mosaic: int = 10
    seed: int = 0
    workers: int = 2
    deterministic: bool = True
    plots: bool = False
    device: str = "cpu"
    # Knowledge distillation (Ultralytics' ``distill_model``): the teacher's run (``ledger_path`` stem) and the loss
    # weight ``dis``. At their defaults (no teacher) they are left out of a run's identity, so runs from before they
    # existed keep their keys.
    distill: str = ""
    dis: float = 6.0

    def describe(self) -> str:
        """One line listing every setting but the seed and the per-model distillation, for the report header."""
        return ", ".join(f"{k} {v}" for k, v in asdict(self).items() if k not in ("seed", *DISTILL_FIELDS))

    def identity(self) -> dict:
        """The settings that make a run what it is: every field, the distillation ones only when a teacher is set."""
        d = asdict(self)
        return d if self.distill else {k: v for k, v in d.items() if k not in DISTILL_FIELDS}
