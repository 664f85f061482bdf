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
from . import resolve, startup
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


def patch_trainer(trainer) -> None:
    """Wrap ``trainer.BaseTrainer.build_optimizer`` (once) so RevCol's layer scales and alphas stay undecayed.

    Args:
        trainer (module): ``ultralytics.engine.trainer``, fully imported.
    """
    cls = trainer.BaseTrainer
    if not getattr(cls.build_optimizer, _MARK, False):
        build = with_no_decay(cls.build_optimizer)
        setattr(build, _MARK, True)
        cls.build_optimizer = build


def register() -> None:
    """Make Ultralytics understand RevCol model YAMLs and checkpoints. Safe to call any number of times.

    Raises:
        UnsupportedUltralyticsError: If the installed Ultralytics version is not supported.
    """
    import ultralytics
    from ultralytics.nn import tasks

    check_ultralytics_version(ultralytics.__version__)
    resolve.install()  # YOLO("yolov8n-revcol.yaml"), data=revcol-shapes.yaml from any folder
    tasks.RevCol = revcol_nn.RevCol  # parse_model resolves YAML module names in this namespace
    if not getattr(tasks.parse_model, _MARK, False):
        original = tasks.parse_model

        @functools.wraps(original)
        def parse_model(d, ch, verbose=True):
            """Expand RevCol rows for the model's scale, build with Ultralytics' own parse_model, add aux heads."""
            layers, save = original(expand_revcol_rows(d, ch), ch, verbose)
            attach_aux_heads(layers, verbose)
            return layers, save

        setattr(parse_model, _MARK, True)
        tasks.parse_model = parse_model
    if not getattr(tasks.BaseModel.fuse, _MARK, False):
        original_fuse = tasks.BaseModel.fuse

        @functools.wraps(original_fuse)
        def fuse(self, *args, **kwargs):
            """Fuse RevCol backbones first, so the summary Ultralytics prints afterwards describes the fused model."""
            for m in list(self.modules()):  # listed first: fusing drops RevCol's auxiliary heads
                if isinstance(m, revcol_nn.RevCol):
                    m.fuse()
            return original_fuse(self, *args, **kwargs)

        setattr(fuse, _MARK, True)
        tasks.BaseModel.fuse = fuse
    if not getattr(tasks.BaseModel.loss, _MARK, False):
        loss = with_aux_loss(tasks.BaseModel.loss)
        setattr(loss, _MARK, True)
        tasks.BaseModel.loss = loss
    if not getattr(tasks.BaseModel.load, _MARK, False):  # stock weights: neck and head by structure
        load = with_structural_transfer(tasks.BaseModel.load)
        setattr(load, _MARK, True)
        tasks.BaseModel.load = load
    trainer = sys.modules.get(startup.TRAINER)
    if trainer is not None and hasattr(trainer, "BaseTrainer"):
        patch_trainer(trainer)
    elif trainer is None and not startup.watching(startup.TRAINER):
        patch_trainer(importlib.import_module(startup.TRAINER))
    # Otherwise the trainer module is importing Ultralytics' model builder right now (so register() runs inside that
    # import): the start-up hook wraps its optimiser builder once the trainer module has finished executing.
    if hasattr(torch.serialization, "add_safe_globals"):
        torch.serialization.add_safe_globals(module_classes())
