"""Memory, reconstruction-error and step-time benchmark of RevCol's reversible path (CPU).

Compares three ways of training the same RevCol backbone, for each block family (``--blocks``; by default ``c2f``,
the block the shipped YAMLs use, and ``convnext``, the paper's block and ``RevCol``'s class default):

* ``reversible``: ``RevCol(reversible=True)``, the custom autograd function that keeps only the stem output and the
  last column's states and reconstructs the rest during backward;
* ``plain``: ``RevCol(reversible=False)``, ordinary autograd keeping every activation;
* ``checkpoint``: the stem, then every column under ``torch.utils.checkpoint.checkpoint(use_reentrant=False)``.

Sections: (1) bytes saved for backward (``saved_tensors_hooks``) and peak RSS (one fresh subprocess per
configuration), (2) the reverse pass's reconstruction error against the true forward activations, in float32 and
under CPU bfloat16 autocast, with default and trained-looking weights, and what it does to the parameter gradients
(reversible vs plain), (3) the training-step time of each mode relative to ``plain``. Every reversible model is built
with an explicit ``checkpoint_every`` (K; 0 unless a table says otherwise), not the class default "auto". Writes
``memory.md``, ``memory.csv`` (one measurement per row) and ``memory.png`` into ``--out`` and prints the tables.

Examples:
    yolo-revcol memory                      # full run, several minutes on 2 cores
    yolo-revcol memory --quick              # tiny sizes, smoke test, temporary output folder
    yolo-revcol memory --readme README.md   # also replace the <!-- memory:start/end --> block
"""

from __future__ import annotations

import argparse
import copy
import gc
import inspect
import json
import math
import os
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path

import torch
import yaml
from torch import nn
from torch.utils.checkpoint import checkpoint

from ..nn import ChannelScale, RevCol, ReversibleScale, reconstruct_states
from ..nn.reversible import auto_checkpoint_every
from ..paths import cfg_dir
from .bench_speed import interleave
from .report import command_line, figure, fmt, machine, markdown_table, write_result

MODES = ("reversible", "plain", "checkpoint")
MIB = 2**20
TARGET_REV_GROWTH = 1.25  # saved bytes: reversible(8 columns) / reversible(2 columns) must not exceed this
TARGET_REV_VS_PLAIN = 0.10  # saved bytes: reversible(4 columns) / plain(4 columns) must not exceed this
# glibc otherwise raises its mmap threshold after the first large free and keeps later tensors in the heap, where
# freed memory is not returned to the OS: RSS would then carry the warm-up's leftovers. A fixed threshold makes every
# tensor >= 128 KiB its own mapping, released on free, so RSS follows live memory. (An explicit environment wins.)
MALLOC_ENV = {"MALLOC_MMAP_THRESHOLD_": "131072"}
# The RSS subprocess entry point: measures one configuration from a JSON spec and writes a JSON result.
RSS_CHILD = (
    "import sys; from yolo_revcol.tools.bench_memory import rss_child_main; sys.exit(rss_child_main(sys.argv[1:]))"
)
CSV_KEYS = ("section", "block", "mode", "columns", "weights", "dtype", "checkpoint_every", "column", "rep", "metric")
CSV_KEYS += ("value",)


@dataclass
class BenchConfig:
    """Sizes and grids of the benchmark (all settable from the command line).

    Attributes:
        blocks (list[str]): Block families to measure, each through every section.
        channels (list[int]): Channels of the four levels.
        layers (list[int]): Blocks per level.
        batch (int): Batch size.
        imgsz (int): Square input side, a multiple of 32.
        kernel (int): Spatial kernel size of the blocks.
        mlp_ratio (float): MLP expansion ratio (convnext only; c2f blocks have none).
        mem_columns (list[int]): Column counts for saved bytes.
        mem_every (list[int]): Extra ``checkpoint_every`` values of the reversible mode in the saved-bytes table.
        rss_columns (list[int]): Column counts for peak RSS (one subprocess per count and mode).
        rec_columns (list[int]): Column counts for the reconstruction error.
        rec_every (list[int]): ``checkpoint_every`` values emulated in the reconstruction error (0: none).
        grad_columns (list[int]): Column counts for the gradient check (reversible vs plain gradients).
        time_columns (list[int]): Column counts for the step-time ratios.
        reps (int): Timed repetitions per mode (after ``warmup``), interleaved across modes.
        warmup (int): Untimed steps per mode before timing.
        gamma (float): Layer-scale value of the trained-looking weights (convnext).
        gamma_noise (float): Relative Gaussian perturbation of that value.
        alpha_range (list[float]): Range of |alpha| for the trained-looking weights (sign kept).
        seed (int): Seed of weights and inputs.
        threads (int): ``torch.set_num_threads`` value for this process and the RSS workers (0: torch's default).
    """

    blocks: list[str] = field(default_factory=lambda: ["c2f", "convnext"])
    channels: list[int] = field(default_factory=lambda: [32, 64, 128, 256])
    layers: list[int] = field(default_factory=lambda: [1, 1, 3, 1])
    batch: int = 4
    imgsz: int = 256
    kernel: int = 3
    mlp_ratio: float = 4.0
    mem_columns: list[int] = field(default_factory=lambda: [1, 2, 4, 8])
    mem_every: list[int] = field(default_factory=lambda: [1, 2, 4])
    rss_columns: list[int] = field(default_factory=lambda: [1, 2, 4, 8])
    rec_columns: list[int] = field(default_factory=lambda: [2, 4, 8, 16])
    rec_every: list[int] = field(default_factory=lambda: [0, 2, 4])
    grad_columns: list[int] = field(default_factory=lambda: [2, 4, 8])
    time_columns: list[int] = field(default_factory=lambda: [2, 4, 8])
    reps: int = 7
    warmup: int = 1
    gamma: float = 1.0
    gamma_noise: float = 0.1
    alpha_range: list[float] = field(default_factory=lambda: [0.1, 1.0])
    seed: int = 0
    threads: int = 0


QUICK = dict(
    channels=[8, 16, 24, 32],
    layers=[1, 1, 1, 1],
    batch=1,
    imgsz=64,
    mlp_ratio=2.0,
    mem_columns=[1, 2, 4, 8],
    rss_columns=[2],
    rec_columns=[2, 4],
    rec_every=[0, 2],
    mem_every=[2],
    grad_columns=[2, 4],
    time_columns=[2],
    reps=2,
    warmup=1,
    threads=1,  # tiny ops gain nothing from threads, and one thread does not stall when the cores are busy
)


@dataclass
class Section:
    """One section of the report.

    Attributes:
        markdown (str): Its Markdown (headings, method notes, tables).
        records (list[dict]): One dict per measurement, keys from ``CSV_KEYS``, values unrounded.
        data (dict): The measurements by configuration, for the figure, the README block and the checks.
    """

    markdown: str
    records: list[dict]
    data: dict


