"""Where the package finds its model and dataset YAMLs.

The repository's ``cfg/`` folder is the one source. A checkout (or editable install) reads it in place; the wheel
build packages it as ``yolo_revcol/cfg`` (see ``force-include`` in pyproject.toml).
"""

from __future__ import annotations

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
