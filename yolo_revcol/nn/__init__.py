"""Pure-PyTorch RevCol modules. Nothing here imports Ultralytics."""

from .column import Column, DownFusion, Level, UpFusion
from .layers import ChannelScale, ConvNeXtBlock, DropPath, LayerNorm2d, ReversibleScale
from .reversible import ReversibleColumns, reconstruct_states
from .revcol import RevCol, Stem

__all__ = (
    "ChannelScale",
    "Column",
    "ConvNeXtBlock",
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
