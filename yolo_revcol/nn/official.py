"""Official RevCol checkpoints (megvii-research/RevCol) in and out of our ``RevCol``.

The official backbone and ours compute the same function when ours is built with ``block="convnext"`` and
``stem="patchify"``; only names and a few tensor layouts differ:

=====================================================  ==================================================  ==========
official key (per column ``subnet{i}``, level ``l``)   ours                                                layout
=====================================================  ==================================================  ==========
``stem.0`` (4x4 stride-4 conv), ``stem.1`` (LN)        ``stem.convs.0.conv``, ``stem.convs.0.norm``        same
``subnet{i}.alpha{l}``                                 ``columns.{i}.alphas.{l}.weight``                   (1,C,1,1)->C
``subnet{i}.level{l}.fusion.down.{0,1}``               ``columns.{i}.levels.{l}.down.conv.{conv,norm}``    same
``subnet{i}.level{l}.fusion.up.channel_reschedule.0``  ``columns.{i}.levels.{l}.up.proj.conv``             Linear->1x1
``subnet{i}.level{l}.fusion.up.channel_reschedule.1``  ``columns.{i}.levels.{l}.up.proj.norm``             same
``subnet{i}.level{l}.blocks.{j}.{dwconv,norm}``        ``columns.{i}.levels.{l}.blocks.{j}.{dwconv,norm}`` same
``subnet{i}.level{l}.blocks.{j}.pwconv{1,2}``          ``columns.{i}.levels.{l}.blocks.{j}.pwconv{1,2}``   Linear->1x1
``subnet{i}.level{l}.blocks.{j}.gamma``                ``columns.{i}.levels.{l}.blocks.{j}.gamma.weight``  same
=====================================================  ==================================================  ==========

The first column's alphas (unused officially) are not loaded. Files are classification releases (``model``,
``state_dict_ema``, ...) or detection/segmentation ones (``state_dict``, ``backbone.`` keys); whatever is not the
backbone is skipped and counted. Why the numerics match: docs/official-weights.md.
"""

from __future__ import annotations

import logging
import pickle
import re
import types
import zipfile
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

import torch
from torch import nn

__all__ = (
    "OfficialArchitecture",
    "OfficialCheckpointError",
    "OfficialLoad",
    "build_official",
    "check_official",
    "infer_architecture",
    "load_official",
    "official_key_map",
    "official_state_dict",
    "read_official",
)

# A child of Ultralytics' logger (a name, not an import): the load line shows wherever Ultralytics logs, e.g. under
# `yolo train`, and stays quiet in plain PyTorch unless logging is configured.
LOGGER = logging.getLogger("ultralytics.yolo_revcol")
NUM_LEVELS = 4
STATE_KEYS = ("state_dict_ema", "model", "state_dict")  # default order: EMA weights first, then the plain ones
_SUBNET = re.compile(r"^subnet(\d+)\.")
_BLOCK = re.compile(r"^subnet0\.level(\d)\.blocks\.(\d+)\.dwconv\.weight$")


class OfficialCheckpointError(ValueError):
    """An official RevCol checkpoint cannot be read or does not fit; the message names the file or key."""


@dataclass(frozen=True)
class OfficialArchitecture:
    """A RevCol architecture as read from an official state dict's names and shapes.

    Attributes:
        c1 (int): Input channels of the stem.
        channels (tuple[int, ...]): Channels of the four levels.
        layers (tuple[int, ...]): Blocks per level.
        columns (int): Number of columns (``subnet{i}``).
        kernel (int): Depthwise kernel size of the blocks.
        mlp_ratio (float): Hidden width of the blocks' MLP relative to their channels.
    """

    c1: int
    channels: tuple[int, ...]
    layers: tuple[int, ...]
    columns: int
    kernel: int
    mlp_ratio: float

    def kwargs(self) -> dict:
        """Return the ``RevCol`` constructor arguments that build this architecture."""
        return dict(
            c1=self.c1,
            channels=list(self.channels),
            layers=list(self.layers),
            columns=self.columns,
            kernel=self.kernel,
            mlp_ratio=self.mlp_ratio,
            block="convnext",
            stem="patchify",
        )


