"""RevCol: a stem followed by reversible columns; the last column's four maps are the backbone's outputs."""

from __future__ import annotations

import functools
import inspect
import warnings
from collections.abc import Sequence
from numbers import Integral, Real
from os import PathLike
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from .column import DOWNS, NUM_LEVELS, BlockSettings, Column, norm_of
from .layers import BLOCKS, ChannelScale, ConvNorm, ImageDecoder
from .reversible import ReversibleColumns, reversible_parameters

__all__ = ("ARG_CHECKS", "Stem", "RevCol")

MAX_STRIDE = 32  # stride of the coarsest level; input sides must be multiples of it
STEMS = ("patchify", "yolo")
# The optional arguments each block family uses, with their defaults
BLOCK_DEFAULTS = {"convnext": {"mlp_ratio": 4.0, "layer_scale": 1e-6}, "c2f": {}, "inverted": {"mlp_ratio": 2.0}}


class Stem(nn.Module):
    """Stem from the image to level 0 (stride 4), in the block family's norm.

    Args:
        c1 (int): Input channels.
        c2 (int): Output channels (channels of level 0).
        kind (str): "patchify" (one 4x4 stride-4 conv) or "yolo" (two 3x3 stride-2 convs, the first at half width).
        block (str): Block family (its norm and activation).
    """

    def __init__(self, c1: int, c2: int, kind: str = "patchify", block: str = "convnext"):
        super().__init__()
        norm, act = norm_of(block), block != "convnext"
        if kind == "patchify":
            self.convs = nn.Sequential(ConvNorm(c1, c2, 4, 4, norm, act))
        else:
            mid = max(c2 // 2, 8)
            self.convs = nn.Sequential(ConvNorm(c1, mid, 3, 2, norm, True), ConvNorm(mid, c2, 3, 2, norm, act))

    @property
    def weight(self) -> torch.Tensor:
        """The first conv's weight (its dtype is the model's parameter dtype)."""
        return self.convs[0].conv.weight

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Return the (N, c2, H/4, W/4) map."""
        return self.convs(x)


def _check_int(name: str, value, minimum: int = 1) -> int:
    """Return ``value`` as int, or raise ValueError naming the argument when it is not an int >= minimum."""
    if isinstance(value, bool) or not isinstance(value, Integral) or value < minimum:
        raise ValueError(f"RevCol argument '{name}' must be an integer >= {minimum}, got {value!r}")
    return int(value)


def _check_odd(name: str, value) -> int:
    """Return a positive odd int (a kernel size with 'same' padding), or raise ValueError naming the argument."""
    value = _check_int(name, value)
    if value % 2 == 0:
        raise ValueError(f"RevCol argument '{name}' must be odd, got {value}")
    return value


def _check_levels(name: str, values) -> list[int]:
    """Return a list of four positive ints, or raise ValueError naming the argument."""
    if not isinstance(values, Sequence) or isinstance(values, str) or len(values) != NUM_LEVELS:
        raise ValueError(f"RevCol argument '{name}' must be a list of {NUM_LEVELS} integers, got {values!r}")
    for v in values:
        if isinstance(v, bool) or not isinstance(v, Integral) or v < 1:
            raise ValueError(f"RevCol argument '{name}' must hold integers >= 1, got {values!r}")
    return [int(v) for v in values]


def _check_early_layers(name: str, values) -> list[int] | None:
    """Return None (every column runs ``layers``) or four ints >= 1, or raise ValueError naming the argument."""
    if values is None:
        return None
    try:
        return _check_levels(name, values)  # the rule of 'layers'
    except ValueError:
        raise ValueError(
            f"RevCol argument '{name}' must be a list of {NUM_LEVELS} integers >= 1 (every level runs at least one "
            f"block, as in 'layers'), got {values!r}"
        ) from None


def _is_number(value) -> bool:
    """Whether ``value`` is a real number (bools excluded: YAML's true is no drop-path rate)."""
    return not isinstance(value, bool) and isinstance(value, Real)


def _check_positive(name: str, value) -> float | None:
    """Return None (the block family's default) or a float > 0, or raise ValueError naming the argument."""
    if value is not None and (not _is_number(value) or value <= 0):
        raise ValueError(f"RevCol argument '{name}' must be a number > 0, got {value!r}")
    return None if value is None else float(value)


def _check_drop_path(name: str, value) -> float:
    """Return a probability in [0, 1) as float, or raise ValueError naming the argument."""
    if not _is_number(value) or not 0.0 <= value < 1.0:
        raise ValueError(f"RevCol argument '{name}' must be a number in [0, 1), got {value!r}")
    return float(value)


def _check_bool(name: str, value) -> bool:
    """Return ``value`` if it is a bool, or raise ValueError naming the argument."""
    if not isinstance(value, bool):
        raise ValueError(f"RevCol argument '{name}' must be true or false, got {value!r}")
    return value


def _one_of(choices: tuple[str, ...]):
    """Return a check that accepts only the strings in ``choices``."""

    def check(name: str, value) -> str:
        if value not in choices:
            raise ValueError(f"RevCol argument '{name}' must be one of {', '.join(choices)}, got {value!r}")
        return value

    return check


def _check_aux(name: str, value) -> float:
    """Return a finite weight >= 0 as float (0: off), or raise ValueError naming the argument."""
    if not _is_number(value) or not 0.0 <= value < float("inf"):
        raise ValueError(f"RevCol argument '{name}' must be a number >= 0 (0: off), got {value!r}")
    return float(value)


def _check_weights(name: str, value) -> str | None:
    """Return None or the path of an existing file as str, or raise ValueError naming the argument."""
    if value is None:
        return None
    if not isinstance(value, (str, PathLike)) or not str(value):
        raise ValueError(f"RevCol argument '{name}' must be an official checkpoint's path, got {value!r}")
    if not Path(value).is_file():
        raise ValueError(
            f"RevCol argument '{name}': official checkpoint {str(value)!r} not found (relative to "
            f"{Path.cwd()}); download it from https://github.com/megvii-research/RevCol/releases"
        )
    return str(value)


def _check_combination(args: dict) -> None:
    """Check what one argument means for another (``args`` already checked one by one); fill family defaults in.

    Raises:
        ValueError: Naming the argument that does not fit and the one it conflicts with.
    """
    block, defaults = args["block"], BLOCK_DEFAULTS[args["block"]]
    for name in ("mlp_ratio", "layer_scale"):
        if args[name] is not None and name not in defaults:
            raise ValueError(f"RevCol argument '{name}' is not used by block '{block}', got {args[name]!r}")
        if args[name] is None and name in defaults:
            args[name] = defaults[name]
    for name in ("aux", "recon"):
        if args[name] > 0 and args["columns"] < 2:
            raise ValueError(
                f"RevCol argument '{name}' supervises the columns before the last, but columns is {args['columns']}"
            )
    if args["early_layers"] is not None and args["columns"] < 2:
        raise ValueError(
            f"RevCol argument 'early_layers' ({args['early_layers']}) sets the columns before the last, but columns is "
            f"{args['columns']}: it would do nothing; remove it"
        )
    if args["weights"] is not None and (block != "convnext" or args["stem"] != "patchify"):
        raise ValueError(
            f"RevCol argument 'weights' (official checkpoint) needs block convnext and stem patchify, "
            f"got block {block!r} and stem {args['stem']!r}"
        )
    if args["weights"] is not None and args["down"] not in (None, "patch"):
        raise ValueError(f"RevCol argument 'weights' (official checkpoint) needs down patch, got {args['down']!r}")
    if args["weights"] is not None and args["early_layers"] not in (None, args["layers"]):
        raise ValueError(
            f"RevCol argument 'weights' (official checkpoint) needs every column at 'layers' {args['layers']}, "
            f"got early_layers {args['early_layers']}"
        )


# One check per constructor argument, by name; RevCol's signature says which arguments exist and in what order.
ARG_CHECKS = {
    "c1": _check_int,
    "channels": _check_levels,
    "layers": _check_levels,
    "columns": _check_int,
    "kernel": _check_odd,
    "mlp_ratio": _check_positive,
    "drop_path": _check_drop_path,
    "reversible": _check_bool,
    "layer_scale": _check_positive,
    "block": _one_of(BLOCKS),
    "stem": _one_of(STEMS),
    "aux": _check_aux,
    "weights": _check_weights,
    "down": lambda name, value: None if value is None else _one_of(DOWNS)(name, value),
    "recon": _check_aux,
    "early_layers": _check_early_layers,
}


# Arguments earlier releases took, and why they went: a call or YAML that still gives one is warned and ignored.
REMOVED_ARGS = {
    "checkpoint_every": "the reverse pass rebuilds every column exactly, so keeping columns' states bought nothing",
}


def warn_removed(where: str, name: str, value, stacklevel: int = 2) -> None:
    """Warn (FutureWarning, shown by default) that argument ``name`` of ``REMOVED_ARGS`` is ignored, and why."""
    warnings.warn(
        f"{where}: argument {name!r} ({value!r}) is ignored, it was removed: {REMOVED_ARGS[name]}; delete it",
        FutureWarning,
        stacklevel=stacklevel + 1,
    )


def _checked_arguments(init):
    """Decorate ``RevCol.__init__`` so it runs on ``check_args``' validated, normalised arguments."""

    @functools.wraps(init)
    def checked(self, *args, **kwargs):
        init(self, **self.check_args(*args, **kwargs))

    return checked


class RevCol(nn.Module):
    """Reversible Column Network backbone (Cai et al., ICLR 2023).

    A stem feeds ``columns`` columns; each takes the stem output and the previous column's states (reversible
    connections). ``forward`` returns the last column's maps at strides 4, 8, 16 and 32.

    Training with grad and ``reversible`` on runs ``ReversibleColumns``: activation memory flat in ``columns``,
    gradients equal to plain backprop's. Anything else (eval, no-grad, tracing, export) runs the plain modules.

    Args:
        c1 (int): Input channels.
        channels (Sequence[int]): Channels of the four levels.
        layers (Sequence[int]): Blocks per level (convnext: blocks; c2f: bottlenecks of the level's C2f block).
        columns (int): Number of columns.
        kernel (int): Kernel size of the blocks' spatial convs (convnext: depthwise), odd.
        mlp_ratio (float | None): Expansion ratio of convnext (default 4) and inverted (default 2) blocks; c2f blocks
            take none.
        drop_path (float): Largest DropPath probability; it rises linearly over each column's blocks.
        reversible (bool): Train through the reversible autograd path.
        layer_scale (float | None): Initial layer scale of convnext blocks (default 1e-6); other blocks take none.
        block (str): Block family: "convnext" (the paper's, LayerNorm), "c2f" (YOLOv8's C2f, BatchNorm + SiLU) or
            "inverted" (inverted residuals expanding by ``mlp_ratio``, BatchNorm + SiLU).
        stem (str): "patchify" (the paper's 4x4 stride-4 conv) or "yolo" (two 3x3 stride-2 convs).
        aux (float): Weight of intermediate supervision (0: off): in training, ``supervised_columns`` feed auxiliary
            heads (``attach_aux_heads``, weights ``aux_weights``), whose outputs ``pop_aux_outputs`` returns; under
            DDP, pop them inside the wrapped forward.
        weights (str | None): Path of an official RevCol checkpoint to load at build time (convnext, patchify; never
            downloaded). See ``load_official``.
        down (str | None): Down fusion, "conv", "patch" or "dw" (see ``DownFusion``); None: the family's default.
        recon (float): Weight of reconstruction supervision (0: off): in training, ``supervised_columns`` rebuild a
            stride-4 copy of the image (``ImageDecoder``), weighted by ``recon_weights``, for ``pop_recon_loss``.
        early_layers (Sequence[int] | None): Blocks per level of every column but the last (which runs ``layers``);
            four ints >= 1, fewer or more than ``layers``; None: ``layers``. Needs 2+ columns. Reversibility holds:
            it needs each level's width, not its blocks, equal across columns.

    Examples:
        >>> model = RevCol(3, [16, 32, 64, 128], [1, 1, 3, 1], columns=2)
        >>> [tuple(y.shape) for y in model(torch.zeros(1, 3, 64, 64))]
        [(1, 16, 16, 16), (1, 32, 8, 8), (1, 64, 4, 4), (1, 128, 2, 2)]
    """

    RECONSTRUCTION_WARN = 1e-2  # relative error of the reconstructed first column above which backward warns

    @_checked_arguments
    def __init__(
        self,
        c1: int,
        channels: Sequence[int],
        layers: Sequence[int],
        columns: int,
        kernel: int = 3,
        mlp_ratio: float | None = None,
        drop_path: float = 0.0,
        reversible: bool = True,
        layer_scale: float | None = None,
        block: str = "convnext",
        stem: str = "patchify",
        aux: float = 0.0,
        weights: str | None = None,
        down: str | None = None,
        recon: float = 0.0,
        early_layers: Sequence[int] | None = None,
    ):
        """Build the stem and columns (arguments arrive checked and normalised, see ``check_args``)."""
        super().__init__()
        self.channels = channels
        self.aux = aux
        self.aux_heads: nn.ModuleList | None = None  # set by attach_aux_heads; training only
        self._aux_outputs: list[tuple[float, object]] = []  # (weight, head output) of the last training forward
        self.recon = recon
        self._recon_loss: torch.Tensor | None = None  # weighted reconstruction loss of the last training forward
        self.block = block
        self.reversible = reversible
        self.reconstruction_error: torch.Tensor | None = None  # set by each reversible backward (2+ columns)
        self.early_layers = early_layers
        self.stem = Stem(c1, channels[0], stem, block)
        depths = [early_layers or layers] * (columns - 1) + [layers]
        rates = [torch.linspace(0, drop_path, sum(d)).tolist() for d in depths]  # rising over each column's blocks
        self.columns = nn.ModuleList(
            Column(channels, d, r, k == 0, BlockSettings(kernel, mlp_ratio, layer_scale, block, down))
            for k, (d, r) in enumerate(zip(depths, rates))
        )
        if block == "convnext":  # BN/SiLU convs keep PyTorch's default init, as Ultralytics' own layers do
            self.apply(self._init_weights)
        self.weights = weights
        self.official_load = None  # set when official weights are loaded (weights argument or load_official)
        if weights is not None:
            self.load_official(weights)
        # Training only, like the aux heads; built here because they need nothing from Ultralytics
        decoders = [ImageDecoder(channels[-1], c1) for _ in self.supervised_columns] if recon else []
        self.recon_decoders = nn.ModuleList(decoders) if decoders else None

    @classmethod
    def check_args(cls, *args, **kwargs) -> dict[str, Any]:
        """Validate constructor arguments, given as to ``RevCol(...)``, and return them normalised by name.

        Every argument of the signature is checked by its entry in ``ARG_CHECKS``, then the arguments that depend on
        each other; a keyword of ``REMOVED_ARGS`` is dropped with a FutureWarning. ``mlp_ratio`` and ``layer_scale``
        left as None take the block family's defaults; giving them to a family that has no such setting (c2f) is an
        error rather than silently ignored.

        Returns:
            (dict[str, Any]): Every argument, defaults included, in signature order.

        Raises:
            TypeError: For missing or unknown arguments, as the call itself would.
            ValueError: Naming the first bad argument and its value.
        """
        for name in REMOVED_ARGS.keys() & kwargs.keys():
            warn_removed("RevCol", name, kwargs.pop(name), stacklevel=3)
        bound = inspect.signature(cls).bind(*args, **kwargs)
        bound.apply_defaults()
        checked = {name: ARG_CHECKS[name](name, value) for name, value in bound.arguments.items()}
        _check_combination(checked)
        return checked

    @staticmethod
    def _init_weights(m: nn.Module) -> None:
        """Truncated-normal conv weights (std 0.02) and zero biases, as in the reference RevCol."""
        if isinstance(m, nn.Conv2d):
            nn.init.trunc_normal_(m.weight, std=0.02)
            if m.bias is not None:
                nn.init.zeros_(m.bias)

    @classmethod
    def from_official(cls, checkpoint, key: str | None = None, **options) -> RevCol:
        """Build a RevCol of an official checkpoint's architecture (read from its names and shapes) with its weights.

        Args:
            checkpoint (str | Path | Mapping): A release file (``{"model", "state_dict_ema", ...}``), a detection or
                segmentation file (``{"state_dict"}`` with ``backbone.`` keys), or such a dict already loaded.
            key (str | None): Entry to read ("model", "state_dict_ema", ...); default EMA weights when present.
            **options: Constructor arguments that leave the architecture alone (drop_path, reversible, ...).

        Returns:
            (RevCol): The model; ``official_load`` records the source and the loaded and skipped tensor counts.
        """
        from .official import build_official

        return build_official(cls, checkpoint, key, **options)

    def load_official(self, checkpoint, key: str | None = None):
        """Load an official RevCol checkpoint into this model (see ``from_official`` for the layouts).

        Returns:
            (OfficialLoad): Source and the loaded and skipped tensor counts.

        Raises:
            OfficialCheckpointError: Naming the first key that is missing, unexpected or of another shape (both
                shapes given); nothing is loaded then.
        """
        from .official import load_official

        self.official_load = load_official(self, checkpoint, key)
        return self.official_load

    @property
    def feature_info(self) -> list[dict]:
        """timm's description of the outputs, finest first: ``num_chs``, ``reduction``, ``module`` (the last column)."""
        last = f"columns.{len(self.columns) - 1}"
        strides = [MAX_STRIDE >> (NUM_LEVELS - 1 - i) for i in range(NUM_LEVELS)]
        return [dict(num_chs=c, reduction=s, module=last) for c, s in zip(self.channels, strides)]

    def no_weight_decay(self) -> set[str]:
        """Names of the parameters to keep out of weight decay (timm's convention): layer scales and alphas."""
        return {f"{name}.weight" for name, m in self.named_modules() if isinstance(m, ChannelScale)}

    @property
    def supervised_columns(self) -> list[int]:
        """Columns intermediate supervision reads: every ``max(1, columns // 4)``-th, never the last (none when off)."""
        if not (self.aux or self.recon):
            return []
        step = max(1, len(self.columns) // 4)
        return [k for k in range(len(self.columns) - 1) if (k + 1) % step == 0]

    @property
    def aux_weights(self) -> list[float]:
        """Loss weight of each supervised column k: ``aux * (k + 1) / (K + 1)``, K the deepest supervised one."""
        cols = self.supervised_columns
        return [self.aux * (k + 1) / (cols[-1] + 1) for k in cols]

    @property
    def recon_weights(self) -> list[float]:
        """Reconstruction weight of each supervised column k of N: ``recon * (1 - k / N)`` (falling with depth)."""
        n = len(self.columns)
        return [self.recon * (1 - k / n) for k in self.supervised_columns]

    def pop_recon_loss(self) -> torch.Tensor | None:
        """Return and forget the weighted reconstruction loss of the last training forward (None when none ran)."""
        out, self._recon_loss = self._recon_loss, None
        return out

    def attach_aux_heads(self, heads: Sequence[nn.Module]) -> None:
        """Give every supervised column its auxiliary head.

        Args:
            heads (Sequence[nn.Module]): One module per entry of ``supervised_columns``; each takes the column's
                stride 8/16/32 maps as a list and returns whatever the training loss expects.

        Raises:
            ValueError: If the number of heads does not match the supervised columns.
        """
        if len(heads) != len(self.supervised_columns):
            raise ValueError(
                f"RevCol supervises columns {self.supervised_columns} (aux={self.aux}), got {len(heads)} aux heads"
            )
        self.aux_heads = nn.ModuleList(heads) if heads else None

    def drop_aux_heads(self) -> int:
        """Remove the training-only modules (aux heads, reconstruction decoders); return their parameter count."""
        heads = [m for m in (self.aux_heads, self.recon_decoders) if m is not None]
        n = sum(p.numel() for m in heads for p in m.parameters())
        self.aux_heads = self.recon_decoders = None
        self._aux_outputs, self._recon_loss = [], None
        return n

    def pop_aux_outputs(self) -> list[tuple[float, object]]:
        """Return and forget the (weight, head output) pairs of the last training forward (empty when none ran)."""
        out, self._aux_outputs = self._aux_outputs, []
        return out

    def __getstate__(self) -> dict:
        """Pickle and deepcopy without the last forward's auxiliary outputs (graph tensors, not model state)."""
        # The load record is no model state (and no class the safe-load allow-list knows): not pickled either
        return {**super().__getstate__(), "_aux_outputs": [], "_recon_loss": None, "official_load": None}

    def __setstate__(self, state: dict) -> None:
        """Unpickle: attributes of removed arguments are dropped, those added since take their off defaults."""
        for name in REMOVED_ARGS:  # attributes of removed arguments, which nothing reads any more
            state.pop(name, None)
        super().__setstate__(state)
        self.__dict__.setdefault("aux", 0.0)
        self.__dict__.setdefault("_aux_outputs", [])
        self.__dict__.setdefault("weights", None)
        self.__dict__.setdefault("official_load", None)
        self.__dict__.setdefault("recon", 0.0)
        self.__dict__.setdefault("_recon_loss", None)
        self.__dict__.setdefault("early_layers", None)
        for name in ("aux_heads", "recon_decoders"):
            if name not in self._modules:
                setattr(self, name, None)

    @torch.no_grad()
    def fuse(self) -> RevCol:
        """Fold norms and layer scales into convs exactly, drop the training-only heads; return self. Inference only."""
        self.drop_aux_heads()
        for m in list(self.modules()):  # listed first: fusing replaces submodules
            if m is not self and callable(getattr(m, "fuse", None)):
                m.fuse()
        return self

    def _record_reconstruction_error(self, error: torch.Tensor) -> None:
        """Keep the last reversible backward's reconstruction error; warn when gradients are no longer trustworthy."""
        self.reconstruction_error = error
        if float(error) > self.RECONSTRUCTION_WARN:
            warnings.warn(
                f"RevCol reversible backward: relative reconstruction error {float(error):.2e} over "
                f"{len(self.columns)} columns; gradients are inaccurate. Reconstruction is exact when the level "
                "bodies recompute bit for bit, so some kernel was not deterministic; set reversible=False.",
                RuntimeWarning,
                stacklevel=2,
            )

    def uses_reversible_path(self, x: torch.Tensor) -> bool:
        """Whether a forward on ``x`` (the stem output) would go through the reversible autograd function."""
        if not (self.reversible and self.training and torch.is_grad_enabled()):
            return False
        if torch.jit.is_tracing() or torch.jit.is_scripting() or torch.compiler.is_compiling():
            return False
        return x.requires_grad or any(p.requires_grad for p in self.columns.parameters())

    def forward(self, x: torch.Tensor) -> list[torch.Tensor]:
        """Run the backbone.

        Args:
            x (torch.Tensor): Images (N, c1, H, W) with H and W multiples of 32.

        Returns:
            (list[torch.Tensor]): The last column's maps, (N, channels[i], H / 2**(i+2), W / 2**(i+2)) for i=0..3.
                In training mode with auxiliary heads, their outputs are kept for ``pop_aux_outputs``.
        """
        h, w = x.shape[-2:]
        # Skipped while tracing: there the sizes are symbolic and the exporter has already fixed valid ones.
        if not torch.jit.is_tracing() and (h % MAX_STRIDE or w % MAX_STRIDE):
            raise ValueError(
                f"RevCol input height and width must be multiples of {MAX_STRIDE}, got {int(h)}x{int(w)}; "
                f"pad or resize the input (Ultralytics does this when imgsz is a multiple of {MAX_STRIDE})"
            )
        image = x
        # Column states live in the parameters' dtype: float32 under autocast, the model's dtype after .half().
        x = self.stem(x).to(self.stem.weight.dtype)
        supervise = (self.aux_heads is not None or self.recon_decoders is not None) and self.training
        wanted = self.supervised_columns if supervise else []
        if self.uses_reversible_path(x):
            params = reversible_parameters(self.columns)
            out = ReversibleColumns.apply(self.columns, self._record_reconstruction_error, tuple(wanted), x, *params)
            states = list(out[:NUM_LEVELS])
            inner = [list(out[NUM_LEVELS * (j + 1) : NUM_LEVELS * (j + 2)]) for j in range(len(wanted))]
        else:
            states, inner = None, []
            for k, column in enumerate(self.columns):
                states = column(x, states)
                if k in wanted:
                    inner.append(states)
        if supervise and self.aux_heads is not None:  # the heads read strides 8/16/32, as the model's own head does
            self._aux_outputs = [(w, h(s[1:])) for w, h, s in zip(self.aux_weights, self.aux_heads, inner)]
        if supervise and self.recon_decoders is not None:
            target = F.avg_pool2d(image.float(), 4)  # the stride-4 copy every decoder rebuilds
            terms = [
                w * F.mse_loss(d(s[-1]).float(), target)
                for w, d, s in zip(self.recon_weights, self.recon_decoders, inner)
            ]
            self._recon_loss = torch.stack(terms).sum()
        return states
