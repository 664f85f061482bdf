"""The ``yolo-revcol`` console command: ``yolo-revcol <command> [options]``, e.g. ``yolo-revcol cfg``."""

from __future__ import annotations

import sys

COMMANDS = {
    "ablation": ("yolo_revcol.tools.bench_accuracy:ablation_main", "former name of accuracy --study"),
    "accuracy": (
        "yolo_revcol.tools.bench_accuracy",
        "train stock and RevCol models alike (--study: variants of the RevCol row): mAP, time, memory",
    ),
    "cfg": ("yolo_revcol.configs", "list the shipped model and dataset YAMLs, or copy one out for editing"),
    "compare": ("yolo_revcol.tools.compare", "params/GFLOPs of RevCol YOLO models vs stock Ultralytics models"),
    "data": (
        "yolo_revcol.data.synthetic",
        "generate the embedded synthetic dataset (detect, segment, pose, obb, classify)",
    ),
    "memory": (
        "yolo_revcol.tools.bench_memory",
        "training memory of the reversible path against plain backprop, and its exactness",
    ),
    "recipe": ("yolo_revcol.tools.recipe", "print the benchmarks' training recipe as yolo train arguments"),
    "speed": ("yolo_revcol.tools.bench_speed", "CPU inference and training-step time of RevCol vs stock YOLOv8"),
}


HELP = {"-h", "--help", "help"}


def usage() -> str:
    """The general usage text: the command line and one line per command."""
    lines = "\n".join(f"  {name:<10}{text}" for name, (_, text) in COMMANDS.items())
    return (
        "usage: yolo-revcol <command> [options]    (yolo-revcol <command> -h: the command's options)\n"
        f"       yolo-revcol --version\n\ncommands:\n{lines}"
    )


def unknown_command(name: str) -> str:
    """The error for a command that does not exist, with the closest one when there is one."""
    import difflib

    close = difflib.get_close_matches(name, COMMANDS, n=1, cutoff=0.6)
    hint = f"; did you mean '{close[0]}'?" if close else f"; commands: {', '.join(COMMANDS)}"
    return f"yolo-revcol: unknown command '{name}'{hint} (yolo-revcol --help lists them)"


def main(argv: list[str] | None = None) -> int:
    """Dispatch to a sub-command's ``main``; exit status 2 for a missing or unknown command."""
    import importlib

    argv = sys.argv[1:] if argv is None else argv
    if argv and argv[0] == "--version":
        from . import __version__

        print(f"yolo-revcol {__version__}")
        return 0
    if not argv or argv[0] in HELP:
        print(usage())
        return 0 if argv else 2
    if argv[0] not in COMMANDS:
        print(unknown_command(argv[0]), file=sys.stderr)
        return 2
    module, _, function = COMMANDS[argv[0]][0].partition(":")
    return getattr(importlib.import_module(module), function or "main")(argv[1:]) or 0


if __name__ == "__main__":
    sys.exit(main())