def shipped_block() -> str:
    """The block family of the shipped ``cfg/yolov8-revcol.yaml`` (its RevCol row's ``block`` option)."""
    row = yaml.safe_load((cfg_dir() / "yolov8-revcol.yaml").read_text())["backbone"][0]
    options = row[3][3] if len(row[3]) > 3 and isinstance(row[3][3], dict) else {}
    return options.get("block", "convnext")


def block_label(block: str) -> str:
    """A block family's name and its role: the shipped YAMLs' block and/or RevCol's class default."""
    default = inspect.signature(RevCol).parameters["block"].default
    roles = [r for r, yes in (("shipped YAMLs", block == shipped_block()), ("class default", block == default)) if yes]
    return f"{block} ({', '.join(roles)})" if roles else block


# ---------------------------------------------------------------------------------------------------------------
# Models
# ---------------------------------------------------------------------------------------------------------------


class CheckpointedRevCol(nn.Module):
    """Run a RevCol's stem, then each column under non-reentrant activation checkpointing.

    The wrapped model's own ``reversible`` flag is turned off; the stem keeps its activations, each column stores
    only its inputs (the stem output and the previous column's states) and is recomputed during backward.

    Args:
        model (RevCol): The backbone whose stem and columns are run.
    """

    def __init__(self, model: RevCol):
        """Wrap ``model`` (its reversible path is disabled)."""
        super().__init__()
        model.reversible = False
        self.model = model

    def forward(self, x: torch.Tensor) -> list[torch.Tensor]:
        """Return the last column's four states, like ``RevCol.forward``."""
        x = self.model.stem(x).to(self.model.stem.weight.dtype)
        states: list[torch.Tensor] = []
        for column in self.model.columns:
            # The previous states go in as separate tensor arguments: checkpoint saves top-level tensor arguments
            # as saved tensors (through the saved-tensor hooks), but keeps a list argument as a plain Python
            # reference the hooks never see, although it pins the same memory.
            states = checkpoint(self._run_column, column, x, *states, use_reentrant=False)
        return states

    @staticmethod
    def _run_column(column: nn.Module, x: torch.Tensor, *prev: torch.Tensor) -> list[torch.Tensor]:
        """Call ``column`` with the previous states unpacked (None for the first column)."""
        return column(x, list(prev) if prev else None)


def build_model(
    cfg: BenchConfig, block: str, columns: int, mode: str, seed: int | None = None, every: int = 0
) -> nn.Module:
    """Build a RevCol of one block family with ``columns`` columns, run as ``mode``, in training mode.

    Args:
        cfg (BenchConfig): Sizes.
        block (str): Block family, "c2f" or "convnext".
        columns (int): Number of columns.
        mode (str): One of ``MODES``.
        seed (int | None): Seed for the weights; ``cfg.seed`` when None.
        every (int): ``checkpoint_every`` of the model (used by the reversible mode only); explicit, so that the
            class default "auto" never chooses for the benchmark.

    Returns:
        (nn.Module): The model; for ``checkpoint`` a ``CheckpointedRevCol``.
    """
    if mode not in MODES:
        raise ValueError(f"unknown mode {mode!r}, expected one of {MODES}")
    torch.manual_seed(cfg.seed if seed is None else seed)
    options = dict(mlp_ratio=cfg.mlp_ratio) if block == "convnext" else {}  # c2f blocks take no MLP ratio
    model = RevCol(
        3,
        cfg.channels,
        cfg.layers,
        columns,
        kernel=cfg.kernel,
        reversible=mode == "reversible",
        checkpoint_every=every,
        block=block,
        **options,
    )
    return (CheckpointedRevCol(model) if mode == "checkpoint" else model).train()


def make_input(cfg: BenchConfig) -> torch.Tensor:
    """Return a reproducible random image batch (batch, 3, imgsz, imgsz)."""
    g = torch.Generator().manual_seed(cfg.seed + 1)
    return torch.randn(cfg.batch, 3, cfg.imgsz, cfg.imgsz, generator=g)


def loss_of(outputs: Sequence[torch.Tensor]) -> torch.Tensor:
    """A scalar that reaches all four outputs and saves nothing itself (means)."""
    return sum(o.float().mean() for o in outputs)


def set_trained_like(model: nn.Module, cfg: BenchConfig, seed: int) -> None:
    """Give the model weights that look trained, for a non-trivial reconstruction problem.

    Every alpha gets a magnitude drawn uniformly from ``cfg.alpha_range`` with its sign kept (alphas are initialised
    to +0.5, so they stay positive). Every convnext block's layer scale becomes ``gamma * (1 + gamma_noise * N(0, 1))``
    per channel (its init, 1e-6, makes every level body almost the identity); c2f blocks have no layer scale.

    Args:
        model (nn.Module): A RevCol (modified in place).
        cfg (BenchConfig): ``gamma``, ``gamma_noise`` and ``alpha_range``.
        seed (int): Seed of the draws.
    """
    g = torch.Generator().manual_seed(seed)
    lo, hi = cfg.alpha_range
    with torch.no_grad():
        for m in model.modules():
            if isinstance(m, ReversibleScale):  # tested first: alphas may be ChannelScales too
                magnitude = torch.empty(m.weight.shape).uniform_(lo, hi, generator=g)
                m.weight.copy_(torch.where(m.weight < 0, -magnitude, magnitude))
            elif isinstance(m, ChannelScale):
                m.weight.copy_(cfg.gamma * (1.0 + cfg.gamma_noise * torch.randn(m.weight.shape, generator=g)))


# ---------------------------------------------------------------------------------------------------------------
# 1. Memory
# ---------------------------------------------------------------------------------------------------------------