@dataclass(frozen=True)
class OfficialLoad:
    """What ``load_official`` did.

    Attributes:
        source (str): The file (or "dict") and the entry the weights came from.
        loaded (int): Tensors copied into the model.
        skipped (int): Tensors of the checkpoint not loaded (heads, neck, the first column's unused alphas).
    """

    source: str
    loaded: int
    skipped: int

    def __str__(self) -> str:
        """One line for logs."""
        return (
            f"RevCol: loaded {self.loaded} official tensors from {self.source}; skipped {self.skipped} "
            "(pretraining heads, neck, the first column's unused alphas)"
        )


class _Unknown:
    """Stand-in for objects a checkpoint pickles besides tensors (e.g. the training config): takes and ignores all."""

    def __init__(self, *args, **kwargs):
        pass

    def __setstate__(self, state) -> None:
        pass

    def __setitem__(self, key, value) -> None:
        pass

    def append(self, value) -> None:
        pass

    def extend(self, values) -> None:
        pass


class _TensorsOnlyUnpickler(pickle.Unpickler):
    """Resolves only the globals torch's weights-only unpickler allows (as safe); any other class is ``_Unknown``."""

    def find_class(self, module: str, name: str):
        """Return an allow-listed global, else the placeholder class."""
        from torch._weights_only_unpickler import _get_allowed_globals

        return _get_allowed_globals().get(f"{module}.{name}", _Unknown)


def _torch_load(path: Path) -> dict:
    """Load a checkpoint's tensors without running code from it; other pickled objects become placeholders."""
    # The classification releases also pickle their training config (a yacs node): weights_only refuses those files
    # Memory-mapped: a model YAML's check and the build that follows both read the file, and neither copies it
    mmap = zipfile.is_zipfile(path)  # the format of every torch.save since 1.6; older files cannot be mapped
    try:
        return torch.load(path, map_location="cpu", weights_only=True, mmap=mmap)
    except pickle.UnpicklingError:
        module = types.SimpleNamespace(Unpickler=_TensorsOnlyUnpickler, __name__="pickle", load=pickle.load)
        return torch.load(path, map_location="cpu", weights_only=False, pickle_module=module, mmap=mmap)


def _state_dict(checkpoint, key: str | None) -> tuple[Mapping, str]:
    """Return the state dict inside a loaded checkpoint and the name of the entry it came from."""
    if not isinstance(checkpoint, Mapping):
        raise OfficialCheckpointError(f"expected a state dict or a dict holding one, got {type(checkpoint).__name__}")
    if key is not None:
        if not isinstance(checkpoint.get(key), Mapping):
            found = [k for k in STATE_KEYS if isinstance(checkpoint.get(k), Mapping)]
            raise OfficialCheckpointError(f"checkpoint has no state dict under key {key!r}; it has {found or 'none'}")
        return checkpoint[key], key
    for name in STATE_KEYS:  # 'state_dict_ema' is None in files trained without EMA
        if isinstance(checkpoint.get(name), Mapping):
            return checkpoint[name], name
    return checkpoint, ""


def _backbone(state: Mapping) -> tuple[dict[str, torch.Tensor], int]:
    """Return the backbone tensors (prefixes ``module.`` / ``backbone.`` removed, the first column's alphas left out)
    and how many others there were."""
    keys = [k[len("module.") :] if k.startswith("module.") else k for k in state]
    prefixed = any(k.startswith("backbone.") for k in keys)  # detection/segmentation: only backbone.* is ours
    out = {}
    for key, value in zip(keys, state.values()):
        if prefixed:
            if not key.startswith("backbone."):
                continue
            key = key[len("backbone.") :]
        ours = key.startswith("stem.") or (_SUBNET.match(key) and not key.startswith("subnet0.alpha"))
        if ours and torch.is_tensor(value):
            out[key] = value
    return out, len(state) - len(out)


