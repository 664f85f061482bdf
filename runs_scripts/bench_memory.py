"""Training memory of RevCol's reversible path and the exactness of its reverse pass; same as `yolo-revcol memory`.

Usage: python runs_scripts/bench_memory.py [--sections memory aux paper] [--quick] [--blocks c2f convnext]
       [--out results] [--readme README.md docs/benchmarks.md]
"""

import sys

from yolo_revcol.tools.bench_memory import main

if __name__ == "__main__":
    sys.exit(main())
