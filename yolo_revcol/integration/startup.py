"""Start-up hook: register RevCol the moment any process imports Ultralytics' model builder.

The installed ``yolo_revcol_autoload.pth`` calls ``install()`` when Python starts. ``install()`` only puts a small
finder on ``sys.meta_path``; it imports nothing heavy. When ``ultralytics.nn.tasks`` is imported (by the ``yolo``
CLI, a DDP worker, or user code) the finder lets the normal loader run it and then calls ``register()``. Processes
that never import Ultralytics pay for one string comparison per import. Set ``YOLO_REVCOL_AUTOLOAD=0`` to turn it
off.
"""

from __future__ import annotations

import os
import sys

TARGET = "ultralytics.nn.tasks"


def _register_after(module) -> None:
    """Register RevCol once ``module`` (ultralytics.nn.tasks) has finished executing; warn instead of failing."""
    try:
        from .register import register

        register()
    except Exception as e:  # never break `import ultralytics`; RevCol YAMLs will then fail with this reason
        sys.stderr.write(f"WARNING ⚠️ yolo-revcol: RevCol is not registered with Ultralytics: {e}\n")


class _Loader:
    """Wrap the real loader of ultralytics.nn.tasks so registration runs right after the module executes."""

    def __init__(self, loader):
        self.loader = loader

    def create_module(self, spec):
        return self.loader.create_module(spec)

    def exec_module(self, module) -> None:
        self.loader.exec_module(module)
        _register_after(module)

    def __getattr__(self, name):  # get_code, get_source, is_package... used by tools such as inspect
        return getattr(self.loader, name)


class _Finder:
    """Meta-path finder that only intercepts ultralytics.nn.tasks, then removes itself."""

    def find_spec(self, fullname, path, target=None):
        if fullname != TARGET:
            return None
        uninstall()
        for finder in sys.meta_path:
            find_spec = getattr(finder, "find_spec", None)
            spec = find_spec(fullname, path, target) if find_spec else None
            if spec is not None:
                if spec.loader is not None:
                    spec.loader = _Loader(spec.loader)
                return spec
        return None


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