def read_official(checkpoint, key: str | None = None) -> tuple[dict[str, torch.Tensor], OfficialLoad]:
    """Read the backbone tensors of an official RevCol checkpoint.

    Args:
        checkpoint (str | Path | Mapping): A checkpoint file, or its loaded contents, in any published layout.
        key (str | None): Entry to read (e.g. "model" or "state_dict_ema"); default the EMA weights when present,
            else "model", else "state_dict", else the mapping itself.

    Returns:
        (tuple[dict[str, torch.Tensor], OfficialLoad]): Backbone tensors under official names, and a record whose
            ``skipped`` counts the tensors left out (``loaded`` is 0 until they are loaded).

    Raises:
        OfficialCheckpointError: If the file is missing or unreadable, or holds no RevCol backbone.
    """
    where = "dict"
    if isinstance(checkpoint, (str, Path)):
        path = Path(checkpoint)
        if not path.is_file():
            raise OfficialCheckpointError(f"official RevCol checkpoint {str(path)!r} not found")
        try:
            checkpoint = _torch_load(path)
        except Exception as e:  # truncated or not a torch file: name the file, keep the cause
            raise OfficialCheckpointError(f"cannot read official RevCol checkpoint {str(path)!r}: {e}") from e
        where = str(path)
    state, entry = _state_dict(checkpoint, key)
    tensors, skipped = _backbone(state)
    source = f"{where}[{entry!r}]" if entry else where
    if "stem.0.weight" not in tensors:
        raise OfficialCheckpointError(f"{source} holds no RevCol backbone: key 'stem.0.weight' is missing")
    return tensors, OfficialLoad(source, 0, skipped)


def _require(tensors: Mapping[str, torch.Tensor], key: str) -> torch.Tensor:
    """Return ``tensors[key]`` or raise naming the missing key."""
    if key not in tensors:
        raise OfficialCheckpointError(f"official RevCol state dict lacks key {key!r}")
    return tensors[key]


def infer_architecture(tensors: Mapping[str, torch.Tensor]) -> OfficialArchitecture:
    """Read the architecture from official backbone tensors' names and shapes (``read_official``'s first result).

    Raises:
        OfficialCheckpointError: Naming the first key that is missing or malformed.
    """
    stem = _require(tensors, "stem.0.weight")
    if stem.ndim != 4 or tuple(stem.shape[2:]) != (4, 4):
        raise OfficialCheckpointError(f"key 'stem.0.weight' has shape {tuple(stem.shape)}, not a 4x4 patchify conv")
    columns = 1 + max((int(m.group(1)) for k in tensors if (m := _SUBNET.match(k))), default=-1)
    if columns == 0:
        raise OfficialCheckpointError("official RevCol state dict lacks key 'subnet0.level0.blocks.0.dwconv.weight'")
    layers = [0] * NUM_LEVELS
    for k in tensors:
        if m := _BLOCK.match(k):
            level, j = int(m.group(1)), int(m.group(2))
            if level < NUM_LEVELS:
                layers[level] = max(layers[level], j + 1)
    for level, n in enumerate(layers):
        if n == 0:
            missing = f"subnet0.level{level}.blocks.0.dwconv.weight"
            raise OfficialCheckpointError(f"official RevCol state dict lacks key {missing!r}")
    channels = [_require(tensors, f"subnet0.level{l}.blocks.0.dwconv.weight").shape[0] for l in range(NUM_LEVELS)]
    dwconv = tensors["subnet0.level0.blocks.0.dwconv.weight"]
    hidden = _require(tensors, "subnet0.level0.blocks.0.pwconv1.weight").shape[0]
    return OfficialArchitecture(
        c1=int(stem.shape[1]),
        channels=tuple(int(c) for c in channels),
        layers=tuple(layers),
        columns=columns,
        kernel=int(dwconv.shape[-1]),
        mlp_ratio=hidden / channels[0],
    )


