"""yolo-revcol: RevCol (Reversible Column Networks) as a drop-in backbone for Ultralytics YOLO.

Attributes are imported lazily: the start-up hook imports this package in every Python process, and that must
not pull in torch.
"""

__version__ = "0.1.0"
__all__ = ("RevCol", "register", "__version__")


def __getattr__(name: str):
    """Import ``RevCol`` and ``register`` on first use."""
    if name == "RevCol":
        from .nn import RevCol

        return RevCol
    if name == "register":
        from .integration.register import register

        return register
    raise AttributeError(f"module 'yolo_revcol' has no attribute {name!r}")
