"""Start-up hook: register RevCol the moment any process imports Ultralytics' model builder.

The installed ``yolo_revcol_autoload.pth`` calls ``install()`` when Python starts. ``install()`` only puts a small
finder on ``sys.meta_path``; it imports nothing heavy. When ``ultralytics.nn.tasks`` is imported (by the ``yolo``
CLI, a DDP worker, or user code) the finder lets the normal loader run it and then calls ``register()``; when
``ultralytics.engine.trainer`` is, it then wraps the trainer's optimiser builder (see ``optimizer``), which
``register()`` cannot do while the trainer module is still importing the model builder; when an engine module that
calls ``check_cls_dataset`` is, it wraps that function (``register()`` cannot while ``ultralytics.data.utils`` is
still importing, which is the case when a process imports it first). This module depends on
``register`` (imported lazily, in the hooks) and never the other way round. Processes that never import
Ultralytics pay for one dictionary look-up per import. Set ``YOLO_REVCOL_AUTOLOAD=0`` to turn it off.
"""

from __future__ import annotations

import os
import sys

TARGET = "ultralytics.nn.tasks"
TRAINER = "ultralytics.engine.trainer"
# The modules that call ``check_cls_dataset``, besides the trainer (whose hook wraps it too). When a process imports
# ``ultralytics.data.utils`` first, RevCol is registered while that module is still executing, so its wrap waits for
# these (each imports the finished module).
CLS_DATA_USERS = ("ultralytics.engine.validator", "ultralytics.engine.exporter")


def _register_after(module) -> None:
    """Register RevCol once ``module`` (ultralytics.nn.tasks) has finished executing; warn instead of failing."""
    try:
        from .register import register

        register(trainer_hooked=watching(TRAINER))
    except Exception as e:  # never break `import ultralytics`; RevCol YAMLs will then fail with this reason
        sys.stderr.write(f"WARNING ⚠️ yolo-revcol: RevCol is not registered with Ultralytics: {e}\n")


def _patch_trainer_after(module) -> None:
    """Wrap the optimiser builder of ``module`` (ultralytics.engine.trainer) once it has executed; warn on failure."""
    try:
        from .register import patch_trainer

        patch_trainer(module)
    except Exception as e:  # never break the import; RevCol's scales are then weight-decayed
        sys.stderr.write(f"WARNING ⚠️ yolo-revcol: RevCol's layer scales will be weight-decayed: {e}\n")
    _wrap_cls_data_after(module)


def _wrap_cls_data_after(module) -> None:
    """Wrap ``check_cls_dataset`` once ``module`` (the trainer or one of ``CLS_DATA_USERS``) has executed; warn on
    failure."""
    try:
        from .resolve import install_cls_data

        install_cls_data()
    except Exception as e:  # never break the import; the shipped classify dataset then needs its full path
        sys.stderr.write(f"WARNING ⚠️ yolo-revcol: data=revcol-shapes-cls.yaml will not resolve: {e}\n")


class _Loader:
    """Wrap the real loader of a watched module so its hook runs right after the module executes."""

    def __init__(self, loader, hook):
        self.loader = loader
        self.hook = hook

    def create_module(self, spec):
        return self.loader.create_module(spec)

    def exec_module(self, module) -> None:
        self.loader.exec_module(module)
        self.hook(module)

    def __getattr__(self, name):  # get_code, get_source, is_package... used by tools such as inspect
        return getattr(self.loader, name)


class _Finder:
    """Meta-path finder that only intercepts the watched modules, each once, and removes itself after the last."""

    def __init__(self):
        self.pending = {
            TARGET: _register_after,
            TRAINER: _patch_trainer_after,
            **dict.fromkeys(CLS_DATA_USERS, _wrap_cls_data_after),
        }

    def find_spec(self, fullname, path, target=None):
        hook = self.pending.pop(fullname, None)
        if hook is None:
            return None
        if not self.pending:
            uninstall()
        for finder in sys.meta_path:
            find_spec = getattr(finder, "find_spec", None) if finder is not self else None
            spec = find_spec(fullname, path, target) if find_spec else None
            if spec is not None:
                if spec.loader is not None:
                    spec.loader = _Loader(spec.loader, hook)
                return spec
        return None


def watching(name: str) -> bool:
    """Whether an installed finder will still run its hook when module ``name`` is imported."""
    return any(isinstance(f, _Finder) and name in f.pending for f in sys.meta_path)


def uninstall() -> None:
    """Remove the finder (if installed)."""
    sys.meta_path[:] = [f for f in sys.meta_path if not isinstance(f, _Finder)]


def install() -> None:
    """Arrange for RevCol to be registered when Ultralytics' model builder is imported (now, if it already is)."""
    if os.environ.get("YOLO_REVCOL_AUTOLOAD", "1").lower() in {"0", "false", "no", "off"}:
        return
    if TARGET in sys.modules:
        _register_after(sys.modules[TARGET])
    elif not any(isinstance(f, _Finder) for f in sys.meta_path):
        sys.meta_path.insert(0, _Finder())
