"""Turn RevCol rows of an Ultralytics model YAML into constructor arguments, following the YAML's ``scales``.

Ultralytics' ``parse_model`` passes the arguments of modules it does not know verbatim and records their output
channels as their input channels. This module rewrites a model dictionary before ``parse_model`` sees it:

* a ``RevCol`` row gets its input channels prepended, its channel list scaled by the width multiple (capped by
  ``max_channels``, rounded to multiples of 8, exactly as Ultralytics scales its own layers), its blocks per level
  (``layers``, and ``early_layers`` when given) scaled by the depth multiple (Ultralytics' repeat rule), and its
  column count chosen for the active scale;
* every ``Index`` row that selects one of RevCol's maps gets that map's scaled channel count, so the stock neck
  and head are built with the right input channels.

A RevCol row reads RevCol's constructor arguments after ``c1``, in signature order (``ARG_NAMES``: channels, layers,
columns, kernel, ...; only those without a default are required), positionally up to ``reversible`` (``POSITIONAL``);
a trailing mapping may give any optional ones by name, e.g.
``[[64, 128, 256, 512], [3, 3, 9, 3], {n: 2, s: 2, m: 3, l: 3, x: 3}, {block: c2f, reversible: false}]``. An option
of ``REMOVED_ARGS`` (``checkpoint_every``) is ignored with a FutureWarning naming the layer.
``columns`` is an integer (every scale) or a mapping from scale name to integer.
"""

from __future__ import annotations

import copy
import difflib
import inspect
import math
from collections.abc import Mapping
from pathlib import Path

from ..nn.revcol import REMOVED_ARGS, RevCol, warn_removed

__all__ = ("ModelYAMLError", "REVCOL_MODULES", "expand_revcol_rows")

REVCOL_MODULES = frozenset({"RevCol"})  # YAML module names handled here
PARAMETERS = list(inspect.signature(RevCol).parameters.values())[1:]  # c1 comes from the previous layer
ARG_NAMES = tuple(p.name for p in PARAMETERS)  # what a row may give, positionally or as options
# Positional up to reversible: the slot after it held checkpoint_every, so a longer row was written for other names
POSITIONAL = ARG_NAMES[: ARG_NAMES.index("reversible") + 1]
REQUIRED = tuple(p.name for p in PARAMETERS if p.default is inspect.Parameter.empty)


class ModelYAMLError(ValueError):
    """A RevCol-related row of a model YAML is invalid; the message names the layer, argument and value."""


def _multiples(d: Mapping) -> tuple[str | None, float, float, float]:
    """Return (scale, depth multiple, width multiple, max channels) as ``parse_model`` will use them."""
    scales, scale = d.get("scales"), d.get("scale")
    if scales:
        scale = scale or next(iter(scales))  # parse_model makes the same choice (and warns about it)
        if scale not in scales:
            raise ModelYAMLError(f"model YAML has no scale {scale!r}; available scales: {', '.join(scales)}")
        depth, width, max_channels = scales[scale]
        return scale, depth, width, max_channels
    return scale, d.get("depth_multiple", 1.0), d.get("width_multiple", 1.0), float("inf")


def _scale_channels(c: int, width: float, max_channels: float) -> int:
    """Scale a channel count the way Ultralytics scales its own layers."""
    return int(math.ceil(min(c, max_channels) * width / 8) * 8)


def _scale_depth(n: int, depth: float) -> int:
    """Scale a block count with Ultralytics' repeat rule (counts of 1 stay 1)."""
    return max(round(n * depth), 1) if n > 1 else n


def _named_args(i: int, args) -> dict:
    """Map a RevCol row's positional args and optional trailing mapping to argument names."""
    where = f"model YAML layer {i} (RevCol)"
    if not isinstance(args, list):
        raise ModelYAMLError(f"{where}: arguments must be a list, got {args!r}")
    args = list(args)
    options = args.pop() if args and isinstance(args[-1], Mapping) else {}
    if len(args) > len(POSITIONAL):
        raise ModelYAMLError(
            f"{where}: takes at most {len(POSITIONAL)} positional arguments {list(POSITIONAL)}, got {len(args)}: "
            f"{args!r}; give the others by name in a trailing mapping, e.g. {{block: c2f}} (the 8th positional "
            "argument used to be checkpoint_every, which was removed)"
        )
    named = dict(zip(POSITIONAL, args))
    for key, value in options.items():
        if key in REMOVED_ARGS:
            warn_removed(where, key, value, stacklevel=4)
            continue
        if key not in ARG_NAMES:
            close = difflib.get_close_matches(str(key), ARG_NAMES, n=1, cutoff=0.6)
            hint = f"did you mean {close[0]!r}? " if close else ""
            raise ModelYAMLError(
                f"{where}: unknown option {key!r} (value {value!r}); {hint}known: {', '.join(ARG_NAMES)}"
            )
        if key in named:
            raise ModelYAMLError(f"{where}: argument {key!r} given twice ({named[key]!r} and {value!r})")
        named[key] = value
    missing = [n for n in REQUIRED if n not in named]
    if missing:
        raise ModelYAMLError(f"{where}: missing required argument(s) {', '.join(missing)}; got {args!r}")
    return named


