"""``python -m yolo_revcol.tools.bench_memory``: the same as ``yolo-revcol memory``."""

import sys

from . import main

sys.exit(main())
