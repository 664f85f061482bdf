"""Memory, reconstruction-error and step-time benchmark of RevCol's reversible path (CPU).

Compares three ways of training the same RevCol backbone:

* ``reversible``: ``RevCol(reversible=True)``, the custom autograd function that keeps only the stem output and the
  last column's states and reconstructs the rest during backward;
* ``plain``: ``RevCol(reversible=False)``, ordinary autograd keeping every activation;
* ``checkpoint``: the stem, then every column under ``torch.utils.checkpoint.checkpoint(use_reentrant=False)``.

It measures (1) bytes saved for backward (``saved_tensors_hooks``) and peak RSS (one fresh subprocess per
configuration), (2) the reverse pass's reconstruction error against the true forward activations, in float32 and
under CPU bfloat16 autocast, with default and trained-looking weights, and what it does to the parameter gradients
(reversible vs plain), and (3) the training-step time of each mode relative to ``plain``. Results go to ``memory.md``, ``memory.csv`` and ``memory.png`` in ``--out-dir``.

Usage:
    .venv/bin/python runs_scripts/bench_memory.py            # full run, a few minutes on 2 cores
    .venv/bin/python runs_scripts/bench_memory.py --quick    # tiny sizes, smoke test (< 30 s), temp out dir
"""

from __future__ import annotations

import argparse
import copy
import csv
import gc
import json
import os
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterable, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path

import torch
from torch import nn
from torch.utils.checkpoint import checkpoint

from yolo_revcol.nn import ChannelScale, RevCol, ReversibleScale, reconstruct_states
from yolo_revcol.tools.report import command_line, machine, markdown_table

ROOT = Path(__file__).resolve().parents[1]
MODES = ("reversible", "plain", "checkpoint")
MIB = 2**20
TARGET_REV_GROWTH = 1.25  # saved bytes: reversible(8 columns) / reversible(2 columns) must not exceed this
TARGET_REV_VS_PLAIN = 0.10  # saved bytes: reversible(4 columns) / plain(4 columns) must not exceed this
# glibc otherwise raises its mmap threshold after the first large free and keeps later tensors in the heap, where
# freed memory is not returned to the OS: RSS would then carry the warm-up's leftovers. A fixed threshold makes every
# tensor >= 128 KiB its own mapping, released on free, so RSS follows live memory. (An explicit environment wins.)
MALLOC_ENV = {"MALLOC_MMAP_THRESHOLD_": "131072"}


@dataclass
class BenchConfig:
    """Sizes and grids of the benchmark (all settable from the command line).

    Attributes:
        channels (list[int]): Channels of the four levels.
        layers (list[int]): Blocks per level.
        batch (int): Batch size.
        imgsz (int): Square input side, a multiple of 32.
        kernel (int): Depthwise kernel size.
        mlp_ratio (float): MLP expansion ratio.
        mem_columns (list[int]): Column counts for saved bytes.
        mem_every (list[int]): Extra ``checkpoint_every`` values of the reversible mode in the saved-bytes table.
        rss_columns (list[int]): Column counts for peak RSS (one subprocess per count and mode).
        rec_columns (list[int]): Column counts for the reconstruction error.
        rec_every (list[int]): ``checkpoint_every`` values emulated in the reconstruction error (0: none).
        grad_columns (list[int]): Column counts for the gradient check (reversible vs plain gradients).
        time_columns (list[int]): Column counts for the step-time ratios.
        reps (int): Timed repetitions per mode (after ``warmup``), interleaved across modes.
        warmup (int): Untimed steps per mode before timing.
        gamma (float): Layer-scale value of the trained-looking weights.
        gamma_noise (float): Relative Gaussian perturbation of that value.
        alpha_range (list[float]): Range of |alpha| for the trained-looking weights (sign kept).
        seed (int): Seed of weights and inputs.
        threads (int): ``torch.set_num_threads`` value for this process and the RSS workers (0: torch's default).
    """

    channels: list[int] = field(default_factory=lambda: [32, 64, 128, 256])
    layers: list[int] = field(default_factory=lambda: [1, 1, 3, 1])
    batch: int = 4
    imgsz: int = 256
    kernel: int = 3
    mlp_ratio: float = 4.0
    mem_columns: list[int] = field(default_factory=lambda: [1, 2, 4, 8])
    mem_every: list[int] = field(default_factory=lambda: [2, 4])
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


