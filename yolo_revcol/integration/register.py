"""Register RevCol with Ultralytics: YAML module names, argument scaling, fusing, and the safe-load allow-list.

Nothing in Ultralytics is edited or copied. ``register()`` adds RevCol to the namespace in which ``parse_model``
resolves YAML module names, wraps ``parse_model`` so RevCol rows are expanded first (see ``yaml_args``), wraps
``BaseModel.fuse`` so ``model.fuse()`` (called before val, predict and export) also fuses RevCol backbones (and drops
their training-only auxiliary heads), wraps ``BaseModel.loss`` so the ``aux`` option adds its terms (see ``aux``),
wraps ``BaseModel.load`` so stock weights fill a RevCol model's neck and head by structure (see ``transfer``),
wraps ``check_file`` so our YAMLs resolve by name (see ``resolve``), wraps ``BaseTrainer.build_optimizer`` so RevCol's
layer scales and alphas are not weight-decayed (see ``optimizer``), and adds the package's module classes to
torch's safe-globals so checkpoints load under ``ULTRALYTICS_SAFE_LOAD=1``.
"""

from __future__ import annotations

import functools
import importlib
import inspect
import re
import sys

import torch

from .. import nn as revcol_nn
from . import resolve
from .aux import attach_aux_heads, with_aux_loss
from .optimizer import with_no_decay
from .transfer import with_structural_transfer
from .yaml_args import expand_revcol_rows

__all__ = (
    "SUPPORTED_ULTRALYTICS",
    "UnsupportedUltralyticsError",
    "check_ultralytics_version",
    "patch_trainer",
    "register",
)

SUPPORTED_ULTRALYTICS = ("8.4.0", "8.5.0")  # [lowest, first unsupported); keep in step with pyproject.toml
_MARK = "_yolo_revcol_wrapped"


class UnsupportedUltralyticsError(RuntimeError):
    """The installed Ultralytics is outside the range this package supports."""


def _version_tuple(version: str) -> tuple[int, ...]:
    """Numeric release part of a version string, e.g. '8.4.190' -> (8, 4, 190), '8.5.0rc1' -> (8, 5, 0)."""
    match = re.match(r"\d+(\.\d+)*", version.strip())
    return tuple(int(p) for p in match.group(0).split(".")) if match else ()


def check_ultralytics_version(version: str) -> None:
    """Raise UnsupportedUltralyticsError unless ``version`` lies in SUPPORTED_ULTRALYTICS."""
    low, high = SUPPORTED_ULTRALYTICS
    if not _version_tuple(low) <= _version_tuple(version) < _version_tuple(high):
        raise UnsupportedUltralyticsError(
            f"yolo-revcol supports ultralytics>={low},<{high}, but ultralytics {version} is installed; "
            f"install a supported release with: pip install 'ultralytics>={low},<{high}'"
        )


def module_classes() -> list[type]:
    """Every nn.Module class defined by the package (what checkpoints may pickle)."""
    return [
        obj
        for obj in vars(revcol_nn).values()
        if inspect.isclass(obj) and issubclass(obj, torch.nn.Module) and obj.__module__.startswith("yolo_revcol.")
    ]


def wrap_once(owner, name: str, wrap) -> None:
    """Replace ``owner.name`` by ``wrap(owner.name)`` unless it is wrapped already (``register()`` may run again).

    Args:
        owner (module | type): Module or class holding the function.
        name (str): Attribute name of the function.
        wrap (Callable): Returns the wrapped function, given the current one.
    """
    current = getattr(owner, name)
    if not getattr(current, _MARK, False):
        wrapped = wrap(current)
        setattr(wrapped, _MARK, True)
        setattr(owner, name, wrapped)


def with_revcol_rows(original):
    """Wrap ``parse_model``: expand RevCol rows for the model's scale, build with Ultralytics', add aux heads."""

    @functools.wraps(original)
    def parse_model(d, ch, verbose=True):
        layers, save = original(expand_revcol_rows(d, ch), ch, verbose)
        attach_aux_heads(layers, verbose)
        return layers, save

    return parse_model


def with_revcol_fuse(original):
    """Wrap ``BaseModel.fuse``: fuse RevCol backbones first, so Ultralytics' summary describes the fused model."""

    @functools.wraps(original)
    def fuse(self, *args, **kwargs):
        for m in list(self.modules()):  # listed first: fusing drops RevCol's auxiliary heads
            if isinstance(m, revcol_nn.RevCol):
                m.fuse()
        return original(self, *args, **kwargs)

    return fuse


TRAINER_MODULE = "ultralytics.engine.trainer"  # holds BaseTrainer.build_optimizer


def patch_trainer(trainer) -> None:
    """Wrap ``trainer.BaseTrainer.build_optimizer`` (once) so RevCol's layer scales and alphas stay undecayed.

    Args:
        trainer (module): ``ultralytics.engine.trainer``, fully imported.
    """
    wrap_once(trainer.BaseTrainer, "build_optimizer", with_no_decay)


def register(trainer_hooked: bool = False) -> None:
    """Make Ultralytics understand RevCol model YAMLs and checkpoints. Safe to call any number of times.

    Args:
        trainer_hooked (bool): The caller will wrap the trainer's optimiser builder itself once
            ``ultralytics.engine.trainer`` is imported (the start-up hook says so while it watches that import), so
            the trainer is not imported here.

    Raises:
        UnsupportedUltralyticsError: If the installed Ultralytics version is not supported.
    """
    import ultralytics
    from ultralytics.nn import tasks

    check_ultralytics_version(ultralytics.__version__)
    resolve.install()  # YOLO("yolov8n-revcol.yaml"), data=revcol-shapes.yaml from any folder
    resolve.install_model_names()  # a missing model is reported by the name typed
    resolve.install_cls_data()  # data=revcol-shapes-cls.yaml for the classify task
    tasks.RevCol = revcol_nn.RevCol  # parse_model resolves YAML module names in this namespace
    wrap_once(tasks, "parse_model", with_revcol_rows)
    wrap_once(tasks.BaseModel, "fuse", with_revcol_fuse)
    wrap_once(tasks.BaseModel, "loss", with_aux_loss)
    wrap_once(tasks.BaseModel, "load", with_structural_transfer)  # stock weights: neck and head by structure
    trainer = sys.modules.get(TRAINER_MODULE)
    if trainer is not None and hasattr(trainer, "BaseTrainer"):
        patch_trainer(trainer)
    elif trainer is None and not trainer_hooked:
        patch_trainer(importlib.import_module(TRAINER_MODULE))
    # Otherwise the trainer module is importing Ultralytics' model builder right now (so register() runs inside that
    # import), or is yet to be imported under the start-up hook: the hook wraps its optimiser builder once the
    # trainer module has finished executing.
    if hasattr(torch.serialization, "add_safe_globals"):
        torch.serialization.add_safe_globals(module_classes())
