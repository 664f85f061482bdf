"""Resolve the package's YAMLs by name wherever Ultralytics resolves its own (``yolov8n.yaml``, ``coco8.yaml``).

Ultralytics turns a bare name into a path with ``ultralytics.utils.checks.check_file`` (``check_yaml`` calls it):
an existing local path is returned as is, other names are searched inside the Ultralytics package. ``install()``
wraps that function so a bare name of one of our YAMLs (``yolov8-revcol.yaml``, ``revcol-shapes.yaml``) resolves to
the shipped file after the local check, and so a name that looks like ours but is unknown fails with the list of
shipped names. Scale letters need nothing extra: Ultralytics' ``yaml_model_load`` already retries
``yolov8n-revcol.yaml`` as ``yolov8-revcol.yaml``; ``with_typed_names`` wraps it so that a missing model is reported by
the name the user typed, with the closest names we answer to. A local file of a shipped name wins, and says so once.
``with_shipped_cls_data`` lets ``data=revcol-shapes-cls.yaml`` name the classification folder that YAML describes.
"""

from __future__ import annotations

import difflib
import functools
import os
import re
import sys
from pathlib import Path

from ..paths import YAML_SUFFIXES, dataset_yamls, model_names, model_yamls, shipped_yamls

MARKER = "revcol"  # names containing it are ours: unknown ones get the list of shipped names
_MARK = "_yolo_revcol_wrapped"
# Old names of renamed YAMLs; they still load, with a warning. The paper's backbones were yolov8-revcol-{t,s,b}.yaml,
# which Ultralytics also reached from yolov8n-revcol-s.yaml and the like (it drops a scale letter after the digits).
RENAMED = {f"yolov8-revcol-{p}.yaml": f"revcol-{p}-yolov8.yaml" for p in "tsb"}
_UNSCALED = re.compile(r"(\d+)([nslmx])(.+)?$")  # the rule by which Ultralytics drops a scale letter
_reported: set[str] = set()  # local files already reported as shadowing a shipped name


def _log(level: str, message: str) -> None:
    """Log through Ultralytics' logger (imported lazily: this module loads before Ultralytics finishes)."""
    from ultralytics.utils import LOGGER

    getattr(LOGGER, level)(message)


def unscaled(name: str) -> str:
    """``yolov8n-revcol.yaml`` -> ``yolov8-revcol.yaml``, as Ultralytics' ``yaml_model_load`` retries a name."""
    return _UNSCALED.sub(r"\1\3", name)


def closest_names(name: str, n: int = 3) -> list[str]:
    """The model names we answer to (shipped and scaled) closest to ``name``."""
    return difflib.get_close_matches(Path(name).name, model_names(), n=n, cutoff=0.6)


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
        if name in RENAMED and not os.path.exists(name):
            _log("warning", f"yolo-revcol: {name} is now named {RENAMED[name]}; the old name is deprecated")
            name = RENAMED[name]
        if "://" not in name and not os.path.exists(name) and (path := shipped_path(name)):
            file = str(path)  # still through Ultralytics, so its suffix check applies
        elif (
            os.path.isfile(name)
            and name not in _reported
            and (path := shipped_path(name) or shipped_path(unscaled(name)))
        ):
            _reported.add(name)
            _log("warning", f"yolo-revcol: using {os.path.join('.', name)}, not the shipped {path.name}")
        try:
            return check_file(file, *args, **kwargs)
        except FileNotFoundError as e:
            if not looks_like_ours(name):
                raise
            raise FileNotFoundError(f"{e}. {available_message()}") from None

    setattr(wrapped, _MARK, True)
    return wrapped


