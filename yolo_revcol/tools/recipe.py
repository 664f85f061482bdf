"""Print the training recipe every benchmark uses (``toolbox.Settings``) as ``yolo train`` arguments.

Examples:
    yolo-revcol recipe                       # epochs=40 imgsz=160 batch=16 optimizer=AdamW lr0=0.002 ...
    yolo train model=yolov8n-revcol.yaml data=revcol-shapes.yaml $(yolo-revcol recipe --epochs 10)
"""

from __future__ import annotations

import argparse
import sys
from dataclasses import asdict

from .toolbox import Settings


def train_arguments(**overrides) -> str:
    """The recipe as ``key=value`` words for ``yolo train``, with ``overrides`` (recipe fields only) applied.

    Raises:
        TypeError: An override that is not a field of the recipe (named by the dataclass).
    """
    return " ".join(f"{k}={v}" for k, v in asdict(Settings(**overrides)).items())


def main(argv: list[str] | None = None) -> int:
    """``yolo-revcol recipe [--epochs N] [--seed S]``: print the recipe on one line."""
    p = argparse.ArgumentParser(prog="yolo-revcol recipe", description=__doc__.split("\n\n")[0])
    p.add_argument("--epochs", type=int, help=f"override the recipe's {Settings().epochs} epochs (e.g. a short demo)")
    p.add_argument("--seed", type=int, help=f"override the recipe's seed {Settings().seed}")
    args = p.parse_args(argv)
    if args.epochs is not None and args.epochs < 1:
        p.error(f"--epochs must be >= 1, got {args.epochs}")
    overrides = {k: v for k, v in vars(args).items() if v is not None}
    print(train_arguments(**overrides))
    return 0


if __name__ == "__main__":
    sys.exit(main())
