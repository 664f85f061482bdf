"""yolo-revcol: RevCol (Reversible Column Networks) as a drop-in backbone for Ultralytics YOLO."""

from .nn import RevCol

__version__ = "0.1.0"
__all__ = ("RevCol", "__version__")
