"""Params/GFLOPs of yolov8-revcol vs stock YOLOv8 per scale; same as `yolo-revcol compare`.

Usage: python runs_scripts/compare.py [--scales n s m l x] [--readme README.md]
"""

import sys

from yolo_revcol.tools.compare import main

if __name__ == "__main__":
    sys.exit(main())
