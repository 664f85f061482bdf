#!/usr/bin/env bash
# The main job on a new machine, CPU only and offline: set up if needed, train yolov8n-revcol on the embedded
# synthetic dataset for a few epochs, validate, predict on an image and save the annotated picture, then print
# params/GFLOPs next to stock yolov8n.
#
# Usage: bash runs_scripts/demo.sh [EPOCHS]      (default 10 epochs of the benchmarks' recipe, `yolo-revcol recipe`)
# A few CPU epochs show the whole workflow, not final accuracy: `yolo-revcol accuracy` measures that with the same
# recipe at its full 40 epochs.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
source runs_scripts/setup.sh

EPOCHS="${1:-10}"
RECIPE="$(yolo-revcol recipe --epochs "$EPOCHS")"  # epochs, imgsz, batch, optimizer, lr0, warm-up... defined once
IMGSZ="$(echo "$RECIPE" | tr ' ' '\n' | sed -n 's/^imgsz=//p')"
DATA=cfg/datasets/revcol-shapes.yaml
RUN="$PWD/runs/demo"  # absolute: Ultralytics puts relative projects under runs/<task>/
export YOLO_OFFLINE=1  # nothing here needs the network
python -m yolo_revcol.integration.offline  # local fonts, so Ultralytics does not try to download Arial.ttf

echo "== train: yolov8n-revcol, CPU: $RECIPE"
# shellcheck disable=SC2086  # the recipe is several key=value words
yolo train model=cfg/yolov8n-revcol.yaml data="$DATA" $RECIPE project="$RUN" name=train exist_ok=True
WEIGHTS="$RUN/train/weights/best.pt"

echo "== val"
yolo val model="$WEIGHTS" data="$DATA" imgsz="$IMGSZ" batch=16 device=cpu project="$RUN" name=val exist_ok=True

echo "== predict"
IMAGE="$(python -c "
from ultralytics.data.utils import check_det_dataset
from pathlib import Path
print(sorted(Path(check_det_dataset('$DATA')['val']).glob('*.jpg'))[0])
")"
yolo predict model="$WEIGHTS" source="$IMAGE" imgsz="$IMGSZ" device=cpu project="$RUN" name=predict exist_ok=True save=True
echo "annotated picture: $RUN/predict/$(basename "$IMAGE")"

echo "== size: yolov8n-revcol vs stock yolov8n"
yolo-revcol compare --scales n --out "$RUN"
