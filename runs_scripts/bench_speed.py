"""CPU inference latency and training-step time of yolov8-revcol vs stock YOLOv8; same as `yolo-revcol speed`.

Usage: python runs_scripts/bench_speed.py [--scales n s | --paper [t s b]] [--imgsz 640 320] [--no-onnx] [--no-train]
       [--readme README.md]
"""

import sys

from yolo_revcol.tools.bench_speed import main

if __name__ == "__main__":
    sys.exit(main())