class SavedTensorCounter:
    """Context manager that records what autograd saves for backward, counting each storage once.

    Every tensor packed by ``torch.autograd.graph.saved_tensors_hooks`` inside the context is keyed by its
    untyped storage's ``data_ptr`` and charged that storage's full ``nbytes``. Storage keying is chosen over
    ``(tensor.data_ptr(), tensor.nbytes)`` because it measures the memory a saved tensor actually keeps alive:
    a saved view pins its whole storage, and several views or re-saves of one buffer (an op's input that is
    also another op's output, ``x.float()`` returning ``x`` itself, an expanded parameter) would otherwise be
    counted several times or only in part. Storages of the excluded tensors (the model's parameters and
    buffers, resident anyway) are tallied separately. Saved tensors are referenced until ``__exit__`` so no
    address can be freed and reused by another storage while counting.

    Only tensors that pass through the hooks are seen: with non-reentrant checkpointing that is each checkpointed
    call's inputs (its inner saves go to checkpoint's own, innermost hooks and are dropped).

    Args:
        exclude (Iterable[torch.Tensor]): Tensors whose storages are reported as ``excluded_bytes`` instead.

    Attributes:
        storages (dict[int, tuple[int, tuple, torch.dtype]]): data_ptr -> (nbytes, first saved shape, dtype).
        excluded (dict[int, int]): data_ptr -> nbytes of excluded storages that were saved.
        packs (int): Number of pack calls (saved tensors, duplicates included).
    """

    def __init__(self, exclude: Iterable[torch.Tensor] = ()):
        """Remember the storages to exclude."""
        self._exclude = {t.untyped_storage().data_ptr() for t in exclude}
        self.storages: dict[int, tuple[int, tuple, torch.dtype]] = {}
        self.excluded: dict[int, int] = {}
        self.packs = 0
        self._refs: list[torch.Tensor] = []
        self._hooks = None

    def _pack(self, t: torch.Tensor) -> torch.Tensor:
        """Record ``t``'s storage and return ``t`` unchanged."""
        self.packs += 1
        storage = t.untyped_storage()
        ptr = storage.data_ptr()
        if ptr in self._exclude:
            self.excluded[ptr] = storage.nbytes()
        elif ptr not in self.storages:
            self.storages[ptr] = (storage.nbytes(), tuple(t.shape), t.dtype)
        self._refs.append(t)
        return t

    def __enter__(self) -> SavedTensorCounter:
        """Install the hooks."""
        self._hooks = torch.autograd.graph.saved_tensors_hooks(self._pack, lambda t: t)
        self._hooks.__enter__()
        return self

    def __exit__(self, *exc) -> None:
        """Remove the hooks and drop the references."""
        self._hooks.__exit__(*exc)
        self._refs.clear()

    @property
    def nbytes(self) -> int:
        """Distinct bytes saved, excluded storages not included."""
        return sum(n for n, _, _ in self.storages.values())

    @property
    def excluded_bytes(self) -> int:
        """Distinct bytes of excluded storages (parameters) that were saved."""
        return sum(self.excluded.values())

    def breakdown(self) -> list[tuple[str, str, int, float]]:
        """Return (shape, dtype, count, MiB) rows grouping the counted storages by shape and dtype, largest first."""
        groups: dict[tuple[tuple, torch.dtype], list[int]] = {}
        for n, shape, dtype in self.storages.values():
            groups.setdefault((shape, dtype), []).append(n)
        rows = [(str(list(s)), str(d).replace("torch.", ""), len(v), sum(v) / MIB) for (s, d), v in groups.items()]
        return sorted(rows, key=lambda r: -r[3])


def measure_saved(cfg: BenchConfig, block: str, columns: int, mode: str, every: int = 0) -> SavedTensorCounter:
    """Count what one training-mode forward of the whole model saves for backward.

    Args:
        cfg (BenchConfig): Sizes.
        block (str): Block family.
        columns (int): Number of columns.
        mode (str): One of ``MODES``.
        every (int): ``checkpoint_every`` (reversible mode only).

    Returns:
        (SavedTensorCounter): The filled counter (its references already dropped).
    """
    model, x = build_model(cfg, block, columns, mode, every=every), make_input(cfg)
    with SavedTensorCounter(exclude=[*model.parameters(), *model.buffers()]) as counter:
        out = model(x)
    del out  # the graph (and the saved tensors) lived through the count
    return counter


def _reset_peak_rss() -> bool:
    """Reset the kernel's RSS high-water mark to the current RSS (Linux ``/proc/self/clear_refs``); True if done.

    Without the reset, the peak of importing torch (hundreds of MiB) would hide small configurations.
    """
    try:
        with open("/proc/self/clear_refs", "w") as f:
            f.write("5")
        return True
    except OSError:
        return False


def _peak_rss_kib() -> tuple[int, int]:
    """Return (this address space's RSS high-water mark, ``ru_maxrss``), both in KiB (Linux).

    ``getrusage(RUSAGE_SELF).ru_maxrss`` is the larger of the address space's high-water mark and a per-process
    maximum that ``exec`` sets from the *parent's* memory at fork time, so a worker started by a large parent
    reports at least the parent's RSS. The first value is the high-water mark alone (``VmHWM`` in
    ``/proc/self/status``, what ``clear_refs`` resets); where it cannot be read, ``ru_maxrss`` stands in for it.
    """
    ru = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]), ru
    except OSError:
        pass
    return ru, ru


def rss_worker(spec: dict) -> dict:
    """Subprocess body: build one configuration, warm up, run forward+backward once more, report peak RSS.

    The high-water mark covers the whole process, which is why each configuration gets its own process; it is
    also reset (where Linux allows) before the warm-up and again before the measured step.

    Args:
        spec (dict): ``{"cfg": asdict(BenchConfig), "block": str, "columns": int, "mode": str}``.

    Returns:
        (dict): KiB values ``base`` (RSS after building model and input), ``warm`` (peak of the warm-up step,
            which also allocates the ``.grad`` buffers), ``before`` (RSS before the measured step, gradients
            allocated) and ``peak`` (peak of the measured step), each also as ``ru_<name>`` read from
            ``ru_maxrss``; ``grad_bytes``; ``reset`` (whether the high-water mark could be reset; if not,
            ``base``/``before`` are the running maximum instead).
    """
    cfg = BenchConfig(**spec["cfg"])
    if cfg.threads:
        torch.set_num_threads(cfg.threads)
    model, x = build_model(cfg, spec["block"], spec["columns"], spec["mode"]), make_input(cfg)
    gc.collect()
    out = {}
    reset = _reset_peak_rss()
    out["base"], out["ru_base"] = _peak_rss_kib()
    loss_of(model(x)).backward()  # warm-up
    out["warm"], out["ru_warm"] = _peak_rss_kib()
    model.zero_grad(set_to_none=False)  # keep the gradient buffers: the measured step does not allocate them
    gc.collect()
    reset = _reset_peak_rss() and reset
    out["before"], out["ru_before"] = _peak_rss_kib()
    loss_of(model(x)).backward()
    out["peak"], out["ru_peak"] = _peak_rss_kib()
    out["grad_bytes"] = sum(p.grad.nbytes for p in model.parameters() if p.grad is not None)
    out["reset"] = reset
    return out


def rss_child_main(argv: list[str]) -> int:
    """Subprocess entry: ``argv`` is ``[spec JSON, result path]``; measures and writes the result as JSON."""
    Path(argv[1]).write_text(json.dumps(rss_worker(json.loads(argv[0]))))
    return 0


