"""Intermediate supervision for YOLO detection: Detect heads on RevCol's earlier columns, trained with the model's loss.

A RevCol row with ``aux: <weight>`` in its options gets, when the model is built, one Ultralytics ``Detect`` head
per supervised column (``RevCol.supervised_columns``), reading that column's stride 8/16/32 maps, with the classes
and DFL channels of the model's own head. The heads are submodules of the RevCol layer, so the optimiser, EMA,
checkpoints, ``resume`` and DDP handle them like any other parameter (DDP sees them because Ultralytics computes the
loss inside the model's forward, which DDP wraps; code of one's own must consume ``RevCol.pop_aux_outputs`` there
too). ``BaseModel.loss`` is wrapped so that in training mode the loss becomes ``main + sum(weight_k * aux_k)``,
every term computed by the model's own criterion (same targets, same assigner). Eval-mode forwards never run the
heads, and ``fuse()`` (called before val, predict and export) removes them, so inference models carry no trace of
them.

Only plain detection models take the option: the auxiliary head is a box head, and the loss of segmentation, pose,
OBB and classification models expects their own outputs.
"""

from __future__ import annotations

import functools

import torch
from torch import nn

from ..nn.revcol import RevCol
from .yaml_args import ModelYAMLError

__all__ = ("attach_aux_heads", "aux_parameter_count", "revcol_of", "with_aux_loss")

TASK_OF_HEAD = {"Segment": "segment", "Pose": "pose", "OBB": "obb", "Classify": "classify"}
RESERVED_STRIDES = (8.0, 16.0, 32.0)  # RevCol levels 1..3, which the heads read


def revcol_of(model: nn.Module) -> RevCol | None:
    """The first RevCol layer of a model (or None)."""
    return next((m for m in model.modules() if isinstance(m, RevCol)), None)


def aux_parameter_count(model: nn.Module) -> int:
    """Parameters of the training-only auxiliary heads of every RevCol in ``model``."""
    heads = [m.aux_heads for m in model.modules() if isinstance(m, RevCol) and m.aux_heads is not None]
    return sum(p.numel() for h in heads for p in h.parameters())


def attach_aux_heads(layers: nn.Sequential, verbose: bool = True) -> None:
    """Give the RevCol layer of a freshly built model its auxiliary Detect heads when its ``aux`` option is on.

    Args:
        layers (nn.Sequential): The layers ``parse_model`` built (RevCol is layer 0; the model's head is last).
        verbose (bool): Log what was attached.

    Raises:
        ModelYAMLError: If ``aux`` is on and the model is not a plain detection model (naming the task).
    """
    from ultralytics.nn.modules import Detect
    from ultralytics.utils import LOGGER

    revcol, head = layers[0], layers[-1]
    if not isinstance(revcol, RevCol) or not revcol.aux:
        return
    if type(head) is not Detect or getattr(head, "one2one_cv2", None) is not None:
        name = type(head).__name__
        task = TASK_OF_HEAD.get(name, f"{name} head")
        raise ModelYAMLError(
            f"model YAML layer 0 (RevCol): option 'aux' ({revcol.aux}) adds auxiliary detection heads and works with "
            f"YOLOv8/YOLO11 detection models only, not with the {task} task ({name}); remove it or set aux: 0"
        )
    heads = []
    for _ in revcol.supervised_columns:
        aux_head = Detect(head.nc, head.reg_max, False, revcol.channels[1:])  # same classes and DFL bins
        aux_head.stride = torch.tensor(RESERVED_STRIDES)
        aux_head.bias_init()
        heads.append(aux_head)
    revcol.attach_aux_heads(heads)
    if verbose:
        n = sum(p.numel() for p in revcol.aux_heads.parameters())
        weights = ", ".join(f"{w:g}" for w in revcol.aux_weights)
        LOGGER.info(
            f"RevCol aux: Detect heads on column(s) {[k + 1 for k in revcol.supervised_columns]} of "
            f"{len(revcol.columns)}, loss weight(s) {weights}; {n:,} training-only parameters (removed by fuse)"
        )


RECON_ITEM = "recon_loss"  # the logged name of the reconstruction term (train/recon_loss, val/recon_loss)


def with_aux_loss(loss):
    """Wrap ``BaseModel.loss`` so training losses of RevCol models add their intermediate supervision.

    With aux heads, ``weight * criterion(aux head output)`` per supervised column is added to the model's own loss
    (the logged box/cls/dfl items stay the main head's). With reconstruction decoders (``recon``), the forward's
    weighted reconstruction loss, scaled by the batch size as Ultralytics scales its own terms, is appended as one
    more loss term and logged as ``recon_loss`` (0 in validation, where no decoder runs).
    """

    @functools.wraps(loss)
    def wrapped(self, batch, preds=None):
        """Main loss, plus the auxiliary and reconstruction terms of the last training forward."""
        revcol = revcol_of(self)
        supervised = revcol is not None and (revcol.aux_heads is not None or revcol.recon_decoders is not None)
        if not supervised:
            return loss(self, batch, preds)
        if not self.training:
            total, items = loss(self, batch, preds)
            if revcol.recon_decoders is not None and isinstance(items, dict):
                items[RECON_ITEM] = torch.zeros((), device=total.device)  # the keys training logs
            return total, items
        if preds is None:
            revcol.pop_aux_outputs()  # outputs of an earlier forward belong to other images
            revcol.pop_recon_loss()
            preds = self.forward(batch["img"])
        total, items = loss(self, batch, preds)  # also creates self.criterion on first use
        for weight, aux_preds in revcol.pop_aux_outputs():
            total = total + weight * self.criterion(aux_preds, batch)[0]
        recon = revcol.pop_recon_loss()
        if recon is not None:
            total = torch.cat([total.reshape(-1), (recon * batch["img"].shape[0]).reshape(1).to(total.dtype)])
            if isinstance(items, dict):
                items[RECON_ITEM] = recon.detach()
        return total, items

    return wrapped
