"""Keep the RevCol model YAMLs in step (a maintainer's script, not shipped): one RevCol backbone row everywhere, and
summary comments that match the models.

Every YOLOv8 task YAML (``-seg``, ``-pose``, ``-obb``, ``-cls``) uses the RevCol row of ``cfg/yolov8-revcol.yaml``
verbatim. After that row changes, ``--sync`` copies it (and the Index rows' arguments) into them, and the scale
lines' summary comments are rewritten from the built models, as Ultralytics writes them in its own YAMLs
(``model.info()``'s figures; classification GFLOPs at 224, detection-like at 640).

Examples:
    python tests/model_yamls.py --sync          # sync rows, rewrite summaries of the derived YAMLs
    python tests/model_yamls.py --check         # exit 1 if any derived YAML is out of step
    python tests/model_yamls.py cfg/yolov8-revcol.yaml   # rewrite that YAML's summaries only
"""

from __future__ import annotations

import argparse
import re
import sys
from pathlib import Path

from yolo_revcol.paths import cfg_dir, scaled_name

REFERENCE = "yolov8-revcol.yaml"
DERIVED = (
    "yolov8-revcol-seg.yaml",
    "yolov8-revcol-pose.yaml",
    "yolov8-revcol-obb.yaml",
    "yolov8-revcol-cls.yaml",
)
# YAMLs with a RevCol row of their own (YOLO11's stock backbone is lighter than YOLOv8's, so its RevCol is narrower);
# only their summary comments are maintained here.
OWN_ROW = ("yolo11-revcol.yaml",)
_REVCOL_ROW = re.compile(r"^\s*- \[-1, 1, RevCol, .*$", re.M)
_INDEX_ROW = re.compile(r"^(\s*- )\[0, 1, Index, \[\d+, (\d+)\]\]", re.M)
# Options the derived task YAMLs do not take: ``aux`` adds detection heads, which their own losses cannot train.
_DETECT_ONLY_OPTION = re.compile(r",\s*aux:\s*[^,}\]]+")
_SCALE_LINE = re.compile(r"^(  ([nslmx]): \[[^\]\n]*\])( # [^\n]*)?$", re.M)


def scaled_path(path: Path, scale: str) -> Path:
    """``cfg/yolov8-revcol-seg.yaml`` -> ``cfg/yolov8n-revcol-seg.yaml``: the name Ultralytics reads a scale from."""
    return path.with_name(scaled_name(path.name, scale))


def summary(path: Path, scale: str) -> str:
    """Build one scale of a model YAML and return its summary as ``model.info()`` words it (without thousands commas).

    Args:
        path (Path): Unscaled model YAML, e.g. ``cfg/yolov8-revcol-seg.yaml``.
        scale (str): Scale letter.

    Returns:
        (str): E.g. ``YOLOv8n-revcol-seg summary: 196 layers, 2657744 parameters, 2657728 gradients, 10.0 GFLOPs``.
    """
    from .compare import summarize

    scaled = scaled_path(path, scale)
    s = summarize(scaled, scaled.stem.replace("yolo", "YOLO"), 640)  # classification: at 224, as Ultralytics reports
    return f"{s.name} summary: {s.layers} layers, {s.params} parameters, {s.gradients} gradients, {s.gflops:.1f} GFLOPs"


def with_summaries(text: str, path: Path) -> str:
    """Return a YAML's text with every scale line's comment replaced by that scale's summary."""
    return _SCALE_LINE.sub(lambda m: f"{m.group(1)} # {summary(path, m.group(2))}", text)


def with_reference_rows(text: str, reference: str) -> str:
    """Return a YAML's text with its RevCol row copied from ``reference`` and its Index rows' arguments from there.

    Detection-only options (``aux``) are left out of the copied row. Index rows keep their own trailing comments
    (layer numbers differ between YAMLs); each takes the channel argument of the reference's Index row that selects
    the same map.

    Raises:
        ValueError: If either text lacks a RevCol row, or the YAML picks a map the reference has no Index row for.
    """
    ref_row = _REVCOL_ROW.search(reference)
    if not ref_row or not _REVCOL_ROW.search(text):
        raise ValueError("both YAMLs need a '- [-1, 1, RevCol, ...]' backbone row")
    ref_index = {m.group(2): m.group(0)[len(m.group(1)) :] for m in _INDEX_ROW.finditer(reference)}

    def index_row(m: re.Match) -> str:
        if m.group(2) not in ref_index:
            raise ValueError(f"the reference has no Index row for map {m.group(2)}")
        return m.group(1) + ref_index[m.group(2)]

    row = _DETECT_ONLY_OPTION.sub("", ref_row.group(0))
    text = _REVCOL_ROW.sub(lambda _: row, text, count=1)
    return _INDEX_ROW.sub(index_row, text)


def out_of_step(path: Path, reference: Path) -> bool:
    """Whether a derived YAML's RevCol or Index rows differ from the reference's (text only; builds nothing)."""
    text = path.read_text()
    return with_reference_rows(text, reference.read_text()) != text


def main(argv: list[str] | None = None) -> int:
    """Sync rows and/or rewrite summary comments; with ``--check``, report what is out of step and exit 1."""
    parser = argparse.ArgumentParser(prog="python tests/model_yamls.py", description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "yamls", nargs="*", type=Path, help=f"model YAMLs (default: the derived ones in cfg/: {', '.join(DERIVED)})"
    )
    parser.add_argument(
        "--sync", action="store_true", help=f"copy the RevCol and Index rows from cfg/{REFERENCE} first"
    )
    parser.add_argument("--check", action="store_true", help="change nothing; exit 1 if a file would change")
    args = parser.parse_args(argv)
    paths = args.yamls or [cfg_dir() / name for name in DERIVED + OWN_ROW]
    reference = (cfg_dir() / REFERENCE).read_text()

    stale = []
    for path in paths:
        old = path.read_text()
        derived = path.name in DERIVED
        synced = with_reference_rows(old, reference) if derived and (args.sync or args.check) else old
        if args.check:  # summaries of the file as it is; rows compared as text
            changed = synced != old or with_summaries(old, path) != old
        else:
            if synced != old:
                path.write_text(synced)  # first: the summaries are measured on the models the file now describes
            new = with_summaries(synced, path)
            path.write_text(new)
            changed = new != old
        if changed:
            stale.append(path)
        print(f"{path}: {('out of step' if args.check else 'updated') if changed else 'up to date'}")
    return 1 if args.check and stale else 0


if __name__ == "__main__":
    sys.exit(main())