def measure_rss(cfg: BenchConfig, block: str, columns: int, mode: str) -> dict:
    """Run ``rss_worker`` in a fresh interpreter (started through ``RSS_CHILD``) and return its result.

    Args:
        cfg (BenchConfig): Sizes.
        block (str): Block family.
        columns (int): Number of columns.
        mode (str): One of ``MODES``.

    Returns:
        (dict): The worker's result.

    Raises:
        RuntimeError: If the subprocess fails.
    """
    spec = json.dumps(dict(cfg=asdict(cfg), block=block, columns=columns, mode=mode))
    with tempfile.TemporaryDirectory(prefix="yolo_revcol_rss_") as tmp:
        out = Path(tmp) / "rss.json"
        proc = subprocess.run(
            [sys.executable, "-c", RSS_CHILD, spec, str(out)],
            capture_output=True,
            text=True,
            check=False,
            env={**MALLOC_ENV, **os.environ},
        )
        if proc.returncode != 0 or not out.is_file():
            raise RuntimeError(f"RSS worker ({block}, {mode}, {columns} columns) failed:\n{proc.stdout}\n{proc.stderr}")
        return json.loads(out.read_text())


# ---------------------------------------------------------------------------------------------------------------
# 2. Reconstruction error
# ---------------------------------------------------------------------------------------------------------------


@torch.no_grad()
def true_states(model: RevCol, img: torch.Tensor) -> tuple[torch.Tensor, list[list[torch.Tensor]]]:
    """Run the plain forward (call in eval mode) and return the stem output and every column's four states."""
    x = model.stem(img).to(model.stem.weight.dtype)
    states, every = None, []
    for column in model.columns:
        states = column(x, states)
        every.append(states)
    return x, every


@torch.no_grad()
def reconstruct_with_checkpoints(
    columns: Sequence[nn.Module], x: torch.Tensor, exact: Sequence[Sequence[torch.Tensor]], every: int
) -> list[list[torch.Tensor]]:
    """Reconstruct all columns' states as the reverse pass does with ``checkpoint_every=every``.

    The reverse pass restarts from exact values at the last column and at every column k (0-based) with
    ``(k + 1) % every == 0``; between two such anchors it reconstructs backwards. Each segment is handed to
    ``reconstruct_states`` as a slice of the columns whose first entry is the column right after the previous
    anchor (that column's module is not used; only its states are recovered).

    Args:
        columns (Sequence[nn.Module]): All columns.
        x (torch.Tensor): Stem output.
        exact (Sequence[Sequence[torch.Tensor]]): True states of every column (only anchors are read).
        every (int): Checkpoint interval, 0 for none.

    Returns:
        (list[list[torch.Tensor]]): Reconstructed states of every column (anchors exact).
    """
    n = len(columns)
    anchors = sorted({n - 1} | ({k for k in range(n - 1) if (k + 1) % every == 0} if every else set()))
    result, start = [], 0
    for a in anchors:
        result.extend(reconstruct_states(columns[start : a + 1], x, exact[a]))
        start = a + 1
    return result


def relative_error(rec: torch.Tensor, true: torch.Tensor) -> float:
    """Return ||rec - true|| / ||true|| computed in float64."""
    true = true.double()
    return float((rec.double() - true).norm() / true.norm().clamp_min(1e-300))


def column_errors(rec: Sequence[Sequence[torch.Tensor]], true: Sequence[Sequence[torch.Tensor]]) -> list[float]:
    """Per column, the worst relative error over its four levels."""
    return [max(relative_error(r, t) for r, t in zip(rc, tc)) for rc, tc in zip(rec, true)]


def measure_reconstruction(
    cfg: BenchConfig, block: str, columns: int, weights: str, dtype: str
) -> dict[int, list[float]]:
    """Reconstruction error of every column for each ``cfg.rec_every`` value.

    Args:
        cfg (BenchConfig): Sizes and trained-like weight settings.
        block (str): Block family.
        columns (int): Number of columns.
        weights (str): ``default`` (init: layer scale 1e-6, alpha 0.5) or ``trained-like``.
        dtype (str): ``float32`` or ``bf16-autocast`` (forward and reconstruction both under CPU autocast).

    Returns:
        (dict[int, list[float]]): checkpoint_every -> per-column worst-level relative error (first column first).
    """
    model = build_model(cfg, block, columns, "plain").eval()  # eval: DropPath off (it is 0 anyway)
    if weights == "trained-like":
        set_trained_like(model, cfg, cfg.seed + 2)
    img = make_input(cfg)
    autocast = torch.autocast("cpu", dtype=torch.bfloat16, enabled=dtype == "bf16-autocast")
    out = {}
    with autocast:
        x, exact = true_states(model, img)
        for every in cfg.rec_every:
            if every and every >= columns:
                continue
            out[every] = column_errors(reconstruct_with_checkpoints(model.columns, x, exact, every), exact)
    return out


def measure_gradient_error(
    cfg: BenchConfig, block: str, columns: int, weights: str, dtype: str, every: int
) -> tuple[float, float]:
    """Relative error of the reversible path's parameter gradients against plain autograd on the same model.

    Both runs use the same weights, input, dtype setting and a loss that weights every output element with a fixed
    random factor, so the only difference is that the reversible path recomputes from reconstructed states.

    Args:
        cfg (BenchConfig): Sizes and trained-like weight settings.
        block (str): Block family.
        columns (int): Number of columns.
        weights (str): ``default`` or ``trained-like`` (see ``measure_reconstruction``).
        dtype (str): ``float32`` or ``bf16-autocast`` (both runs under CPU bf16 autocast).
        every (int): ``checkpoint_every`` of the reversible run.

    Returns:
        (tuple[float, float]): (error over the first column's parameters, error over all parameters).
    """
    model = build_model(cfg, block, columns, "plain", every=every)
    if weights == "trained-like":
        set_trained_like(model, cfg, cfg.seed + 2)
    img = make_input(cfg)
    g = torch.Generator().manual_seed(cfg.seed + 3)
    with torch.no_grad():
        factors = [torch.randn(o.shape, generator=g) for o in model(img)]

    def grads(reversible: bool) -> list[torch.Tensor]:
        model.reversible = reversible
        model.zero_grad(set_to_none=True)
        with torch.autocast("cpu", dtype=torch.bfloat16, enabled=dtype == "bf16-autocast"):
            out = model(img)
        sum((o.float() * f).sum() for o, f in zip(out, factors)).backward()
        return [p.grad.detach().clone() for p in model.parameters()]

    ref, rev = grads(False), grads(True)
    first = {id(p) for p in model.columns[0].parameters()}
    mask = [id(p) in first for p in model.parameters()]

    def rel(pairs: list[tuple[torch.Tensor, torch.Tensor]]) -> float:
        num = sum(float((b.double() - a.double()).pow(2).sum()) for a, b in pairs)
        den = sum(float(a.double().pow(2).sum()) for a, _ in pairs)
        return (num / max(den, 1e-300)) ** 0.5

    pairs = list(zip(ref, rev))
    return rel([pq for pq, m in zip(pairs, mask) if m]), rel(pairs)


