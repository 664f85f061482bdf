"""Bring checkpoints saved by earlier releases up to the current defaults when they are loaded.

RevCol's ``checkpoint_every`` defaulted to 0 (reconstruct every column) before it defaulted to ``"auto"`` (the
current default; what it resolves to follows the reverse pass of the installed release). A checkpoint pickles the
value in effect, so a model trained before the change would keep 0 for ever. When its YAML (saved in the
checkpoint) never set ``checkpoint_every``, that 0 is the old default, not a choice: it becomes ``"auto"``. A value
the YAML set is kept.
"""

from __future__ import annotations

import functools

from torch import nn

from ..nn.revcol import RevCol
from .yaml_args import REVCOL_MODULES, _named_args


def _rows(model_yaml: dict) -> list:
    """Every layer row of an Ultralytics model dictionary, in layer order (backbone, then head)."""
    return [*(model_yaml.get("backbone") or []), *(model_yaml.get("head") or [])]


def restore_auto_checkpoint_every(model: nn.Module) -> int:
    """Set ``checkpoint_every="auto"`` on every RevCol layer of ``model`` that holds the old default.

    Args:
        model (nn.Module): An Ultralytics model (``.yaml`` and ``.model`` layers with their index ``.i``).

    Returns:
        (int): How many RevCol layers were changed.
    """
    model_yaml, layers = getattr(model, "yaml", None), getattr(model, "model", None)
    if not isinstance(model_yaml, dict) or layers is None:
        return 0
    rows, changed = _rows(model_yaml), 0
    for layer in layers:
        i = getattr(layer, "i", None)
        if not isinstance(layer, RevCol) or layer.checkpoint_every != 0 or i is None or i >= len(rows):
            continue
        row = rows[i]
        if row[2] in REVCOL_MODULES and "checkpoint_every" not in _named_args(i, row[3]):
            layer.checkpoint_every = "auto"
            changed += 1
    return changed


def with_current_defaults(original):
    """Wrap Ultralytics' ``torch_safe_load``: upgrade the models of every loaded checkpoint (``model``, ``ema``)."""

    @functools.wraps(original)
    def torch_safe_load(*args, **kwargs):
        ckpt, file = original(*args, **kwargs)
        if isinstance(ckpt, dict):
            for key in ("model", "ema"):
                if isinstance(ckpt.get(key), nn.Module):
                    restore_auto_checkpoint_every(ckpt[key])
        return ckpt, file

    return torch_safe_load
