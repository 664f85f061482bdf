"""Resolve the package's YAMLs by name wherever Ultralytics resolves its own (``yolov8n.yaml``, ``coco8.yaml``).

Ultralytics turns a bare name into a path with ``ultralytics.utils.checks.check_file`` (``check_yaml`` calls it):
an existing local path is returned as is, other names are searched inside the Ultralytics package. ``install()``
wraps that function so a bare name of one of our YAMLs (``yolov8-revcol.yaml``, ``revcol-shapes.yaml``) resolves to
the shipped file after the local check, and so a name that looks like ours but is unknown fails with the list of
shipped names. Scale letters need nothing extra: Ultralytics' ``yaml_model_load`` already retries
``yolov8n-revcol.yaml`` as ``yolov8-revcol.yaml``.
"""

from __future__ import annotations

import functools
import os
import sys
from pathlib import Path

from ..paths import YAML_SUFFIXES, dataset_yamls, model_yamls, shipped_yamls

MARKER = "revcol"  # names containing it are ours: unknown ones get the list of shipped names
_MARK = "_yolo_revcol_wrapped"


def shipped_path(name: str) -> Path | None:
    """The shipped YAML a bare file name refers to, or None (paths with folders, unknown names, no cfg folder)."""
    if not name or os.sep in name or "/" in name:
        return None
    try:
        return shipped_yamls().get(name)
    except FileNotFoundError:  # broken install: behave like Ultralytics alone
        return None


def looks_like_ours(name: str) -> bool:
    """Whether a missing file name is meant as one of our YAMLs (a typo should list the real names)."""
    path = Path(name)
    return "://" not in name and MARKER in path.name.lower() and path.suffix.lower() in ("", *YAML_SUFFIXES)


def available_message() -> str:
    """One line naming the shipped model and dataset YAMLs, and how scales are chosen."""
    models, datasets = ", ".join(model_yamls()), ", ".join(dataset_yamls())
    return (
        f"yolo-revcol ships models: {models} (add a scale letter n/s/m/l/x, e.g. yolov8n-revcol.yaml); "
        f"datasets: {datasets}. List or copy them with 'yolo-revcol cfg'."
    )


def with_shipped_yamls(check_file):
    """Wrap Ultralytics' ``check_file`` so bare names of our YAMLs resolve to the shipped files.

    Args:
        check_file (Callable): ``ultralytics.utils.checks.check_file``.

    Returns:
        (Callable): The same call signature; local files still win, other names behave exactly as before.
    """

    @functools.wraps(check_file)
    def wrapped(file, *args, **kwargs):
        name = str(file).strip()
        if "://" not in name and not os.path.exists(name) and (path := shipped_path(name)):
            file = str(path)  # still through Ultralytics, so its suffix check applies
        try:
            return check_file(file, *args, **kwargs)
        except FileNotFoundError as e:
            if not looks_like_ours(name):
                raise
            raise FileNotFoundError(f"{e}. {available_message()}") from None

    setattr(wrapped, _MARK, True)
    return wrapped


def install() -> None:
    """Wrap ``check_file`` in ``ultralytics.utils.checks`` and in every loaded module that imported it by name.

    ``check_yaml`` looks ``check_file`` up in its own module, so it follows; modules imported later pick up the
    wrapped function from ``checks``. Safe to call any number of times.
    """
    from ultralytics.utils import checks

    if getattr(checks.check_file, _MARK, False):
        return
    original = checks.check_file
    wrapped = with_shipped_yamls(original)
    for name, module in list(sys.modules.items()):
        if name.split(".")[0] == "ultralytics" and getattr(module, "check_file", None) is original:
            module.check_file = wrapped