# ---------------------------------------------------------------------------------------------------------------
# 3. Step time
# ---------------------------------------------------------------------------------------------------------------


def train_step(model: nn.Module, optimizer: torch.optim.Optimizer, img: torch.Tensor) -> None:
    """One forward + backward + optimizer step."""
    optimizer.zero_grad(set_to_none=True)
    loss_of(model(img)).backward()
    optimizer.step()


def measure_step_times(cfg: BenchConfig, block: str, columns: int) -> dict[str, list[float]]:
    """Time training steps of all modes, interleaved in one process, from identical initial weights.

    ``bench_speed.interleave`` runs ``cfg.warmup`` untimed steps per mode, then ``cfg.reps`` rounds each timing one
    step of every mode, the order rotating each round so no mode always runs first.

    Args:
        cfg (BenchConfig): Sizes, repetitions.
        block (str): Block family.
        columns (int): Number of columns.

    Returns:
        (dict[str, list[float]]): mode -> step times in seconds.
    """
    base = build_model(cfg, block, columns, "plain")
    models = {}
    for mode in MODES:
        m = copy.deepcopy(base)
        m.reversible = mode == "reversible"
        models[mode] = CheckpointedRevCol(m).train() if mode == "checkpoint" else m.train()
    img = make_input(cfg)
    steps = {}
    for mode, m in models.items():
        optimizer = torch.optim.SGD(m.parameters(), lr=1e-4, momentum=0.9)
        steps[mode] = lambda m=m, o=optimizer: train_step(m, o, img)
    ms = interleave(steps, cfg.reps, 1, cfg.warmup, torch.get_num_threads())
    return {mode: [t / 1e3 for t in ms[mode]] for mode in MODES}


# ---------------------------------------------------------------------------------------------------------------
# Sections: each measures, then returns its Markdown, records and data
# ---------------------------------------------------------------------------------------------------------------


def saved_section(cfg: BenchConfig) -> Section:
    """Bytes saved for backward per block, mode and column count, the memory targets and what reversible keeps.

    Returns:
        (Section): ``data``: ``saved`` ((block, mode, columns) -> counter; mode ``reversible-K<k>`` for the extra
            ``checkpoint_every`` values), ``targets`` ((block, ratio name) -> (value or None, limit)).
    """
    saved: dict[tuple[str, str, int], SavedTensorCounter] = {}
    records = []
    for block in cfg.blocks:
        for c in cfg.mem_columns:
            for mode, every in [*((m, 0) for m in MODES), *((f"reversible-K{e}", e) for e in cfg.mem_every)]:
                saved[(block, mode, c)] = s = measure_saved(cfg, block, c, mode.split("-")[0], every)
                counts = (("saved_bytes", s.nbytes), ("saved_param_bytes", s.excluded_bytes), ("packs", s.packs))
                for metric, v in counts:
                    records.append(dict(section="saved", block=block, mode=mode, columns=c, checkpoint_every=every,
                                        metric=metric, value=v))  # fmt: skip
                print(f"saved  {block:8s} {mode:13s} {c:2d} cols: {s.nbytes / MIB:8.2f} MiB", flush=True)
    rows = []
    for block in cfg.blocks:
        for c in cfg.mem_columns:
            r, p, k = (saved[(block, m, c)].nbytes for m in MODES)
            extra = [f"{saved[(block, f'reversible-K{e}', c)].nbytes / MIB:.2f}" for e in cfg.mem_every]
            rows.append([block, c, f"{r / MIB:.2f}", *extra, f"{p / MIB:.2f}", f"{k / MIB:.2f}", f"{r / p:.3f}"])
            rows[-1].append(f"{k / p:.3f}")

    def ratio(block: str, num: tuple[str, int], den: tuple[str, int]) -> float | None:
        a, b = saved.get((block, *num)), saved.get((block, *den))
        return a.nbytes / b.nbytes if a and b else None

    targets, target_rows = {}, []
    for block in cfg.blocks:
        for name, num, den, limit in (
            ("saved bytes reversible(8) / reversible(2)", ("reversible", 8), ("reversible", 2), TARGET_REV_GROWTH),
            ("saved bytes reversible(4) / plain(4)", ("reversible", 4), ("plain", 4), TARGET_REV_VS_PLAIN),
        ):
            targets[(block, name)] = value, limit = ratio(block, num, den), limit
            verdict = "n/a" if value is None else ("PASS" if value <= limit else "FAIL")
            target_rows.append([block, name, fmt(value), f"<= {limit}", verdict])
            records.append(dict(section="target", block=block, metric=name, value=value))
            print(f"{verdict}: {block} {name} = {fmt(value)} (target <= {limit})")
    big = max(cfg.mem_columns)
    breakdown = [
        [block, s, d, n, f"{v:.3f}"]
        for block in cfg.blocks
        for s, d, n, v in saved[(block, "reversible", big)].breakdown()
    ]
    ks = [f"reversible, checkpoint_every={e} (MiB)" for e in cfg.mem_every]
    header = ["block", "columns", "reversible (MiB)", *ks, "plain (MiB)", "checkpoint (MiB)", "reversible / plain"]
    md = [
        "## 1. Memory",
        "",
        "### Bytes saved for backward",
        "",
        "Distinct storages packed by `torch.autograd.graph.saved_tensors_hooks` during one training-mode forward of "
        "the whole model (stem included), keyed by untyped-storage `data_ptr` and charged the storage's `nbytes`; "
        "parameter storages (which convs and scales also save) are excluded here and listed in the CSV as "
        "`saved_param_bytes`. For `checkpoint` the hooks only see what each `checkpoint(column, ...)` call saves "
        "itself, i.e. its inputs (stem output, previous column's states); the activations recomputed in backward "
        "are not saved. `reversible` keeps no column's states (`checkpoint_every=0`); `checkpoint_every=K` columns: "
        "the reversible mode that also keeps every K-th column's states, which bounds the reconstruction error "
        "(section 2).",
        "",
        markdown_table([*header, "checkpoint / plain"], rows),
        "### Targets",
        "",
        markdown_table(["block", "ratio", "value", "target", "result"], target_rows),
        f"### What the reversible path saves ({big} columns)",
        "",
        "Distinct saved storages grouped by shape (shape of the first tensor saved from each storage).",
        "",
        markdown_table(["block", "shape", "dtype", "storages", "MiB"], breakdown),
    ]
    return Section("\n".join(md), records, dict(saved=saved, targets=targets))


