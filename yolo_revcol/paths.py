"""Where the package finds its model and dataset YAMLs.

The repository's ``cfg/`` folder is the one source. A checkout (or editable install) reads it in place; the wheel
build packages it as ``yolo_revcol/cfg`` (see ``force-include`` in pyproject.toml).
"""

from __future__ import annotations

import re
from pathlib import Path

PACKAGE_DIR = Path(__file__).resolve().parent
REPO_ROOT = PACKAGE_DIR.parent
YAML_SUFFIXES = (".yaml", ".yml")


def cfg_dir() -> Path:
    """The folder of the shipped model YAMLs (dataset YAMLs in its ``datasets/`` subfolder).

    Returns:
        (Path): ``yolo_revcol/cfg`` in a wheel install, else the checkout's ``cfg/``.

    Raises:
        FileNotFoundError: When neither exists (a broken install).
    """
    for path in (PACKAGE_DIR / "cfg", REPO_ROOT / "cfg"):  # packaged copy first: site-packages/cfg is not ours
        if path.is_dir():
            return path
    raise FileNotFoundError(f"yolo-revcol YAMLs not found in {PACKAGE_DIR / 'cfg'} or {REPO_ROOT / 'cfg'}: reinstall")


def model_yamls() -> dict[str, Path]:
    """Shipped model YAMLs by file name, e.g. ``{"yolov8-revcol.yaml": Path(...)}``, sorted by name."""
    return {p.name: p for p in sorted(cfg_dir().iterdir()) if p.suffix in YAML_SUFFIXES}


def dataset_yamls() -> dict[str, Path]:
    """Shipped dataset YAMLs by file name, e.g. ``{"revcol-shapes.yaml": Path(...)}``, sorted by name."""
    folder = cfg_dir() / "datasets"
    return {p.name: p for p in sorted(folder.iterdir()) if p.suffix in YAML_SUFFIXES} if folder.is_dir() else {}


def shipped_yamls() -> dict[str, Path]:
    """Every shipped YAML by file name: model YAMLs, then dataset YAMLs."""
    return {**model_yamls(), **dataset_yamls()}


def scaled_name(name: str, scale: str) -> str:
    """``yolov8-revcol-seg.yaml`` -> ``yolov8n-revcol-seg.yaml``: the file name Ultralytics reads a scale from."""
    return re.sub(r"^(yolo(?:v)?\d+)", rf"\g<1>{scale}", name, count=1)


def model_names() -> dict[str, tuple[Path, str | None]]:
    """Every model name the package answers to: each shipped YAML (scale None) and each scaled name of it.

    Returns:
        (dict[str, tuple[Path, str | None]]): Name -> (shipped YAML, the scale the name picks or None), e.g.
            ``{"yolov8-revcol.yaml": (Path(...), None), "yolov8n-revcol.yaml": (Path(...), "n"), ...}``.
    """
    import yaml

    names: dict[str, tuple[Path, str | None]] = {}
    for name, path in model_yamls().items():
        names[name] = (path, None)
        for scale in yaml.safe_load(path.read_text()).get("scales") or {}:
            names.setdefault(scaled_name(name, scale), (path, scale))
    return names