def with_typed_names(yaml_model_load):
    """Wrap Ultralytics' ``yaml_model_load`` so a missing model of ours is reported by the name typed.

    Ultralytics retries ``yolov8n-revcoll.yaml`` as ``yolov8-revcoll.yaml`` and reports that one; the wrapped
    function names what was typed and the closest names we answer to. A scaled name whose unscaled form is an old
    name of the paper's YAMLs (``yolov8n-revcol-s.yaml``) is refused instead of silently building RevCol-S.
    """

    @functools.wraps(yaml_model_load)
    def wrapped(path):
        typed = Path(path).name
        if not os.path.exists(path) and unscaled(typed) != typed and unscaled(typed) in RENAMED:
            old = unscaled(typed)
            raise FileNotFoundError(
                f"model '{typed}' not found: '{old}' was the old name of the paper's backbone {RENAMED[old]}, which "
                "has no scales; for yolov8-revcol at a scale, name the scale after 'yolov8' (e.g. yolov8s-revcol.yaml)"
            )
        try:
            return yaml_model_load(path)
        except FileNotFoundError:
            if not looks_like_ours(typed):
                raise
            close = closest_names(typed)
            hint = f"; closest: {', '.join(close)}" if close else ""
            raise FileNotFoundError(f"model '{typed}' not found{hint}. {available_message()}") from None

    setattr(wrapped, _MARK, True)
    return wrapped


def with_shipped_cls_data(check_cls_dataset):
    """Wrap Ultralytics' ``check_cls_dataset`` so a shipped dataset YAML's name stands for the folder it describes.

    Ultralytics' classify task takes a folder, never a YAML. ``data=revcol-shapes-cls.yaml`` (or ``revcol-shapes-cls``)
    becomes that YAML's ``path`` under Ultralytics' ``datasets_dir``, generated first by the YAML's own ``download``
    script when it is missing (offline, a few seconds).
    """

    @functools.wraps(check_cls_dataset)
    def wrapped(dataset, *args, **kwargs):
        name = str(dataset).strip()
        shipped = dataset_yamls()
        yaml_path = None if os.path.exists(name) else shipped.get(name) or shipped.get(f"{name}.yaml")
        if yaml_path is not None:
            dataset = shipped_cls_folder(yaml_path)
        return check_cls_dataset(dataset, *args, **kwargs)

    setattr(wrapped, _MARK, True)
    return wrapped


def shipped_cls_folder(yaml_path: Path) -> Path:
    """The dataset folder a shipped classification YAML describes, generated by its ``download`` script if missing."""
    import yaml
    from ultralytics.utils import DATASETS_DIR

    d = yaml.safe_load(yaml_path.read_text())
    folder = Path(d["path"]) if Path(d["path"]).is_absolute() else Path(DATASETS_DIR) / d["path"]
    if not (folder / d.get("train", "train")).is_dir():
        _log("info", f"yolo-revcol: generating {folder} from {yaml_path.name} (offline, once)")
        exec(d["download"], {"yaml": {**d, "path": str(folder)}})  # the YAML's own recipe, as Ultralytics runs one
    return folder


def _replace_everywhere(prefix: str, original, wrapped) -> None:
    """Rebind ``original`` to ``wrapped`` in every loaded module under ``prefix`` that imported it by name."""
    for name, module in list(sys.modules.items()):
        if name.split(".")[0] == prefix and getattr(module, original.__name__, None) is original:
            setattr(module, original.__name__, wrapped)


def install_model_names() -> None:
    """Wrap ``yaml_model_load`` in ``ultralytics.nn.tasks`` (and wherever it was imported by name); idempotent."""
    from ultralytics.nn import tasks

    if not getattr(tasks.yaml_model_load, _MARK, False):
        _replace_everywhere("ultralytics", tasks.yaml_model_load, with_typed_names(tasks.yaml_model_load))


def install_cls_data() -> None:
    """Wrap ``check_cls_dataset`` in ``ultralytics.data.utils`` (and wherever it was imported by name); idempotent.

    Does nothing while ``ultralytics.data.utils`` is still executing (``register()`` then runs inside that import,
    under the start-up hook, which calls this again once the engine modules that call the function are imported).
    """
    from ultralytics.data import utils

    original = getattr(utils, "check_cls_dataset", None)
    if original is not None and not getattr(original, _MARK, False):
        _replace_everywhere("ultralytics", original, with_shipped_cls_data(original))


def install() -> None:
    """Wrap ``check_file`` in ``ultralytics.utils.checks`` and in every loaded module that imported it by name.

    ``check_yaml`` looks ``check_file`` up in its own module, so it follows; modules imported later pick up the
    wrapped function from ``checks``. Safe to call any number of times.
    """
    from ultralytics.utils import checks

    if not getattr(checks.check_file, _MARK, False):
        _replace_everywhere("ultralytics", checks.check_file, with_shipped_yamls(checks.check_file))