def rss_section(cfg: BenchConfig) -> Section:
    """Peak RSS of one training step per block, mode and column count, each in a fresh subprocess.

    Returns:
        (Section): ``data``: ``rss`` ((block, mode, columns) -> the worker's KiB figures).
    """
    rss: dict[tuple[str, str, int], dict] = {}
    records = []
    for block in cfg.blocks:
        for c in cfg.rss_columns:
            for mode in MODES:
                rss[(block, mode, c)] = r = measure_rss(cfg, block, c, mode)
                for key in ("base", "warm", "before", "peak", "ru_base", "ru_warm", "ru_before", "ru_peak"):
                    records.append(dict(section="rss", block=block, mode=mode, columns=c, metric=f"{key}_kib",
                                        value=r[key]))  # fmt: skip
                records.append(dict(section="rss", block=block, mode=mode, columns=c, metric="grad_bytes",
                                    value=r["grad_bytes"]))  # fmt: skip
                growth = (r["peak"] - r["before"]) / 1024
                print(f"rss    {block:8s} {mode:10s} {c:2d} cols: peak {r['peak'] / 1024:8.1f} MiB, +{growth:.1f}")
    if not rss:
        return Section("", records, dict(rss=rss))
    rows = [
        [block, c, mode, f"{r['before'] / 1024:.1f}", f"{r['peak'] / 1024:.1f}",
         f"{(r['peak'] - r['before']) / 1024:.1f}", f"{(r['warm'] - r['base']) / 1024:.1f}",
         f"{r['grad_bytes'] / MIB:.1f}"]
        for (block, mode, c), r in rss.items()
    ]  # fmt: skip

    def growth_ratio(block: str, num: tuple[str, int], den: tuple[str, int]) -> float | None:
        a, b = rss.get((block, *num)), rss.get((block, *den))
        return (a["peak"] - a["before"]) / max(b["peak"] - b["before"], 1) if a and b else None

    info = []
    for block in cfg.blocks:
        for name, num, den in (
            ("RSS step growth reversible(8) / reversible(2)", ("reversible", 8), ("reversible", 2)),
            ("RSS step growth reversible(4) / plain(4)", ("reversible", 4), ("plain", 4)),
            ("RSS step growth checkpoint(4) / plain(4)", ("checkpoint", 4), ("plain", 4)),
        ):
            value = growth_ratio(block, num, den)
            info.append([block, name, fmt(value)])
            records.append(dict(section="rss", block=block, metric=name, value=value))
    env = " ".join(f"{k}={os.environ.get(k, v)}" for k, v in MALLOC_ENV.items())
    reset = (
        "The RSS high-water mark is reset (`/proc/self/clear_refs` = 5) before the warm-up and again before "
        "the measured step, so `step peak - before` is the measured step's growth over the RSS it started from "
        "(model, gradient buffers, torch runtime). `first step peak - base` also contains one-time costs: "
        "allocating the gradients and whatever the first call loads (the first non-reentrant checkpoint call "
        "imports torch._dynamo/sympy lazily)."
        if all(r["reset"] for r in rss.values())
        else "The high-water mark could NOT be reset here, so `before` is the running maximum (including the "
        "import of torch) and small configurations may show no growth."
    )
    md = [
        "### Peak RSS",
        "",
        f"Peak RSS of a fresh subprocess per row (run with `{env}`, so freed tensors go back to the OS): build model "
        "and input (`base`), one warm-up forward+backward, zero the gradients (buffers kept), then one measured "
        "forward+backward (no optimizer). The peak is the kernel's RSS high-water mark, read as `VmHWM` from "
        "`/proc/self/status`: `resource.getrusage(RUSAGE_SELF).ru_maxrss` (also in the CSV as `ru_*`) is the same "
        "mark but never below the parent's RSS when the child was spawned, which hides small configurations. " + reset,
        "",
        markdown_table(
            [
                "block",
                "columns",
                "mode",
                "before (MiB)",
                "step peak (MiB)",
                "step peak - before (MiB)",
                "first step peak - base (MiB)",
                "grads (MiB)",
            ],
            rows,
        ),  # fmt: skip
        "Same ratios on RSS (informational; RSS also counts the transient gradients and recomputation buffers "
        "of backward, not only what is saved):",
        "",
        markdown_table(["block", "ratio", "value"], info),
    ]
    return Section("\n".join(md), records, dict(rss=rss))


def growth_per_column(errors: Sequence[float]) -> tuple[float, float, float] | None:
    """How much each further reconstructed column multiplies the error, from one K=0 per-column row.

    Args:
        errors (Sequence[float]): Error of columns 1..N (first column first; column N is exact).

    Returns:
        (tuple[float, float, float] | None): Geometric mean, smallest and largest of the ratios of consecutive
            reconstructed columns' errors (column j over column j + 1), or None with fewer than two reconstructed
            columns or a zero error.
    """
    rebuilt = list(errors[:-1])
    if len(rebuilt) < 2 or min(rebuilt) <= 0:
        return None
    steps = [a / b for a, b in zip(rebuilt, rebuilt[1:])]
    return math.exp(statistics.fmean(math.log(s) for s in steps)), min(steps), max(steps)