def build_model(cfg: BenchConfig, columns: int, mode: str, seed: int | None = None, every: int = 0) -> nn.Module:
    """Build a RevCol with ``columns`` columns, run as ``mode``, in training mode.

    Args:
        cfg (BenchConfig): Sizes.
        columns (int): Number of columns.
        mode (str): One of ``MODES``.
        seed (int | None): Seed for the weights; ``cfg.seed`` when None.
        every (int): ``checkpoint_every`` of the model (used by the reversible mode only).

    Returns:
        (nn.Module): The model; for ``checkpoint`` a ``CheckpointedRevCol``.
    """
    torch.manual_seed(cfg.seed if seed is None else seed)
    model = RevCol(
        3,
        cfg.channels,
        cfg.layers,
        columns,
        kernel=cfg.kernel,
        mlp_ratio=cfg.mlp_ratio,
        reversible=mode == "reversible",
        checkpoint_every=every,
    )
    if mode == "checkpoint":
        model = CheckpointedRevCol(model)
    elif mode not in MODES:
        raise ValueError(f"unknown mode {mode!r}, expected one of {MODES}")
    return model.train()


def make_input(cfg: BenchConfig) -> torch.Tensor:
    """Return a reproducible random image batch (batch, 3, imgsz, imgsz)."""
    g = torch.Generator().manual_seed(cfg.seed + 1)
    return torch.randn(cfg.batch, 3, cfg.imgsz, cfg.imgsz, generator=g)


def loss_of(outputs: Sequence[torch.Tensor]) -> torch.Tensor:
    """A scalar that reaches all four outputs and saves nothing itself (means)."""
    return sum(o.float().mean() for o in outputs)


def set_trained_like(
    model: nn.Module, gamma: float, gamma_noise: float, alpha_range: Sequence[float], seed: int
) -> None:
    """Give the model weights that look trained, for a non-trivial reconstruction problem.

    Every block's layer scale becomes ``gamma * (1 + gamma_noise * N(0, 1))`` per channel (default init is 1e-6,
    which makes every level body almost the identity); every alpha gets a magnitude drawn uniformly from
    ``alpha_range`` with its sign kept (alphas are initialised to +0.5, so they stay positive).

    Args:
        model (nn.Module): A RevCol (modified in place).
        gamma (float): Layer-scale centre value.
        gamma_noise (float): Relative standard deviation of the layer-scale perturbation.
        alpha_range (Sequence[float]): (low, high) of |alpha|.
        seed (int): Seed of the draws.
    """
    g = torch.Generator().manual_seed(seed)
    lo, hi = alpha_range
    with torch.no_grad():
        for m in model.modules():
            if isinstance(m, ReversibleScale):  # before ChannelScale: it is a subclass
                magnitude = torch.empty(m.weight.shape).uniform_(lo, hi, generator=g)
                m.weight.copy_(torch.where(m.weight < 0, -magnitude, magnitude))
            elif isinstance(m, ChannelScale):
                m.weight.copy_(gamma * (1.0 + gamma_noise * torch.randn(m.weight.shape, generator=g)))


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


def measure_saved(cfg: BenchConfig, columns: int, mode: str, every: int = 0) -> SavedTensorCounter:
    """Count what one training-mode forward of the whole model saves for backward.

    Args:
        cfg (BenchConfig): Sizes.
        columns (int): Number of columns.
        mode (str): One of ``MODES``.
        every (int): ``checkpoint_every`` (reversible mode only).

    Returns:
        (SavedTensorCounter): The filled counter (its references already dropped).
    """
    model, x = build_model(cfg, columns, mode, every=every), make_input(cfg)
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
        spec (dict): ``{"cfg": asdict(BenchConfig), "columns": int, "mode": str}``.

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
    model, x = build_model(cfg, spec["columns"], spec["mode"]), make_input(cfg)
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


def measure_rss(cfg: BenchConfig, columns: int, mode: str) -> dict:
    """Run ``rss_worker`` in a fresh interpreter and return its result.

    Args:
        cfg (BenchConfig): Sizes.
        columns (int): Number of columns.
        mode (str): One of ``MODES``.

    Returns:
        (dict): The worker's result.
    """
    spec = json.dumps(dict(cfg=asdict(cfg), columns=columns, mode=mode))
    proc = subprocess.run(
        [sys.executable, str(Path(__file__).resolve()), "--rss-worker", spec],
        capture_output=True,
        text=True,
        check=False,
        env={**MALLOC_ENV, **os.environ},
    )
    if proc.returncode != 0:
        raise RuntimeError(f"RSS worker ({mode}, {columns} columns) failed:\n{proc.stdout}\n{proc.stderr}")
    return json.loads(proc.stdout.strip().splitlines()[-1])


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


