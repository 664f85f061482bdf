"""The ``yolo-revcol`` console command: ``yolo-revcol <command> [options]``, e.g. ``yolo-revcol cfg``."""

from __future__ import annotations

import sys

COMMANDS = {
    "ablation": ("yolo_revcol.tools.ablation", "RevCol ablations (design, columns, budget): params, GFLOPs, mAP"),
    "accuracy": ("yolo_revcol.tools.bench_accuracy", "train stock yolov8n and yolov8n-revcol alike: mAP, time, memory"),
    "cfg": ("yolo_revcol.tools.configs", "list the shipped model and dataset YAMLs, or copy one out for editing"),
    "compare": ("yolo_revcol.tools.compare", "params/GFLOPs of RevCol YOLO models vs stock Ultralytics models"),
    "data": (
        "yolo_revcol.data.synthetic",
        "generate the embedded synthetic dataset (detect, segment, pose, obb, classify)",
    ),
    "memory": ("yolo_revcol.tools.bench_memory", "memory, reconstruction error and step time of reversible training"),
    "recipe": ("yolo_revcol.tools.recipe", "print the benchmarks' training recipe as yolo train arguments"),
    "speed": ("yolo_revcol.tools.bench_speed", "CPU inference and training-step time of RevCol vs stock YOLOv8"),
}


def main(argv: list[str] | None = None) -> int:
    """Dispatch to a sub-command's ``main``."""
    import importlib

    argv = sys.argv[1:] if argv is None else argv
    if not argv or argv[0] in {"-h", "--help", "help"} or argv[0] not in COMMANDS:
        usage = "\n".join(f"  {name:<10}{text}" for name, (_, text) in COMMANDS.items())
        print(f"usage: yolo-revcol <command> [options]\n\ncommands:\n{usage}")
        return 0 if argv and argv[0] in {"-h", "--help", "help"} else 2
    return importlib.import_module(COMMANDS[argv[0]][0]).main(argv[1:]) or 0


if __name__ == "__main__":
    sys.exit(main())
