"""Stock YOLO weights into RevCol models: the neck and head transfer by structure, the RevCol backbone stays as built.

Ultralytics' ``BaseModel.load`` (``model.load(...)``, ``pretrained=...`` in training) matches tensors by name, and a
name starts with the layer index. A RevCol model has fewer backbone layers than the stock model (one RevCol row and
its Index rows replace the stock backbone), so the same index names a different layer: by name, a few tensors land
by accident in the wrong layers and none of the neck or head transfers.

``with_structural_transfer`` wraps ``BaseModel.load`` so that, when the receiving model has a RevCol and the source
has none, the source's layers are re-indexed first. Layers pair by position counted from the end (the head): stock
layer ``len(stock) - r`` with our layer ``len(ours) - r``, r = 1, 2, ..., down to (not into) our RevCol section: the
RevCol layer and every layer that reads it (the Index rows). A pair must be wired alike: each input counted from the
end is the same on both sides, or lies before the paired range on both sides (the two backbones); the first pair
wired differently ends the walk, so a head of another shape transfers nothing by accident. A pair transfers only if
its layers are of one kind (the same class, or one a subclass of the other, e.g. Detect and Segment); others are
skipped. Ultralytics' own ``load`` then runs on the re-indexed source, so its rules apply to the paired layers
only: tensors match by their name inside the layer and by shape, the Detect class branch is rebuilt for a new class
count, class rows are remapped by name, and its "Transferred N/M items" line counts exactly what was copied.

The walk covers the ``head`` section of both YAMLs (the stock neck and head, kept verbatim in ours) and then the
stock layers that close the ``backbone`` section in both: SPPF, and C2PSA in YOLO11. Those pair like any other layer
and shapes decide, tensor by tensor: their input is RevCol's P5 map, narrower than the stock backbone's at most
scales, so the first conv (and its norm) keeps its initial weights and the rest transfers.
"""

from __future__ import annotations

import functools
from collections.abc import Sequence

from torch import nn

from ..nn.revcol import RevCol
from .aux import revcol_of

__all__ = ("StockLayers", "revcol_section_end", "structural_pairs", "with_structural_transfer")


def _sources(layer: nn.Module, i: int) -> list[int]:
    """Absolute indices of the layers that layer ``i`` reads (Ultralytics records them in ``layer.f``)."""
    f = getattr(layer, "f", -1)
    return [s if s >= 0 else i + s for s in ([f] if isinstance(f, int) else f)]


def revcol_section_end(layers: Sequence[nn.Module]) -> int:
    """Index of the last layer that is a RevCol or reads one directly (its Index rows); -1 when there is none."""
    revcols = {i for i, m in enumerate(layers) if isinstance(m, RevCol)}
    readers = {i for i, m in enumerate(layers) if revcols.intersection(_sources(m, i))}
    return max(revcols | readers, default=-1)


def _same_kind(a: nn.Module, b: nn.Module) -> bool:
    """Whether two layers are of one kind: the same class, or one a subclass of the other (Detect and Segment)."""
    return isinstance(a, type(b)) or isinstance(b, type(a))


def _wired_alike(src: Sequence[nn.Module], s: int, dst: Sequence[nn.Module], d: int, span: int) -> bool:
    """Whether stock layer ``s`` and our layer ``d`` read the same layers, counted from the end.

    An input further back than ``span`` layers from the end lies in the part that is not paired (the two different
    backbones); there the two only have to agree that it lies there.
    """
    a, b = _sources(src[s], s), _sources(dst[d], d)
    if len(a) != len(b):
        return False
    for x, y in zip(a, b):
        x, y = x - len(src), y - len(dst)  # counted from the end: -1 is the last layer
        if (x < -span) != (y < -span) or (x >= -span and x != y):
            return False
    return True


def structural_pairs(target: nn.Module, source: nn.Module) -> list[tuple[int, int]]:
    """Pair the source model's layers with the target RevCol model's by structure, counted from the head.

    Args:
        target (nn.Module): The receiving model (an Ultralytics model with a RevCol backbone).
        source (nn.Module): The stock model whose weights are loaded.

    Returns:
        (list[tuple[int, int]]): (stock layer index, our layer index) of every pair whose weights may transfer,
            head first.
    """
    src, dst = list(source.model), list(target.model)
    span = min(len(src), len(dst) - 1 - revcol_section_end(dst))  # positions from the end that may pair
    pairs = []
    for r in range(1, span + 1):
        s, d = len(src) - r, len(dst) - r
        if not _wired_alike(src, s, dst, d, span):
            break  # the two models diverge here: nothing further back corresponds
        if _same_kind(src[s], dst[d]):
            pairs.append((s, d))
    return pairs


class StockLayers(nn.Module):
    """A source model's paired layers under our layer indices, for Ultralytics' ``BaseModel.load``.

    ``model[j]`` is the stock layer paired with our layer ``j`` and an empty placeholder elsewhere, so the state
    dict holds exactly the transferable tensors, named as in our model. Layers are shared with the source, not copied.

    Args:
        source (nn.Module): The stock model.
        pairs (Sequence[tuple[int, int]]): (stock index, our index) pairs, from ``structural_pairs``.
        length (int): Number of layers of our model.
    """

    def __init__(self, source: nn.Module, pairs: Sequence[tuple[int, int]], length: int):
        """Place the paired stock layers at our indices; keep what ``load`` reads besides weights."""
        super().__init__()
        at = {d: s for s, d in pairs}
        self.model = nn.ModuleList(source.model[at[j]] if j in at else nn.Identity() for j in range(length))
        self.names = getattr(source, "names", None)  # class-name remapping of the head
        self.pt_path = getattr(source, "pt_path", None)  # provenance, recorded by load
        self.source_fused = bool(getattr(source, "is_fused", lambda: False)())

    def is_fused(self) -> bool:
        """Whether the source model was fused for inference (load warns that fused weights transfer less)."""
        return self.source_fused


def _describe(pairs: Sequence[tuple[int, int]], end: int) -> str:
    """One log line: which stock layers went where, and what stays as built."""
    if not pairs:
        return f"RevCol model: no stock layer corresponds to layers {end + 1}+ by structure; nothing transfers"
    (s_last, d_last), (s_first, d_first) = pairs[0], pairs[-1]
    return (
        f"RevCol model: stock layers {s_first}-{s_last} -> layers {d_first}-{d_last} by structure (counted from the "
        f"head, matching shapes); layers 0-{end} (RevCol backbone) keep their weights"
    )


def with_structural_transfer(load):
    """Wrap ``BaseModel.load`` so a RevCol model takes a stock model's neck and head by structure, not by name.

    Only when the receiving model has a RevCol and the source (a model or a checkpoint dict) has none; every other
    load is Ultralytics' own.
    """

    @functools.wraps(load)
    def wrapped(self, weights, *args, **kwargs):
        """Re-index a stock source to our layer positions, then load it with Ultralytics' own rules."""
        source = (weights.get("ema") or weights.get("model")) if isinstance(weights, dict) else weights
        layers = getattr(source, "model", None)
        if isinstance(layers, nn.Sequential) and revcol_of(self) is not None and revcol_of(source) is None:
            pairs = structural_pairs(self, source)
            if kwargs.get("verbose", args[0] if args else True):
                from ultralytics.utils import LOGGER

                LOGGER.info(_describe(pairs, revcol_section_end(list(self.model))))
            weights = StockLayers(source, pairs, len(self.model))
        return load(self, weights, *args, **kwargs)

    return wrapped