def measure_reconstruction(cfg: BenchConfig, columns: int, weights: str, dtype: str) -> dict[int, list[float]]:
    """Reconstruction error of every column for each ``cfg.rec_every`` value.

    Args:
        cfg (BenchConfig): Sizes and trained-like weight settings.
        columns (int): Number of columns.
        weights (str): ``default`` (init: layer scale 1e-6, alpha 0.5) or ``trained-like``.
        dtype (str): ``float32`` or ``bf16-autocast`` (forward and reconstruction both under CPU autocast).

    Returns:
        (dict[int, list[float]]): checkpoint_every -> per-column worst-level relative error (first column first).
    """
    model = build_model(cfg, columns, "plain").eval()  # eval: DropPath off (it is 0 anyway)
    if weights == "trained-like":
        set_trained_like(model, cfg.gamma, cfg.gamma_noise, cfg.alpha_range, cfg.seed + 2)
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


def measure_gradient_error(cfg: BenchConfig, columns: int, weights: str, dtype: str, every: int) -> tuple[float, float]:
    """Relative error of the reversible path's parameter gradients against plain autograd on the same model.

    Both runs use the same weights, input, dtype setting and a loss that weights every output element with a fixed
    random factor, so the only difference is that the reversible path recomputes from reconstructed states.

    Args:
        cfg (BenchConfig): Sizes and trained-like weight settings.
        columns (int): Number of columns.
        weights (str): ``default`` or ``trained-like`` (see ``measure_reconstruction``).
        dtype (str): ``float32`` or ``bf16-autocast`` (both runs under CPU bf16 autocast).
        every (int): ``checkpoint_every`` of the reversible run.

    Returns:
        (tuple[float, float]): (error over the first column's parameters, error over all parameters).
    """
    model = build_model(cfg, columns, "plain", every=every)
    if weights == "trained-like":
        set_trained_like(model, cfg.gamma, cfg.gamma_noise, cfg.alpha_range, cfg.seed + 2)
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


def train_step(model: nn.Module, optimizer: torch.optim.Optimizer, img: torch.Tensor) -> float:
    """Time one forward + backward + optimizer step and return seconds."""
    t0 = time.perf_counter()
    optimizer.zero_grad(set_to_none=True)
    loss_of(model(img)).backward()
    optimizer.step()
    return time.perf_counter() - t0


def measure_step_times(cfg: BenchConfig, columns: int) -> dict[str, list[float]]:
    """Time training steps of all modes, interleaved in one process, from identical initial weights.

    After ``cfg.warmup`` untimed steps per mode, each of ``cfg.reps`` rounds times one step of every mode, the
    order rotating each round so no mode always runs first.

    Args:
        cfg (BenchConfig): Sizes, repetitions.
        columns (int): Number of columns.

    Returns:
        (dict[str, list[float]]): mode -> step times in seconds.
    """
    base = build_model(cfg, columns, "plain")
    models = {}
    for mode in MODES:
        m = copy.deepcopy(base)
        m.reversible = mode == "reversible"
        models[mode] = CheckpointedRevCol(m).train() if mode == "checkpoint" else m.train()
    optims = {k: torch.optim.SGD(m.parameters(), lr=1e-4, momentum=0.9) for k, m in models.items()}
    img = make_input(cfg)
    for mode in MODES:
        for _ in range(cfg.warmup):
            train_step(models[mode], optims[mode], img)
    times: dict[str, list[float]] = {m: [] for m in MODES}
    for r in range(cfg.reps):
        for j in range(len(MODES)):
            mode = MODES[(r + j) % len(MODES)]
            times[mode].append(train_step(models[mode], optims[mode], img))
    return times


# ---------------------------------------------------------------------------------------------------------------
# Reporting
# ---------------------------------------------------------------------------------------------------------------


def write_csv(path: Path, records: list[dict]) -> None:
    """Write tidy records (one measurement per row); keys a record lacks are left empty."""
    keys = ["section", "mode", "columns", "weights", "dtype", "checkpoint_every", "column", "rep", "metric", "value"]
    with open(path, "w", newline="") as f:
        w = csv.DictWriter(f, fieldnames=keys)
        w.writeheader()
        for r in records:
            w.writerow({k: r.get(k, "") for k in keys})