def reconstruction_section(cfg: BenchConfig) -> Section:
    """Reconstruction error of every column per block, weights, dtype, column count and ``checkpoint_every``.

    Returns:
        (Section): ``data``: ``rec`` ((block, weights, dtype, columns, K) -> per-column errors) and ``growth``
            ((block, weights, dtype) -> ``growth_per_column`` of the K=0 row at the largest column count).
    """
    rec: dict[tuple[str, str, str, int, int], list[float]] = {}
    records = []
    for block in cfg.blocks:
        for weights in ("default", "trained-like"):
            for dtype in ("float32", "bf16-autocast"):
                for c in cfg.rec_columns:
                    for every, errs in measure_reconstruction(cfg, block, c, weights, dtype).items():
                        rec[(block, weights, dtype, c, every)] = errs
                        for j, e in enumerate(errs):
                            records.append(
                                dict(section="reconstruction", block=block, weights=weights, dtype=dtype, columns=c,
                                     checkpoint_every=every, column=j + 1, metric="rel_error", value=e)
                            )  # fmt: skip
                        print(f"rec    {block:8s} {weights:12s} {dtype:13s} {c:2d} cols K={every}: max {max(errs):.2e}")
    if not rec:
        return Section("", records, dict(rec=rec, growth={}))
    n = max(cfg.rec_columns)
    per = {k: v for k, v in rec.items() if k[3] == n}
    growth = {(b, w, d): growth_per_column(v) for (b, w, d, _, e), v in per.items() if e == 0}
    for (block, weights, dtype), g in growth.items():
        records.append(dict(section="reconstruction", block=block, weights=weights, dtype=dtype, columns=n,
                            checkpoint_every=0, metric="growth_per_column", value=g[0] if g else None))  # fmt: skip
    lo, hi = cfg.alpha_range
    md = [
        "## 2. Reconstruction error",
        "",
        "True states: plain forward in eval mode, every column's four states recorded. Reconstruction: "
        "`reconstruct_states` from the stem output and the last column's states (the reverse pass's arithmetic), "
        "restarting from the exact states of every K-th column when `checkpoint_every = K` (anchors are exact, "
        "error 0). Error of a column: max over its four levels of ||rec - true|| / ||true|| (float64 norms). "
        "`bf16-autocast`: the forward and the reconstruction both run under `torch.autocast('cpu', "
        "dtype=torch.bfloat16)` (states are float32; level bodies compute in bf16).",
        "",
        "Weights: **default** = the model's init (convnext: conv weights trunc-normal std 0.02, layer scale gamma = "
        "1e-6; c2f: PyTorch's default init; alpha = 0.5). **trained-like** = default init, then every alpha's "
        f"magnitude drawn uniformly from [{lo}, {hi}] per channel, sign kept (all positive, as initialised), and "
        f"every convnext block's gamma = {cfg.gamma} x (1 + {cfg.gamma_noise} N(0, 1)) per channel (c2f blocks have "
        "no layer scale).",
        "",
        markdown_table(
            ["block", "weights", "dtype", "columns", "checkpoint_every", "first column", "worst column"],
            [
                [b, w, d, c, e, f"{v[0]:.2e}", f"{max(v):.2e} (col {v.index(max(v)) + 1})"]
                for (b, w, d, c, e), v in rec.items()
            ],
        ),
        f"### Per column ({n} columns; column {n} is the saved last column, exact)",
        "",
        markdown_table(
            ["block", "weights", "dtype", "K", *[str(j + 1) for j in range(n - 1)]],
            [[b, w, d, e, *[f"{x:.1e}" for x in v[:-1]]] for (b, w, d, _, e), v in per.items()],
        ),
        "### Growth per reconstructed column",
        "",
        f"From each K=0 row above: the ratio of the errors of consecutive reconstructed columns (column j over column "
        f"j + 1), geometric mean and range over columns 1 to {n - 1}.",
        "",
        markdown_table(
            ["block", "weights", "dtype", "growth per column (geometric mean)", "smallest", "largest"],
            [[b, w, d, *(fmt(x, ".1f") for x in (g or (None,) * 3))] for (b, w, d), g in growth.items()],
        ),
    ]
    return Section("\n".join(md), records, dict(rec=rec, growth=growth))


def gradient_section(cfg: BenchConfig) -> Section:
    """Relative error of the reversible path's parameter gradients against plain backprop.

    Returns:
        (Section): ``data``: ``grad`` ((block, weights, dtype, columns, K) -> (first column, all parameters)).
    """
    grad: dict[tuple[str, str, str, int, int], tuple[float, float]] = {}
    records = []
    for block in cfg.blocks:
        for weights in ("default", "trained-like"):
            for dtype in ("float32", "bf16-autocast"):
                for c in cfg.grad_columns:
                    for every in (e for e in cfg.rec_every if not e or e < c):
                        grad[(block, weights, dtype, c, every)] = e = measure_gradient_error(
                            cfg, block, c, weights, dtype, every
                        )
                        for metric, v in zip(("grad_rel_error_first_column", "grad_rel_error_all"), e):
                            records.append(dict(section="gradient", block=block, weights=weights, dtype=dtype,
                                                columns=c, checkpoint_every=every, metric=metric, value=v))  # fmt: skip
                        print(f"grad   {block:8s} {weights:12s} {dtype:13s} {c:2d} cols K={every}: all {e[1]:.3e}")
    if not grad:
        return Section("", records, dict(grad=grad))
    md = [
        "### Gradient error of the reversible path",
        "",
        "What the reconstruction error does to training: parameter gradients of `reversible=True` (with "
        "`checkpoint_every=K`) against `reversible=False` on the same model, weights (as above), input and dtype "
        "setting (for `bf16-autocast` both runs are under autocast, so the reference is bf16 training too); loss = "
        "sum of every output element times a fixed random factor. ||g_rev - g_plain|| / ||g_plain|| over the "
        "first column's parameters and over all parameters. Training mode: c2f's BatchNorms use batch statistics.",
        "",
        markdown_table(
            ["block", "weights", "dtype", "columns", "checkpoint_every", "first column params", "all params"],
            [[b, w, d, c, k, f"{x:.2e}", f"{y:.2e}"] for (b, w, d, c, k), (x, y) in grad.items()],
        ),
    ]
    return Section("\n".join(md), records, dict(grad=grad))


def time_section(cfg: BenchConfig) -> Section:
    """Training-step time of every mode per block and column count, and the ratios to plain.

    Returns:
        (Section): ``data``: ``times`` ((block, columns) -> mode -> seconds of every timed step) and ``ratios``
            ((block, columns, mode) -> median / plain's median).
    """
    times: dict[tuple[str, int], dict[str, list[float]]] = {}
    ratios: dict[tuple[str, int, str], float] = {}
    records, rows = [], []
    for block in cfg.blocks:
        for c in cfg.time_columns:
            times[(block, c)] = t = measure_step_times(cfg, block, c)
            med = {m: statistics.median(v) for m, v in t.items()}
            for mode, v in t.items():
                records += [dict(section="time", block=block, mode=mode, columns=c, rep=j, metric="step_s", value=s)
                            for j, s in enumerate(v)]  # fmt: skip
            for mode in ("reversible", "checkpoint"):
                ratios[(block, c, mode)] = med[mode] / med["plain"]
                records.append(dict(section="time", block=block, mode=mode, columns=c, metric="median_ratio_vs_plain",
                                    value=ratios[(block, c, mode)]))  # fmt: skip
            rows.append([block, c, *(f"{med[m]:.3f}" for m in ("plain", "reversible", "checkpoint"))])
            rows[-1] += [f"{ratios[(block, c, 'reversible')]:.2f}", f"{ratios[(block, c, 'checkpoint')]:.2f}"]
            print(f"time   {block:8s} {c:2d} cols: " + ", ".join(f"{m} {s:.3f} s" for m, s in med.items()), flush=True)
    if not times:
        return Section("", records, dict(times=times, ratios=ratios))
    md = [
        "## 3. Training step time",
        "",
        f"Forward + backward + SGD(momentum 0.9) step, same config, identical initial weights, reversible with "
        f"`checkpoint_every=0`; {cfg.warmup} untimed step(s) per mode, then {cfg.reps} rounds each timing one step of "
        "every mode (order rotated every round); medians. Ratios of medians, from one run of the command.",
        "",
        markdown_table(
            [
                "block",
                "columns",
                "plain (s)",
                "reversible (s)",
                "checkpoint (s)",
                "reversible / plain",
                "checkpoint / plain",
            ],
            rows,
        ),  # fmt: skip
    ]
    return Section("\n".join(md), records, dict(times=times, ratios=ratios))


