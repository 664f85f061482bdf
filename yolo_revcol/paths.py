"""Where the package finds its model and dataset YAMLs."""

from __future__ import annotations

from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[1]


def cfg_dir() -> Path:
    """The repository's ``cfg/`` folder (model and dataset YAMLs).

    Raises:
        FileNotFoundError: When the package is installed without its repository checkout.
    """
    path = REPO_ROOT / "cfg"
    if not path.is_dir():
        raise FileNotFoundError(f"{path} not found: run from a yolo-revcol checkout (pip install -e .)")
    return path
