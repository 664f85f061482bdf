"""Keep RevCol's layer scales and alphas out of weight decay in the optimiser Ultralytics builds.

Ultralytics' ``BaseTrainer.build_optimizer`` spares the weights of normalisation layers, recognised by class name.
RevCol's layer scales and alphas are per-channel gains like a norm's weight, but not norms. RevCol names them in
``no_weight_decay()`` (timm's convention), and ``with_no_decay`` wraps ``build_optimizer`` so that, once
Ultralytics has built its groups, those parameters move from a decayed group into the undecayed norm group
(``param_group == "bn"``) of the same learning rate, in model order: the groups come out as they would if the scales
were norms, so optimiser states saved in either layout resume alike.
"""

from __future__ import annotations

import functools

import torch
from torch import nn

from ..nn.revcol import RevCol

__all__ = ("move_to_no_decay", "no_decay_parameters", "with_no_decay")


def no_decay_parameters(model: nn.Module) -> list[nn.Parameter]:
    """Return the parameters every RevCol inside ``model`` lists in ``no_weight_decay()``."""
    return [m.get_parameter(name) for m in model.modules() if isinstance(m, RevCol) for name in m.no_weight_decay()]


def _no_decay_group(optimizer: torch.optim.Optimizer, group: dict) -> dict:
    """Return the undecayed norm group sharing ``group``'s learning rate, adding one if the optimiser has none."""
    for other in optimizer.param_groups:
        if other.get("param_group") == "bn" and other["weight_decay"] == 0.0 and other["lr"] == group["lr"]:
            return other
    settings = {k: v for k, v in group.items() if k != "params"}
    optimizer.add_param_group({**settings, "params": [], "weight_decay": 0.0, "param_group": "bn"})
    return optimizer.param_groups[-1]


def move_to_no_decay(optimizer: torch.optim.Optimizer, model: nn.Module) -> int:
    """Move ``no_decay_parameters(model)`` out of decayed groups of a freshly built ``optimizer``.

    Args:
        optimizer (torch.optim.Optimizer): Built by ``build_optimizer``, no step taken yet.
        model (nn.Module): The model it was built for (a DDP wrapper's ``module`` is read through).

    Returns:
        (int): How many parameters moved.
    """
    model = getattr(model, "module", model)
    spared = {id(p) for p in no_decay_parameters(model)}
    if not spared:
        return 0
    order = {id(p): i for i, p in enumerate(model.parameters())}
    moved = 0
    for group in list(optimizer.param_groups):
        if group["weight_decay"] == 0.0 or group.get("use_muon", False):  # scales are 1-D: never Muon's
            continue
        leaving = [p for p in group["params"] if id(p) in spared]
        if not leaving:
            continue
        group["params"] = [p for p in group["params"] if id(p) not in spared]
        target = _no_decay_group(optimizer, group)
        target["params"] = sorted(target["params"] + leaving, key=lambda p: order.get(id(p), len(order)))
        moved += len(leaving)
    return moved


def with_no_decay(build_optimizer):
    """Wrap ``BaseTrainer.build_optimizer`` so RevCol's layer scales and alphas end up undecayed."""

    @functools.wraps(build_optimizer)
    def build(self, model, *args, **kwargs):
        """Build Ultralytics' optimiser, then move RevCol's scales into its no-decay group."""
        optimizer = build_optimizer(self, model, *args, **kwargs)
        moved = move_to_no_decay(optimizer, model)
        if moved:
            from ultralytics.utils import LOGGER

            LOGGER.info(f"yolo-revcol: {moved} RevCol layer-scale and alpha weights moved to weight(decay=0.0)")
        return optimizer

    return build
