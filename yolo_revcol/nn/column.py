"""One RevCol column: four levels (strides 4, 8, 16, 32), their fusions and alphas. Level l of column k computes

    c_l^(k) = Level_l(c_{l-1}^(k), c_{l+1}^(k-1)) + alpha_l^(k) * c_l^(k-1)        (c_{-1} = stem output)
    c_l^(k-1) = (c_l^(k) - Level_l(c_{l-1}^(k), c_{l+1}^(k-1))) / alpha_l^(k)     (alpha kept away from zero)

The first column has no previous column: no up input, no alpha term.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import torch
from torch import nn

from .layers import C2fBlock, ConvNeXtBlock, ConvNorm, InvertedResidual, ReversibleScale, upsample2x

__all__ = ("DOWNS", "DownFusion", "UpFusion", "Level", "Column", "default_down")

NUM_LEVELS = 4
DOWNS = ("conv", "patch", "dw")  # down fusions: 3x3 stride-2 conv, 2x2 stride-2 conv, depthwise-separable 3x3


def norm_of(block: str) -> str:
    """The norm a block family uses in its stem and fusions: LayerNorm for convnext, BatchNorm for c2f."""
    return "ln" if block == "convnext" else "bn"


def default_down(block: str) -> str:
    """The down fusion a block family uses unless told otherwise: the paper's 2x2 conv for convnext, else YOLO's 3x3."""
    return "patch" if block == "convnext" else "conv"


class DownFusion(nn.Module):
    """Bring the finer level of the same column down to this level (stride 2): conv(s) + norm (+ SiLU for BN families).

    Args:
        c1 (int): Channels of the finer level.
        c2 (int): Channels of this level.
        block (str): Block family (its norm and activation).
        kind (str | None): "conv" (3x3 stride 2), "patch" (2x2 stride 2) or "dw" (3x3 stride-2 depthwise, then
            1x1); None for the family's default (``default_down``).
    """

    def __init__(self, c1: int, c2: int, block: str = "convnext", kind: str | None = None):
        super().__init__()
        kind = kind or default_down(block)
        if kind not in DOWNS:
            raise ValueError(f"DownFusion kind must be one of {', '.join(DOWNS)}, got {kind!r}")
        norm, act = norm_of(block), block != "convnext"
        if kind == "dw":
            self.conv = nn.Sequential(
                ConvNorm(c1, c1, 3, stride=2, norm=norm, act=False, groups=c1), ConvNorm(c1, c2, 1, norm=norm, act=act)
            )
        else:
            self.conv = ConvNorm(c1, c2, 3 if kind == "conv" else 2, stride=2, norm=norm, act=act)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Return the (N, c2, H/2, W/2) map."""
        return self.conv(x)


