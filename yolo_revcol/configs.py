"""List the shipped model and dataset YAMLs, or copy one out for editing.

Every name listed works as is wherever Ultralytics takes a YAML (``model=yolov8n-revcol.yaml``,
``data=revcol-shapes.yaml``), from any folder. A file of the same name in the current folder wins, so a copy made
here and edited is what ``yolo train model=...`` then uses.

Examples:
    yolo-revcol cfg                                   # list the YAMLs, their heads and scales
    yolo-revcol cfg yolov8-revcol.yaml                # copy it into the current folder
    yolo-revcol cfg yolov8n-revcol.yaml               # the same YAML under the name that picks scale n
    yolo-revcol cfg revcol-shapes.yaml --out my_cfg   # copy into my_cfg/ (refuses to overwrite without --force)
"""

from __future__ import annotations

import argparse
import difflib
import shutil
import sys
from pathlib import Path

import yaml

from .paths import cfg_dir, dataset_yamls, model_names, model_yamls, scaled_name, shipped_yamls


def describe_model(path: Path) -> str:
    """``Detect    n s m l x  (yolov8n-revcol.yaml ... yolov8x-revcol.yaml)``: head, scales, names that pick them."""
    d = yaml.safe_load(path.read_text())
    scales = list(d.get("scales") or {})
    head = d["head"][-1][2] if d.get("head") else "?"
    names = f"  ({scaled_name(path.name, scales[0])} ... {scaled_name(path.name, scales[-1])})" if scales else ""
    return f"{head:<10}{' '.join(scales):<11}{names}"


def listing() -> str:
    """The text ``yolo-revcol cfg`` prints: every shipped YAML by the name to pass to Ultralytics."""
    models, datasets = model_yamls(), dataset_yamls()
    width = max(map(len, [*models, *datasets])) + 2
    lines = [f"yolo-revcol YAMLs (in {cfg_dir()}); pass them by name, e.g. model=yolov8n-revcol.yaml", "models:"]
    lines += [f"  {name:<{width}}{describe_model(path)}" for name, path in models.items()]
    lines += ["datasets:"] + [f"  {name}" for name in datasets]
    return "\n".join(lines)


def copy_out(name: str, out: Path, force: bool = False) -> tuple[Path, str | None]:
    """Copy the shipped YAML ``name`` lists into ``out``, under the name given (a scaled name such as
    ``yolov8n-revcol.yaml`` keeps the scale it picks); return the file and that scale (None if unscaled).

    Raises:
        KeyError: Unknown name (with the closest names).
        FileExistsError: The destination exists and ``force`` is False.
    """
    known = {**{n: (p, None) for n, p in shipped_yamls().items()}, **model_names()}
    key = name if name in known else f"{name}.yaml"
    if key not in known:
        close = difflib.get_close_matches(name, known, n=3, cutoff=0.6)
        hint = f"did you mean {', '.join(close)}?" if close else f"choose one of: {', '.join(shipped_yamls())}"
        raise KeyError(f"no shipped YAML named {name!r}; {hint}")
    source, scale = known[key]
    target = Path(out) / key
    if target.exists() and not force:
        raise FileExistsError(f"{target} exists; pass --force to overwrite it")
    target.parent.mkdir(parents=True, exist_ok=True)
    shutil.copyfile(source, target)
    return target, scale


def main(argv: list[str] | None = None) -> int:
    """``yolo-revcol cfg [NAME [--out DIR] [--force]]``: list, or copy one YAML out."""
    parser = argparse.ArgumentParser(prog="yolo-revcol cfg", description=__doc__.split("\n\n")[0])
    parser.add_argument("name", nargs="?", help="YAML to copy (see the list printed without arguments)")
    parser.add_argument("--out", type=Path, default=Path("."), help="folder to copy into (default: current folder)")
    parser.add_argument("--force", action="store_true", help="overwrite an existing file")
    args = parser.parse_args(argv)
    if args.name is None:
        print(listing())
        return 0
    try:
        target, scale = copy_out(args.name, args.out, args.force)
    except (KeyError, FileExistsError) as e:
        print(f"yolo-revcol cfg: {e.args[0]}", file=sys.stderr)
        return 1
    picks = f" (a copy of {model_names()[target.name][0].name}; the name picks scale {scale})" if scale else ""
    print(f"yolo-revcol cfg: wrote {target}{picks}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