def check_official(checkpoint, key: str | None = None, **arch) -> OfficialArchitecture:
    """Check that a checkpoint holds the architecture ``arch`` describes, without building a model.

    Args:
        checkpoint (str | Path | Mapping): File or loaded contents, in any published layout.
        key (str | None): Entry to read; default the EMA weights when present, else "model".
        **arch: Expected ``c1``, ``channels``, ``layers``, ``columns``, ``kernel`` and ``mlp_ratio`` (any subset).

    Returns:
        (OfficialArchitecture): The checkpoint's architecture.

    Raises:
        OfficialCheckpointError: Naming the file and every differing setting, with both values.
    """
    tensors, record = read_official(checkpoint, key)
    found = infer_architecture(tensors)
    wrong = []
    for name, want in arch.items():
        got = getattr(found, name)
        if (list(got) if isinstance(got, tuple) else got) != (list(want) if isinstance(want, (list, tuple)) else want):
            wrong.append(f"{name} {list(got) if isinstance(got, tuple) else got} (here {want})")
    if wrong:
        raise OfficialCheckpointError(f"{record.source} has another architecture: {', '.join(wrong)}")
    return found


def _check_convnext(model: nn.Module) -> None:
    """Official weights fit only the paper's block family and stem, unfused."""
    stem = model.stem.convs
    if model.block != "convnext" or len(stem) != 1:
        raise OfficialCheckpointError(
            "official RevCol weights need block='convnext' and stem='patchify', "
            f"this RevCol has block={model.block!r} and a {'patchify' if len(stem) == 1 else 'yolo'} stem"
        )
    if any(getattr(b, "gamma", None) is not None and isinstance(b.gamma, nn.Identity) for b in model.modules()):
        raise OfficialCheckpointError("this RevCol is fused (fuse() folded norms and layer scales); load before fusing")


def official_key_map(model: nn.Module) -> dict[str, str]:
    """Return official key -> our ``state_dict`` key for every official tensor of convnext/patchify RevCol ``model``."""
    keys = {}
    for part in ("weight", "bias"):
        keys[f"stem.0.{part}"] = f"stem.convs.0.conv.{part}"
        keys[f"stem.1.{part}"] = f"stem.convs.0.norm.{part}"
    for i, column in enumerate(model.columns):
        ours = f"columns.{i}"
        for l, level in enumerate(column.levels):
            theirs, mine = f"subnet{i}.level{l}", f"{ours}.levels.{l}"
            for part in ("weight", "bias"):
                if l > 0:
                    keys[f"{theirs}.fusion.down.0.{part}"] = f"{mine}.down.conv.conv.{part}"
                    keys[f"{theirs}.fusion.down.1.{part}"] = f"{mine}.down.conv.norm.{part}"
                if level.up is not None:
                    keys[f"{theirs}.fusion.up.channel_reschedule.0.{part}"] = f"{mine}.up.proj.conv.{part}"
                    keys[f"{theirs}.fusion.up.channel_reschedule.1.{part}"] = f"{mine}.up.proj.norm.{part}"
            for j in range(len(level.blocks)):
                for name in ("dwconv", "norm", "pwconv1", "pwconv2"):
                    for part in ("weight", "bias"):
                        keys[f"{theirs}.blocks.{j}.{name}.{part}"] = f"{mine}.blocks.{j}.{name}.{part}"
                keys[f"{theirs}.blocks.{j}.gamma"] = f"{mine}.blocks.{j}.gamma.weight"
        if column.alphas is not None:
            for l in range(NUM_LEVELS):
                keys[f"subnet{i}.alpha{l}"] = f"{ours}.alphas.{l}.weight"
    return keys


def _official_shape(key: str, ours: torch.Size) -> tuple[int, ...]:
    """The shape the official file stores for our tensor of shape ``ours``."""
    if ".alpha" in key:
        return (1, ours[0], 1, 1)  # nn.Parameter broadcast over (N, C, H, W)
    if ".pwconv" in key or "channel_reschedule.0" in key:
        return tuple(ours[:2]) if len(ours) == 4 else tuple(ours)  # nn.Linear (out, in) for our 1x1 conv
    return tuple(ours)


