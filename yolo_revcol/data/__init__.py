"""Datasets for yolo-revcol: a deterministic synthetic shapes dataset generated offline, with no download.

Attributes are imported lazily so that ``python -m yolo_revcol.data.synthetic`` does not import the module twice
(runpy warns when a package has already imported the module it is asked to run).
"""

__all__ = ("CLASS_NAMES", "generate_detection_dataset")


def __getattr__(name: str):
    """Import ``CLASS_NAMES`` and ``generate_detection_dataset`` from ``.synthetic`` on first use."""
    if name in __all__:
        from . import synthetic

        return getattr(synthetic, name)
    raise AttributeError(f"module 'yolo_revcol.data' has no attribute {name!r}")
