"""Pure-PyTorch RevCol modules. Nothing here imports Ultralytics."""

from .column import Column, DownFusion, Level, UpFusion
from .layers import (
    BLOCKS,
    Bottleneck,
    C2fBlock,
    ChannelScale,
    ConvNeXtBlock,
    ConvNorm,
    DropPath,
    LayerNorm2d,
    ReversibleScale,
)
from .reversible import ReversibleColumns, reconstruct_states
from .revcol import STEMS, RevCol, Stem

__all__ = (
    "BLOCKS",
    "STEMS",
    "Bottleneck",
    "C2fBlock",
    "ChannelScale",
    "Column",
    "ConvNeXtBlock",
    "ConvNorm",
    "DownFusion",
    "DropPath",
    "LayerNorm2d",
    "Level",
    "RevCol",
    "ReversibleColumns",
    "ReversibleScale",
    "Stem",
    "UpFusion",
    "reconstruct_states",
)