def load_official(model: nn.Module, checkpoint, key: str | None = None) -> OfficialLoad:
    """Copy an official RevCol checkpoint's backbone weights into ``model``, checking every tensor first.

    Args:
        model (RevCol): A convnext/patchify RevCol of the checkpoint's architecture.
        checkpoint (str | Path | Mapping): File or loaded contents, in any published layout (see ``read_official``).
        key (str | None): Entry to read; default the EMA weights when present, else "model".

    Returns:
        (OfficialLoad): Where the weights came from, how many tensors were loaded and how many skipped.

    Raises:
        OfficialCheckpointError: Naming the first missing, unexpected or mis-shaped key (with both shapes); the
            model is unchanged then.
    """
    _check_convnext(model)
    return _load_tensors(model, *read_official(checkpoint, key))


def build_official(cls: type, checkpoint, key: str | None = None, **options) -> nn.Module:
    """Return a ``cls`` (RevCol) of the checkpoint's architecture with its weights, ``official_load`` set.

    ``checkpoint`` and ``key`` as for ``load_official`` (the file is read once); ``options`` are further constructor
    arguments that leave the architecture alone (drop_path, reversible, aux).
    """
    tensors, record = read_official(checkpoint, key)
    model = cls(**infer_architecture(tensors).kwargs(), **options)
    model.official_load = _load_tensors(model, tensors, record)
    return model


def _load_tensors(model: nn.Module, tensors: Mapping[str, torch.Tensor], record: OfficialLoad) -> OfficialLoad:
    """Check every official tensor against ``model`` (names and shapes), then copy them all in."""
    mapping = official_key_map(model)
    ours = model.state_dict()
    for theirs, mine in mapping.items():
        if theirs not in tensors:
            raise OfficialCheckpointError(f"{record.source} lacks key {theirs!r} (for this RevCol's {mine!r})")
        want, got = _official_shape(theirs, ours[mine].shape), tuple(tensors[theirs].shape)
        if got != want:
            raise OfficialCheckpointError(
                f"{record.source}: key {theirs!r} has shape {got}, this RevCol's {mine!r} needs {want}; "
                f"the checkpoint is {describe(tensors)}, this RevCol {describe_model(model)}"
            )
    extra = [k for k in tensors if k not in mapping]
    if extra:
        raise OfficialCheckpointError(
            f"{record.source}: key {extra[0]!r} has no place in this RevCol; "
            f"the checkpoint is {describe(tensors)}, this RevCol {describe_model(model)}"
        )
    with torch.no_grad():
        for theirs, mine in mapping.items():
            target = ours[mine]
            target.copy_(tensors[theirs].reshape(target.shape))
    record = OfficialLoad(record.source, len(mapping), record.skipped)
    LOGGER.info(str(record))
    return record


def describe_model(model: nn.Module) -> str:
    """Describe a RevCol's architecture in the words of ``describe``."""
    layers = [len(level.blocks) for level in model.columns[-1].levels]  # the last column runs ``layers``
    kernel = model.columns[0].levels[0].blocks[0].dwconv.kernel_size[0]
    return f"channels {list(model.channels)}, layers {layers}, {len(model.columns)} columns, kernel {kernel}"


def describe(tensors: Mapping[str, torch.Tensor]) -> str:
    """Describe the architecture of official tensors in words, or say why it cannot be read."""
    try:
        a = infer_architecture(tensors)
    except OfficialCheckpointError as e:
        return f"unreadable ({e})"
    return f"channels {list(a.channels)}, layers {list(a.layers)}, {a.columns} columns, kernel {a.kernel}"


def official_state_dict(model: nn.Module) -> dict[str, torch.Tensor]:
    """Return copies of convnext/patchify RevCol ``model``'s weights under the official names and layouts (loadable
    by the official ``FullNet``); the first column's unused alphas at their initial 0.5."""
    _check_convnext(model)
    ours = model.state_dict()
    out = {}
    for theirs, mine in official_key_map(model).items():
        out[theirs] = ours[mine].detach().clone().reshape(_official_shape(theirs, ours[mine].shape))
    for l, c in enumerate(model.channels):
        out[f"subnet0.alpha{l}"] = torch.full((1, c, 1, 1), 0.5, dtype=ours["stem.convs.0.conv.weight"].dtype)
    return out