SECTIONS: dict[str, Callable[[BenchConfig], Section]] = {
    "saved bytes": saved_section,
    "peak RSS": rss_section,
    "reconstruction": reconstruction_section,
    "gradient check": gradient_section,
    "step time": time_section,
}


# ---------------------------------------------------------------------------------------------------------------
# Reporting
# ---------------------------------------------------------------------------------------------------------------


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
        return ", ".join(f"K={k} at {' and '.join(cols)} columns" for k, cols in by_k.items())

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


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    """Parse the command line; ``args.cfg`` is the ``BenchConfig`` (``--quick`` values where nothing was given)."""
    d = BenchConfig()
    p = argparse.ArgumentParser(prog="yolo-revcol memory", description=__doc__.split("\n\n")[0])
    p.add_argument("--quick", action="store_true", help="tiny sizes and grids for a smoke test")
    p.add_argument("--out", type=Path, help="output folder (default: results/, or a temporary folder with --quick)")
    p.add_argument("--readme", type=Path, help="also replace the <!-- memory:start/end --> block of this file")
    p.add_argument("--blocks", nargs="+", choices=["c2f", "convnext"], help=f"block families (default {d.blocks})")
    p.add_argument("--channels", type=int, nargs=4, help=f"channels of the four levels (default {d.channels})")
    p.add_argument("--layers", type=int, nargs=4, help=f"blocks per level (default {d.layers})")
    p.add_argument("--batch", type=int, help=f"batch size (default {d.batch})")
    p.add_argument("--imgsz", type=int, help=f"input side, multiple of 32 (default {d.imgsz})")
    p.add_argument("--kernel", type=int, help=f"spatial kernel of the blocks (default {d.kernel})")
    p.add_argument("--mlp-ratio", type=float, help=f"MLP ratio of convnext blocks (default {d.mlp_ratio})")
    p.add_argument("--mem-columns", type=int, nargs="+", help=f"columns for saved bytes (default {d.mem_columns})")
    p.add_argument("--rss-columns", type=int, nargs="*", help=f"columns for peak RSS (default {d.rss_columns})")
    p.add_argument("--rec-columns", type=int, nargs="*", help=f"columns for reconstruction (default {d.rec_columns})")
    p.add_argument("--rec-every", type=int, nargs="+", help=f"checkpoint_every values (default {d.rec_every})")
    p.add_argument("--mem-every", type=int, nargs="*", help=f"extra reversible K, saved bytes (default {d.mem_every})")
    p.add_argument("--grad-columns", type=int, nargs="*", help=f"columns, gradient check (default {d.grad_columns})")
    p.add_argument("--time-columns", type=int, nargs="*", help=f"columns for step time (default {d.time_columns})")
    p.add_argument("--reps", type=int, help=f"timed steps per mode (default {d.reps})")
    p.add_argument("--warmup", type=int, help=f"untimed steps per mode (default {d.warmup})")
    p.add_argument("--gamma", type=float, help=f"trained-like layer scale (default {d.gamma})")
    p.add_argument("--gamma-noise", type=float, help=f"its relative perturbation (default {d.gamma_noise})")
    p.add_argument("--alpha-range", type=float, nargs=2, help=f"trained-like |alpha| range (default {d.alpha_range})")
    p.add_argument("--seed", type=int, help=f"seed (default {d.seed})")
    p.add_argument("--threads", type=int, help="torch threads (default: torch's default; 1 with --quick)")
    args = p.parse_args(argv)
    values = dict(QUICK) if args.quick else {}
    values.update({k: v for k, v in vars(args).items() if k in BenchConfig.__dataclass_fields__ and v is not None})
    args.cfg = BenchConfig(**values)
    if args.cfg.imgsz % 32:
        p.error(f"--imgsz must be a multiple of 32, got {args.cfg.imgsz}")
    if args.cfg.reps < 1:
        p.error(f"--reps must be >= 1, got {args.cfg.reps}")
    args.out = args.out or (Path(tempfile.mkdtemp(prefix="yolo_revcol_memory_")) if args.quick else Path("results"))
    return args


def main(argv: Sequence[str] | None = None) -> int:
    """Run every section, print and write the report (and optionally the README block).

    Returns:
        (int): 0 when every memory target passes (always with ``--quick``, whose tiny sizes are not representative:
            there the fixed stem activations dominate), else 1.
    """
    args = parse_args(argv)
    cfg = args.cfg
    if cfg.threads:
        torch.set_num_threads(cfg.threads)
    command, where = command_line(), machine()
    print(f"$ {command}\n{where}\nconfig: {cfg}", flush=True)
    sections, seconds = {}, {}
    for name, section in SECTIONS.items():
        start = time.perf_counter()
        sections[name] = section(cfg)
        seconds[name] = time.perf_counter() - start
    timing = ", ".join(f"{name} {s:.0f} s" for name, s in seconds.items())
    load = ", ".join(f"{v:.2f}" for v in os.getloadavg()) if hasattr(os, "getloadavg") else "n/a"
    note = f"Measured by `{command}` on {where}.\n{describe(cfg, args.quick)}\n"
    text = "\n".join(
        ["# RevCol memory, reconstruction and step-time benchmark", "", note]
        + [s.markdown for s in sections.values() if s.markdown]
        + [f"Total time {sum(seconds.values()):.0f} s ({timing}); load average at end {load}.", ""]
    )
    records = [r for s in sections.values() for r in s.records]
    write_result(
        args.out / "memory",
        text,
        CSV_KEYS,
        [[r.get(k, "") for k in CSV_KEYS] for r in records],
        plot=lambda path: plot(path, cfg, sections),
        readme=args.readme,
        readme_text=readme_block(
            cfg, sections, f"{note}Full tables, peak RSS, gradient checks and the plot: `{args.out / 'memory.md'}`.\n"
        ),
    )
    passed = all(v is None or v <= limit for v, limit in sections["saved bytes"].data["targets"].values())
    print("targets:", "PASS" if passed else "FAIL", "(informational at --quick sizes)" if args.quick else "")
    return 0 if passed or args.quick else 1


if __name__ == "__main__":
    sys.exit(main())
