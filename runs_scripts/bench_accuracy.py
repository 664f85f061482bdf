"""Train stock yolov8n and yolov8n-revcol with identical settings: mAP, time, memory; same as `yolo-revcol accuracy`.

Usage: python runs_scripts/bench_accuracy.py [--data DATA.yaml] [--models A.yaml B.yaml] [--quick] [--readme README.md]
"""

import sys

from yolo_revcol.tools.bench_accuracy import main

if __name__ == "__main__":
    sys.exit(main())