def fmt(v: float | None, spec: str = ".2f") -> str:
    """Format a number, or return 'n/a' for None."""
    return "n/a" if v is None else format(v, spec)


def plot(path: Path, saved: dict, rss: dict, rec: dict, grad_err: dict, times: dict) -> None:
    """Save a 2x3 figure: saved MiB, RSS growth, step-time ratios, reconstruction error, gradient error."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(2, 3, figsize=(18, 9))
    ax = axes.ravel()
    for mode in sorted({m for m, _ in saved}, key=lambda m: (MODES.index(m) if m in MODES else len(MODES), m)):
        cols = sorted(c for (m, c) in saved if m == mode)
        ax[0].plot(cols, [saved[(mode, c)].nbytes / MIB for c in cols], "o-" if mode in MODES else "x--", label=mode)
    for mode in MODES:
        cols = sorted(c for (m, c) in rss if m == mode)
        ax[1].plot(cols, [(rss[(mode, c)]["peak"] - rss[(mode, c)]["before"]) / 1024 for c in cols], "o-", label=mode)
    ax[0].set(title="saved for backward (excl. params)", xlabel="columns", ylabel="MiB")
    ax[1].set(title="fwd+bwd peak RSS - RSS before the step", xlabel="columns", ylabel="MiB")
    if times:
        cols = sorted(times)
        width = 0.35
        for j, mode in enumerate(("reversible", "checkpoint")):
            r = [statistics.median(times[c][mode]) / statistics.median(times[c]["plain"]) for c in cols]
            ax[2].bar([i + (j - 0.5) * width for i in range(len(cols))], r, width, label=f"{mode} / plain")
        ax[2].axhline(1.0, color="k", lw=0.8)
        ax[2].set_xticks(range(len(cols)), [str(c) for c in cols])
    ax[2].set(title="training step time ratio (medians)", xlabel="columns", ylabel="ratio")
    styles = ["-", "--", ":", "-."]
    for a, data, title, pick in (
        (ax[3], rec, "reconstruction error, worst column", max),
        (ax[4], grad_err, "reversible vs plain gradient error, all params", lambda v: v[1]),
    ):
        settings = sorted({(w, d) for (w, d, _, _) in data})
        everies = sorted({e for (_, _, _, e) in data})
        for i, (w, d) in enumerate(settings):
            for e in everies:
                cols = sorted(c for (w2, d2, c, e2) in data if (w2, d2, e2) == (w, d, e))
                if cols:
                    vals = [max(pick(data[(w, d, c, e)]), 1e-12) for c in cols]
                    a.semilogy(cols, vals, marker="o", ls=styles[everies.index(e) % 4], color=f"C{i}",
                               label=f"{w}, {d}, K={e}")  # fmt: skip
        a.set(title=title, xlabel="columns", ylabel="relative error")
    ax[5].axis("off")
    for a in ax[:5]:
        a.grid(alpha=0.3)
        if a.get_legend_handles_labels()[0]:
            a.legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)


# ---------------------------------------------------------------------------------------------------------------
# Main
# ---------------------------------------------------------------------------------------------------------------


def parse_args(argv: Sequence[str] | None = None) -> tuple[BenchConfig, Path, bool]:
    """Parse the command line into a config, an output folder and the quick flag."""
    d = BenchConfig()
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0], formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument("--quick", action="store_true", help="tiny sizes and grids for a smoke test (< 30 s)")
    p.add_argument("--out-dir", type=Path, help="output folder (default: results/, or a temp folder with --quick)")
    p.add_argument("--channels", type=int, nargs=4, help=f"channels of the four levels (default {d.channels})")
    p.add_argument("--layers", type=int, nargs=4, help=f"blocks per level (default {d.layers})")
    p.add_argument("--batch", type=int, help=f"batch size (default {d.batch})")
    p.add_argument("--imgsz", type=int, help=f"input side, multiple of 32 (default {d.imgsz})")
    p.add_argument("--kernel", type=int, help=f"depthwise kernel (default {d.kernel})")
    p.add_argument("--mlp-ratio", type=float, help=f"MLP ratio (default {d.mlp_ratio})")
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
    p.add_argument("--rss-worker", help=argparse.SUPPRESS)
    a = p.parse_args(argv)
    if a.rss_worker:
        print(json.dumps(rss_worker(json.loads(a.rss_worker))))
        sys.exit(0)
    values = dict(QUICK) if a.quick else {}
    values.update({k: v for k, v in vars(a).items() if k in BenchConfig.__dataclass_fields__ and v is not None})
    cfg = BenchConfig(**values)
    if cfg.imgsz % 32:
        p.error(f"--imgsz must be a multiple of 32, got {cfg.imgsz}")
    out = a.out_dir or (Path(tempfile.mkdtemp(prefix="bench_memory_")) if a.quick else ROOT / "results")
    return cfg, out, a.quick


def main(argv: Sequence[str] | None = None) -> int:
    """Run all three measurements, print and write the report.

    Returns:
        (int): 0 when both memory targets pass (always with ``--quick``, whose tiny sizes are not representative:
            there the fixed stem activations dominate), else 1.
    """
    cfg, out_dir, quick = parse_args(argv)
    out_dir.mkdir(parents=True, exist_ok=True)
    if cfg.threads:
        torch.set_num_threads(cfg.threads)
    t_start = time.perf_counter()
    laps: list[tuple[str, float]] = []

    def lap(name: str) -> None:
        """Start timing section ``name`` (the previous one ends)."""
        laps.append((name, time.perf_counter()))

    header = machine()
    command = command_line()
    print(f"$ {command}\n{header}\nconfig: {cfg}")
    records: list[dict] = []
    md: list[str] = [
        "# RevCol memory, reconstruction and step-time benchmark",
        "",
        f"Produced by `{command}` on {header}.",
        "",
        f"Config: channels {cfg.channels}, layers {cfg.layers}, kernel {cfg.kernel}, mlp_ratio {cfg.mlp_ratio}, "
        f"batch {cfg.batch}, input {cfg.imgsz}x{cfg.imgsz}, float32, training mode, drop_path 0, seed {cfg.seed}."
        + (" **Quick (smoke-test) sizes.**" if quick else ""),
        "",
    ]

    lap("saved bytes")
    # 1. saved bytes --------------------------------------------------------------------------------------------
    saved: dict[tuple[str, int], SavedTensorCounter] = {}
    for c in cfg.mem_columns:
        for mode in MODES:
            saved[(mode, c)] = s = measure_saved(cfg, c, mode)
            for metric, v in (("saved_bytes", s.nbytes), ("saved_param_bytes", s.excluded_bytes), ("packs", s.packs)):
                records.append(dict(section="saved", mode=mode, columns=c, metric=metric, value=v))
            print(f"saved  {mode:13s} {c:2d} cols: {s.nbytes / MIB:8.2f} MiB (+{s.excluded_bytes / MIB:.2f} params)")
        for every in cfg.mem_every:
            name = f"reversible-K{every}"
            saved[(name, c)] = s = measure_saved(cfg, c, "reversible", every)
            records.append(dict(section="saved", mode=name, columns=c, checkpoint_every=every, metric="saved_bytes",
                                value=s.nbytes))  # fmt: skip
            print(f"saved  {name:13s} {c:2d} cols: {s.nbytes / MIB:8.2f} MiB")
    rows = []
    for c in cfg.mem_columns:
        r, p, k = (saved[(m, c)].nbytes for m in MODES)
        extra = [f"{saved[(f'reversible-K{e}', c)].nbytes / MIB:.2f}" for e in cfg.mem_every]
        rows.append([c, f"{r / MIB:.2f}", *extra, f"{p / MIB:.2f}", f"{k / MIB:.2f}", f"{r / p:.3f}", f"{k / p:.3f}"])
    md += [
        "## 1. Memory",
        "",
        "### Bytes saved for backward",
        "",
        "Distinct storages packed by `torch.autograd.graph.saved_tensors_hooks` during one training-mode forward of "
        "the whole model (stem included), keyed by untyped-storage `data_ptr` and charged the storage's `nbytes`; "
        "parameter storages (which convs and scales also save) are excluded here and listed in the CSV as "
        "`saved_param_bytes`. For `checkpoint` the hooks only see what each `checkpoint(column, ...)` call saves "
        "itself, i.e. its inputs (stem output, previous column's states); the activations recomputed in backward "
        "are not saved. `checkpoint_every=K` columns: the reversible mode that also keeps every K-th column's "
        "states, which bounds the reconstruction error (section 2).",
        "",
        markdown_table(
            ["columns", "reversible (MiB)", *[f"reversible, checkpoint_every={e} (MiB)" for e in cfg.mem_every],
             "plain (MiB)", "checkpoint (MiB)", "reversible / plain", "checkpoint / plain"],
            rows,
        ),
        "",
    ]

    def ratio(num: tuple[str, int], den: tuple[str, int]) -> float | None:
        return saved[num].nbytes / saved[den].nbytes if num in saved and den in saved else None

    targets = [
        ("saved bytes reversible(8) / reversible(2)", ratio(("reversible", 8), ("reversible", 2)), TARGET_REV_GROWTH),
        ("saved bytes reversible(4) / plain(4)", ratio(("reversible", 4), ("plain", 4)), TARGET_REV_VS_PLAIN),
    ]
    target_rows, all_pass = [], True
    for name, value, limit in targets:
        verdict = "n/a" if value is None else ("PASS" if value <= limit else "FAIL")
        all_pass &= verdict != "FAIL"
        target_rows.append([name, fmt(value, ".3f"), f"<= {limit}", verdict])
        records.append(dict(section="target", metric=name, value=value))
        print(f"{verdict}: {name} = {fmt(value, '.3f')} (target <= {limit})")
    md += ["### Targets", "", markdown_table(["ratio", "value", "target", "result"], target_rows), ""]
    if quick:
        md += ["Quick sizes: the targets are informational only (the stem's fixed share dominates tiny models).", ""]

    big = max(cfg.mem_columns)
    md += [
        f"### What the reversible path saves ({big} columns)",
        "",
        "Distinct saved storages grouped by shape (shape of the first tensor saved from each storage).",
        "",
        markdown_table(
            ["shape", "dtype", "storages", "MiB"],
            [[s, d, n, f"{v:.3f}"] for s, d, n, v in saved[("reversible", big)].breakdown()],
        ),
        "",
    ]

    lap("peak RSS")
    # 1b. peak RSS ---------------------------------------------------------------------------------------------
    rss: dict[tuple[str, int], dict] = {}
    for c in cfg.rss_columns:
        for mode in MODES:
            rss[(mode, c)] = r = measure_rss(cfg, c, mode)
            for metric in ("base", "warm", "before", "peak"):
                for prefix in ("", "ru_"):
                    key = prefix + metric
                    records.append(dict(section="rss", mode=mode, columns=c, metric=f"{key}_kib", value=r[key]))
            records.append(dict(section="rss", mode=mode, columns=c, metric="grad_bytes", value=r["grad_bytes"]))
            print(
                f"rss    {mode:10s} {c:2d} cols: peak {r['peak'] / 1024:8.1f} MiB, "
                f"+{(r['peak'] - r['before']) / 1024:.1f} over RSS before the step"
            )
    if rss:
        rows = []
        for c in cfg.rss_columns:
            for mode in MODES:
                r = rss[(mode, c)]
                rows.append(
                    [c, mode, f"{r['before'] / 1024:.1f}", f"{r['peak'] / 1024:.1f}",
                     f"{(r['peak'] - r['before']) / 1024:.1f}", f"{(r['warm'] - r['base']) / 1024:.1f}",
                     f"{r['grad_bytes'] / MIB:.1f}"]
                )  # fmt: skip
        resets = all(r["reset"] for r in rss.values())
        env = " ".join(f"{k}={os.environ.get(k, v)}" for k, v in MALLOC_ENV.items())
        md += [
            "### Peak RSS",
            "",
            "Peak RSS of a fresh subprocess per row (run with `" + env + "`, so freed tensors go back to the OS): "
            "build model and input (`base`), one warm-up forward+backward, zero the gradients (buffers kept), then "
            "one measured forward+backward (no optimizer). The peak is the kernel's RSS high-water mark, read as "
            "`VmHWM` from `/proc/self/status`: `resource.getrusage(RUSAGE_SELF).ru_maxrss` (also in the CSV as "
            "`ru_*`) is the same mark but never below the parent's RSS when the child was spawned, which hides "
            "small configurations. "
            + (
                "The RSS high-water mark is reset (`/proc/self/clear_refs` = 5) before the warm-up and again before "
                "the measured step, so `step peak - before` is the measured step's growth over the RSS it started from "
                "(model, gradient buffers, torch runtime). `first step peak - base` also contains one-time costs: "
                "allocating the gradients and whatever the first call loads (the first non-reentrant checkpoint call "
                "imports torch._dynamo/sympy lazily, ~170 MiB)."
                if resets
                else "The high-water mark could NOT be reset here, so `before` is the running maximum (including the "
                "import of torch) and small configurations may show no growth."
            ),
            "",
            markdown_table(
                ["columns", "mode", "before (MiB)", "step peak (MiB)", "step peak - before (MiB)",
                 "first step peak - base (MiB)", "grads (MiB)"],
                rows,
            ),  # fmt: skip
            "",
        ]

        def rss_ratio(num: tuple[str, int], den: tuple[str, int]) -> float | None:
            if num not in rss or den not in rss:
                return None
            return (rss[num]["peak"] - rss[num]["before"]) / max(rss[den]["peak"] - rss[den]["before"], 1)

        info = [
            ("RSS step growth reversible(8) / reversible(2)", rss_ratio(("reversible", 8), ("reversible", 2))),
            ("RSS step growth reversible(4) / plain(4)", rss_ratio(("reversible", 4), ("plain", 4))),
            ("RSS step growth checkpoint(4) / plain(4)", rss_ratio(("checkpoint", 4), ("plain", 4))),
        ]
        for name, value in info:
            records.append(dict(section="rss", metric=name, value=value))
        md += [
            "Same ratios on RSS (informational; RSS also counts the transient gradients and recomputation buffers "
            "of backward, not only what is saved):",
            "",
            markdown_table(["ratio", "value"], [[n, fmt(v, ".3f")] for n, v in info]),
            "",
        ]

    lap("reconstruction")
    # 2. reconstruction ----------------------------------------------------------------------------------------
    rec: dict[tuple[str, str, int, int], list[float]] = {}
    for weights in ("default", "trained-like"):
        for dtype in ("float32", "bf16-autocast"):
            for c in cfg.rec_columns:
                for every, errs in measure_reconstruction(cfg, c, weights, dtype).items():
                    rec[(weights, dtype, c, every)] = errs
                    for j, e in enumerate(errs):
                        records.append(
                            dict(section="reconstruction", weights=weights, dtype=dtype, columns=c,
                                 checkpoint_every=every, column=j + 1, metric="rel_error", value=e)
                        )  # fmt: skip
                    tag = f"{weights:12s} {dtype:13s} {c:2d} cols K={every}"
                    print(f"rec    {tag}: first {errs[0]:.2e} max {max(errs):.2e}")
    if rec:
        lo, hi = cfg.alpha_range
        md += [
            "## 2. Reconstruction error",
            "",
            "True states: plain forward in eval mode, every column's four states recorded. Reconstruction: "
            "`reconstruct_states` from the stem output and the last column's states (the reverse pass's arithmetic), "
            "restarting from the exact states of every K-th column when `checkpoint_every = K` (anchors are exact, "
            "error 0). Error of a column: max over its four levels of ||rec - true|| / ||true|| (float64 norms). "
            "`bf16-autocast`: the forward and the reconstruction both run under `torch.autocast('cpu', "
            "dtype=torch.bfloat16)` (states are float32; level bodies compute in bf16).",
            "",
            "Weights: **default** = the model's init (conv weights trunc-normal std 0.02, layer scale gamma = 1e-6, "
            f"alpha = 0.5). **trained-like** = default init, then every block's gamma = {cfg.gamma} x "
            f"(1 + {cfg.gamma_noise} N(0, 1)) per channel and every alpha's magnitude drawn uniformly from "
            f"[{lo}, {hi}] per channel, sign kept (all positive, as initialised).",
            "",
            markdown_table(
                ["weights", "dtype", "columns", "checkpoint_every", "first column", "worst column"],
                [
                    [w, d, c, e, f"{v[0]:.2e}", f"{max(v):.2e} (col {v.index(max(v)) + 1})"]
                    for (w, d, c, e), v in rec.items()
                ],
            ),
            "",
        ]
        n = max(cfg.rec_columns)
        per = [(k, v) for k, v in rec.items() if k[2] == n]
        md += [
            f"### Per column ({n} columns; column {n} is the saved last column, exact)",
            "",
            markdown_table(
                ["weights", "dtype", "K", *[str(j + 1) for j in range(n - 1)]],
                [[w, d, e, *[f"{x:.1e}" for x in v[:-1]]] for (w, d, _, e), v in per],
            ),
            "",
        ]

    lap("gradient check")
    # 2b. gradient check ---------------------------------------------------------------------------------------
    grad_err: dict[tuple[str, str, int, int], tuple[float, float]] = {}
    for weights in ("default", "trained-like"):
        for dtype in ("float32", "bf16-autocast"):
            for c in cfg.grad_columns:
                for every in cfg.rec_every:
                    if every and every >= c:
                        continue
                    grad_err[(weights, dtype, c, every)] = e = measure_gradient_error(cfg, c, weights, dtype, every)
                    for metric, v in zip(("grad_rel_error_first_column", "grad_rel_error_all"), e):
                        records.append(dict(section="gradient", weights=weights, dtype=dtype, columns=c,
                                            checkpoint_every=every, metric=metric, value=v))  # fmt: skip
                    print(f"grad   {weights:12s} {dtype:13s} {c:2d} cols K={every}: first {e[0]:.3e} all {e[1]:.3e}")
    if grad_err:
        md += [
            "### Gradient error of the reversible path",
            "",
            "What the reconstruction error does to training: parameter gradients of `reversible=True` (with "
            "`checkpoint_every=K`) against `reversible=False` on the same model, weights (as above), input and dtype "
            "setting (for `bf16-autocast` both runs are under autocast, so the reference is bf16 training too); loss = "
            "sum of every output element times a fixed random factor. ||g_rev - g_plain|| / ||g_plain|| over the "
            "first column's parameters and over all parameters.",
            "",
            markdown_table(
                ["weights", "dtype", "columns", "checkpoint_every", "first column params", "all params"],
                [[w, d, c, k, f"{a:.2e}", f"{b:.2e}"] for (w, d, c, k), (a, b) in grad_err.items()],
            ),
            "",
        ]

    lap("step time")
    # 3. step time ---------------------------------------------------------------------------------------------
    times: dict[int, dict[str, list[float]]] = {}
    for c in cfg.time_columns:
        times[c] = t = measure_step_times(cfg, c)
        med = {m: statistics.median(v) for m, v in t.items()}
        for mode, v in t.items():
            for j, s in enumerate(v):
                records.append(dict(section="time", mode=mode, columns=c, rep=j, metric="step_s", value=s))
        print(
            f"time   {c:2d} cols: plain {med['plain']:.3f}s reversible {med['reversible']:.3f}s "
            f"checkpoint {med['checkpoint']:.3f}s -> rev/plain {med['reversible'] / med['plain']:.2f}, "
            f"ckpt/plain {med['checkpoint'] / med['plain']:.2f}"
        )
    if times:
        rows = []
        for c, t in times.items():
            med = {m: statistics.median(v) for m, v in t.items()}
            rows.append(
                [c, f"{med['plain']:.3f}", f"{med['reversible']:.3f}", f"{med['checkpoint']:.3f}",
                 f"{med['reversible'] / med['plain']:.2f}", f"{med['checkpoint'] / med['plain']:.2f}"]
            )  # fmt: skip
            for mode in ("reversible", "checkpoint"):
                records.append(dict(section="time", mode=mode, columns=c, metric="median_ratio_vs_plain",
                                    value=med[mode] / med["plain"]))  # fmt: skip
        md += [
            "## 3. Training step time",
            "",
            f"Forward + backward + SGD(momentum 0.9) step, same config, identical initial weights; {cfg.warmup} "
            f"untimed step(s) per mode, then {cfg.reps} rounds each timing one step of every mode (order rotated "
            "every round); medians. Ratios of medians.",
            "",
            markdown_table(
                ["columns", "plain (s)", "reversible (s)", "checkpoint (s)", "reversible / plain",
                 "checkpoint / plain"],
                rows,
            ),  # fmt: skip
            "",
        ]

    elapsed = time.perf_counter() - t_start
    ends = [t for _, t in laps[1:]] + [time.perf_counter()]
    sections = ", ".join(f"{name} {end - t:.0f} s" for (name, t), end in zip(laps, ends))
    load = ", ".join(f"{v:.2f}" for v in os.getloadavg()) if hasattr(os, "getloadavg") else "n/a"
    md += [f"Total time {elapsed:.0f} s ({sections}); load average at end {load}.", ""]
    (out_dir / "memory.md").write_text("\n".join(md))
    write_csv(out_dir / "memory.csv", records)
    plot(out_dir / "memory.png", saved, rss, rec, grad_err, times)
    print(f"wrote {out_dir / 'memory.md'}, memory.csv, memory.png in {elapsed:.0f} s")
    print("targets:", "PASS" if all_pass else "FAIL", "(informational at --quick sizes)" if quick else "")
    return 0 if all_pass or quick else 1


if __name__ == "__main__":
    sys.exit(main())