class UpFusion(nn.Module):
    """Bring the previous column's coarser level up to this level: 1x1 conv + norm (at the coarse size), nearest x2.

    Args:
        c1 (int): Channels of the coarser level.
        c2 (int): Channels of this level.
        block (str): Block family, "convnext" or "c2f" (LayerNorm or BatchNorm).
    """

    def __init__(self, c1: int, c2: int, block: str = "convnext"):
        super().__init__()
        self.proj = ConvNorm(c1, c2, 1, norm=norm_of(block), act=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Return the (N, c2, 2H, 2W) map."""
        return upsample2x(self.proj(x))


@dataclass(frozen=True)
class BlockSettings:
    """What every block of a column is built with: depthwise ``kernel``, expansion ``mlp_ratio`` (convnext,
    inverted), initial ``layer_scale`` (convnext), the ``block`` family (``BLOCKS``) and the ``down`` fusion kind
    (``DOWNS``; None: the family's default)."""

    kernel: int
    mlp_ratio: float
    layer_scale: float
    block: str
    down: str | None


class Level(nn.Module):
    """One level of a column: down + up fusions summed, then ``depth`` blocks (c2f: one C2f of ``depth`` bottlenecks).

    Args:
        index (int): Level index 0..3 (stride 4 * 2**index).
        channels (Sequence[int]): Channels of all four levels.
        depth (int): Number of blocks at this level.
        drop_path (Sequence[float]): DropPath probability of each block (length ``depth``).
        has_up (bool): Whether this level receives the previous column's coarser level.
        blocks (BlockSettings): How the blocks and fusions are built.
    """

    def __init__(
        self,
        index: int,
        channels: Sequence[int],
        depth: int,
        drop_path: Sequence[float],
        has_up: bool,
        blocks: BlockSettings,
    ):
        super().__init__()
        c, b = channels[index], blocks
        self.depth = depth
        # Level 0's down input is the stem output, which already has channels[0] channels at stride 4.
        self.down = DownFusion(channels[index - 1], c, b.block, b.down) if index > 0 else nn.Identity()
        self.up = UpFusion(channels[index + 1], c, b.block) if has_up else None
        if b.block == "convnext":
            self.blocks = nn.Sequential(
                *(ConvNeXtBlock(c, b.kernel, b.mlp_ratio, b.layer_scale, drop_path[i]) for i in range(depth))
            )
        elif b.block == "inverted":
            self.blocks = nn.Sequential(
                *(InvertedResidual(c, b.kernel, b.mlp_ratio, drop_path[i]) for i in range(depth))
            )
        else:
            self.blocks = C2fBlock(c, depth, b.kernel, drop_path)

    def forward(self, down: torch.Tensor, up: torch.Tensor | None = None) -> torch.Tensor:
        """Return Level_l(down, up); ``up`` must be given exactly when the level has an up fusion."""
        x = self.down(down)
        if self.up is not None:
            x = x + self.up(up)
        return self.blocks(x)


class Column(nn.Module):
    """A four-level column; the network's first column has no up fusions and no alphas.

    Args:
        channels (Sequence[int]): Channels of the four levels.
        layers (Sequence[int]): Blocks per level.
        drop_path (Sequence[float]): DropPath probability of every block, levels concatenated.
        first (bool): Whether this is the network's first column.
        blocks (BlockSettings): How the blocks and fusions are built.
    """

    def __init__(
        self,
        channels: Sequence[int],
        layers: Sequence[int],
        drop_path: Sequence[float],
        first: bool,
        blocks: BlockSettings,
    ):
        super().__init__()
        self.first = first
        starts = [sum(layers[:i]) for i in range(NUM_LEVELS)]
        self.levels = nn.ModuleList(
            Level(
                i,
                channels,
                layers[i],
                drop_path[starts[i] : starts[i] + layers[i]],
                i < NUM_LEVELS - 1 and not first,
                blocks,
            )
            for i in range(NUM_LEVELS)
        )
        self.alphas = None if first else nn.ModuleList(ReversibleScale(c) for c in channels)

    def level_body(self, index: int, down: torch.Tensor, prev: Sequence[torch.Tensor] | None) -> torch.Tensor:
        """Return Level_index(down, prev[index + 1]) in ``down``'s dtype (the part that is not reversible)."""
        has_up = prev is not None and index < NUM_LEVELS - 1
        return self.levels[index](down, prev[index + 1] if has_up else None).to(down.dtype)

    def level_output(self, index: int, body: torch.Tensor, prev: Sequence[torch.Tensor] | None) -> torch.Tensor:
        """Return c_l^(k) = body + alpha_l^(k) * prev[index] (``body`` alone in the first column)."""
        return body if prev is None else body + self.alphas[index](prev[index])

    def level_forward(self, index: int, down: torch.Tensor, prev: Sequence[torch.Tensor] | None) -> torch.Tensor:
        """Return this column's state at ``index`` given its down input and the previous column's states."""
        return self.level_output(index, self.level_body(index, down, prev), prev)

    def forward(self, x: torch.Tensor, prev: Sequence[torch.Tensor] | None = None) -> list[torch.Tensor]:
        """Return the four states (strides 4-32) from the stem output and the previous column's (None: first)."""
        if (prev is None) != self.first:
            raise ValueError("the first column takes no previous states; every later column needs them")
        states, down = [], x
        for i in range(NUM_LEVELS):
            down = self.level_forward(i, down, prev)
            states.append(down)
        return states
