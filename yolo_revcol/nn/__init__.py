"""Pure-PyTorch RevCol modules. Nothing here imports Ultralytics."""

from .column import DOWNS, Column, DownFusion, Level, UpFusion
from .layers import (
    BLOCKS,
    Bottleneck,
    C2fBlock,
    ChannelScale,
    ConvNeXtBlock,
    ConvNorm,
    DropPath,
    ImageDecoder,
    InvertedResidual,
    LayerNorm2d,
    ReversibleScale,
)
from .official import OfficialCheckpointError, official_state_dict
from .revcol import STEMS, RevCol, Stem
from .reversible import ReversibleColumns

__all__ = (
    "BLOCKS",
    "DOWNS",
    "STEMS",
    "Bottleneck",
    "C2fBlock",
    "ChannelScale",
    "Column",
    "ConvNeXtBlock",
    "ConvNorm",
    "DownFusion",
    "DropPath",
    "ImageDecoder",
    "InvertedResidual",
    "LayerNorm2d",
    "Level",
    "OfficialCheckpointError",
    "RevCol",
    "ReversibleColumns",
    "ReversibleScale",
    "Stem",
    "UpFusion",
    "official_state_dict",
)
