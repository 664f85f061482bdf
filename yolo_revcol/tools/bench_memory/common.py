"""Shared parts of the memory benchmark: its configuration, the models and inputs every section measures.

``BenchConfig`` holds the sizes and grids (``QUICK`` the smoke-test ones), ``Section`` is what every section
returns, and ``build_model`` / ``make_input`` / ``set_trained_like`` make the RevCol, the batch and the
trained-looking weights the sections run on (``CheckpointedRevCol`` is the ``checkpoint`` mode's wrapper).
"""

from __future__ import annotations

import inspect
from collections.abc import Sequence
from dataclasses import dataclass, field

import torch
import yaml
from torch import nn
from torch.utils.checkpoint import checkpoint

from ...nn import ChannelScale, RevCol, ReversibleScale
from ...paths import cfg_dir

MODES = ("reversible", "plain", "checkpoint")
MIB = 2**20
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
        mem_every (list[int]): Explicit ``checkpoint_every`` values measured beside the reversible mode's default
            (``auto``) in the saved-bytes table.
        rss_columns (list[int]): Column counts for peak RSS (one subprocess per count and mode).
        rec_columns (list[int]): Column counts for the reconstruction error.
        rec_every (list[int]): ``checkpoint_every`` values of the division-only reconstruction (0: none); the
            gradient check runs the reversible path at the default and at the nonzero ones.
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
    mem_columns: list[int] = field(default_factory=lambda: [1, 2, 4, 8, 16])
    mem_every: list[int] = field(default_factory=lambda: [1, 2, 4])
    rss_columns: list[int] = field(default_factory=lambda: [1, 2, 4, 8, 16])
    rec_columns: list[int] = field(default_factory=lambda: [2, 4, 8, 16])
    rec_every: list[int] = field(default_factory=lambda: [0, 2, 4])
    grad_columns: list[int] = field(default_factory=lambda: [2, 4, 8, 16])
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
    cfg: BenchConfig, block: str, columns: int, mode: str, seed: int | None = None, every: int | str = "auto"
) -> nn.Module:
    """Build a RevCol of one block family with ``columns`` columns, run as ``mode``, in training mode.

    Args:
        cfg (BenchConfig): Sizes.
        block (str): Block family, "c2f" or "convnext".
        columns (int): Number of columns.
        mode (str): One of ``MODES``.
        seed (int | None): Seed for the weights; ``cfg.seed`` when None.
        every (int | str): ``checkpoint_every`` of the model (used by the reversible mode only); the class
            default "auto" unless a table measures an explicit K.

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
