"""RevCol ablations (block, stem, drop path, reversible, columns) at one scale; same as `yolo-revcol ablation`.

Usage: python runs_scripts/ablation.py [--study design columns] [--jobs 2] [--no-train] [--readme README.md]
"""

import sys

from yolo_revcol.tools.ablation import main

if __name__ == "__main__":
    sys.exit(main())