def _columns_for_scale(i: int, columns, scale: str | None):
    """Resolve a per-scale column mapping to this scale's count (validated later with the other arguments)."""
    if not isinstance(columns, Mapping):
        return columns
    if scale not in columns:
        raise ModelYAMLError(
            f"model YAML layer {i} (RevCol): argument 'columns' {dict(columns)!r} has no entry for scale {scale!r}"
        )
    return columns[scale]


def _check_weights(i: int, ch: int, named: dict) -> None:
    """Fail before anything is built when the official checkpoint of ``weights`` has another architecture.

    ``named`` holds the row's arguments after scaling, i.e. what RevCol will be built with.
    """
    from ..nn.official import OfficialCheckpointError, check_official

    args = RevCol.check_args(ch, **named)
    arch = {k: args[k] for k in ("c1", "channels", "layers", "columns", "kernel", "mlp_ratio")}
    try:
        check_official(named["weights"], **arch)
    except OfficialCheckpointError as e:
        raise ModelYAMLError(f"model YAML layer {i} (RevCol): argument 'weights': {e}") from None


def expand_revcol_rows(d: dict, ch: int) -> dict:
    """Return a copy of model dictionary ``d`` whose RevCol and Index rows ``parse_model`` can build unchanged.

    Args:
        d (dict): Model dictionary as loaded from the YAML (``backbone``, ``head``, ``scales``, ``scale``...).
        ch (int): Input channels of the model.

    Returns:
        (dict): The rewritten copy; ``d`` itself is not modified. Dictionaries without RevCol rows come back equal.

    Raises:
        ModelYAMLError: For a bad RevCol or Index row, naming the layer index, the argument and the value.
    """
    rows = list(d.get("backbone", [])) + list(d.get("head", []))
    if not any(len(r) > 2 and r[2] in REVCOL_MODULES for r in rows):
        return d
    d = copy.deepcopy(d)
    rows = d["backbone"] + d["head"]  # the same row lists, so edits land in d
    scale, depth, width, max_channels = _multiples(d)
    revcol_channels: dict[int, tuple[list[int], list[int]]] = {}  # layer -> (YAML, scaled) channels of its maps

    for i, row in enumerate(rows):
        f, _, module, args = row
        sources = [f] if isinstance(f, int) else list(f)
        sources = [s if s >= 0 else i + s for s in sources]
        if module in REVCOL_MODULES:
            if i != 0 or f != -1:
                raise ModelYAMLError(
                    f"model YAML layer {i} (RevCol): RevCol must be layer 0 with from=-1, got from={f}"
                )
            named = _named_args(i, args)
            named["columns"] = _columns_for_scale(i, named["columns"], scale)
            try:  # validate the values as written, so messages quote the YAML
                RevCol.check_args(ch, **named)
            except ValueError as e:
                raise ModelYAMLError(f"model YAML layer {i} (RevCol): {e}") from None
            scaled = [_scale_channels(c, width, max_channels) for c in named["channels"]]
            revcol_channels[i] = (list(named["channels"]), scaled)
            named["channels"] = scaled
            for name in ("layers", "early_layers"):  # the earlier columns' blocks scale as the last column's
                if named.get(name) is not None:
                    named[name] = [_scale_depth(n, depth) for n in named[name]]
            if named.get("weights") is not None:
                _check_weights(i, ch, named)
                # A Path, not a str: parse_model would try ast.literal_eval on a string argument (a path is no literal)
                named["weights"] = Path(named["weights"])
            row[3] = [ch] + [named.get(p.name, p.default) for p in PARAMETERS]  # every argument, for the summary
            continue

        users = [s for s in sources if s in revcol_channels]
        if not users:
            continue
        if module != "Index" or len(sources) != 1:
            raise ModelYAMLError(
                f"model YAML layer {i} ({module}): takes RevCol layer {users[0]}'s list of maps directly; "
                f"select one map first with an Index row, e.g. [{users[0]}, 1, Index, [256, 2]] for P4/16"
            )
        if not isinstance(args, list) or len(args) != 2 or not all(type(a) is int for a in args):
            raise ModelYAMLError(f"model YAML layer {i} (Index): arguments must be [channels, index], got {args!r}")
        base_c2, index = args
        base, channels = revcol_channels[sources[0]]
        if not 0 <= index < len(channels):
            raise ModelYAMLError(
                f"model YAML layer {i} (Index): index {index} is out of range for RevCol's {len(channels)} maps "
                "(0: P2/4, 1: P3/8, 2: P4/16, 3: P5/32)"
            )
        if base_c2 != base[index]:
            raise ModelYAMLError(
                f"model YAML layer {i} (Index): channels {base_c2} do not match RevCol level {index}, "
                f"which has {base[index]} (before width scaling)"
            )
        row[3] = [channels[index], index]
    return d
