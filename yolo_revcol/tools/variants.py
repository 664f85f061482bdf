"""The RevCol variants the ablations and the accuracy benchmark train: the shipped row with its RevCol row changed.

Each ``Variant`` names the arguments it replaces in ``cfg/yolov8-revcol.yaml``'s RevCol row (options merged over the
shipped ones; same neck and head); ``STUDIES`` groups them as ``yolo-revcol ablation --study`` runs them, and
``variant_path`` writes one as ``yolov8<scale>-revcol-<variant>.yaml`` so that ``yolo-revcol accuracy`` can train
it by that name too.
"""

from __future__ import annotations

import copy
from dataclasses import dataclass, field
from pathlib import Path

import yaml

from ..paths import cfg_dir

BASE_YAML = "yolov8-revcol.yaml"


@dataclass
class Variant:
    """One RevCol configuration: the shipped row with some arguments replaced.

    Attributes:
        name (str): Short name, used in file names.
        what (str): What it changes, for the table.
        options (dict): RevCol options by name (block, stem, drop_path, reversible, layer_scale...).
        columns (int | None): Column count for every scale (None: the YAML's).
        channels (list[int] | None): Channels per level before width scaling (None: the YAML's).
        layers (list[int] | None): Blocks per level before depth scaling (None: the YAML's).
    """

    name: str
    what: str
    options: dict = field(default_factory=dict)
    columns: int | None = None
    channels: list[int] | None = None
    layers: list[int] | None = None


SHIPPED = Variant("shipped", "cfg/yolov8-revcol.yaml as shipped (reference of the verdicts)")
STUDIES = {
    "design": [
        Variant("convnext-patchify", "paper: ConvNeXt block, LayerNorm, 4x4 patchify stem", {"block": "convnext"}),
        Variant("c2f-yolo", "3x3 s2 conv stem", {"stem": "yolo"}),
        Variant("c2f-dp0.1", "drop path 0.1", {"drop_path": 0.1}),
        Variant("c2f-plain", "plain backprop (reversible off)", {"reversible": False}),
    ],
    "columns": [Variant(f"c2f-{n}col", f"{n} column{'s' if n > 1 else ''}", columns=n) for n in (1, 3, 4)],
    # At scale n the depth multiple 0.33 turns blocks 1/1/3/1 into one block per level, so more depth needs larger
    # block counts in the row.
    "budget": [
        Variant("c2f-deeper", "blocks 2/2/6/2 (n: 1/1/2/1)", layers=[2, 2, 6, 2]),
        Variant(
            "c2f-narrow-p2-deeper",
            "stride-4 level 32 (n: 8) channels, blocks 1/3/6/3 (n: 1/1/2/1)",
            channels=[32, 128, 256, 512],
            layers=[1, 3, 6, 3],
        ),
    ],
    # The neck reads P3-P5 of the last column; at n the shipped row hands it half of stock's widths (32/64/128).
    "width": [
        Variant("c2f-w1.25", "channels x1.25: 80/160/320/640 (n: 24/40/80/160)", channels=[80, 160, 320, 640]),
        Variant("c2f-w1.5", "channels x1.5: 96/192/384/768 (n: 24/48/96/192)", channels=[96, 192, 384, 768]),
    ],
    # RevCol modules laid out as the stock backbone (widths, blocks per level, 3x3 stem): separates what the layout
    # costs from what the columns add.
    "stocklike": [
        Variant(
            f"c2f-stocklike-{n}col",
            f"{n} column{'s' if n > 1 else ''}, 3x3 s2 stem, stock widths and blocks "
            "128/256/512/1024, 3/6/6/3 (n: 32/64/128/256, 1/2/2/1)",
            {"stem": "yolo"},
            columns=n,
            channels=[128, 256, 512, 1024],
            layers=[3, 6, 6, 3],
        )
        for n in (1, 2)
    ],
    # Two columns at the shipped cost with the neck's inputs widened: the stride-4 level and P5 narrow (the cheapest
    # places to save FLOPs and parameters), P3/P4 at x1.25, 3x3 stem.
    "equalcost": [
        Variant(
            "c2f-p3p4wide",
            "2 columns, 3x3 s2 stem, channels 32/160/320/512 (n: 8/40/80/128)",
            {"stem": "yolo"},
            channels=[32, 160, 320, 512],
        ),
    ],
    # Columns cheap enough per channel to keep the neck's inputs at (or near) stock's widths within 0.8x of stock's
    # cost: depthwise-separable down fusions, inverted residuals (BN/SiLU) or C2f, 3x3 stem.
    "cheap": [
        Variant(
            "inverted-e1-dw",
            "inverted residuals (expansion 1), depthwise-separable downs, channels 64/256/512/1024 (n: 16/64/128/256)",
            {"stem": "yolo", "block": "inverted", "mlp_ratio": 1.0, "down": "dw"},
            channels=[64, 256, 512, 1024],
        ),
        Variant(
            "inverted-e2-dw-w0.75",
            "inverted residuals (expansion 2), depthwise-separable downs, channels 64/192/384/768 (n: 16/48/96/192)",
            {"stem": "yolo", "block": "inverted", "mlp_ratio": 2.0, "down": "dw"},
            channels=[64, 192, 384, 768],
        ),
        Variant(
            "inverted-e1-dw-3col",
            "3 columns of inverted residuals (expansion 1), depthwise-separable downs, channels 64/256/512/768 "
            "(n: 16/64/128/192)",
            {"stem": "yolo", "block": "inverted", "mlp_ratio": 1.0, "down": "dw"},
            columns=3,
            channels=[64, 256, 512, 768],
        ),
        Variant(
            "c2f-dw-w0.625",
            "C2f, depthwise-separable downs, channels 64/160/320/640 (n: 16/40/80/160)",
            {"stem": "yolo", "down": "dw"},
            channels=[64, 160, 320, 640],
        ),
    ],
    "supervision": [Variant(f"c2f-aux{w:g}", f"aux {w:g}: Detect head on column 1", {"aux": w}) for w in (0.5, 1.0)],
    # The paper's other half: column 1 rebuilds a stride-4 copy of the image (weight 5: the term is then about a
    # tenth of the detection loss at the start of training), alone and beside the aux head.
    "reconstruction": [
        Variant("c2f-recon5", "recon 5: image decoder on column 1", {"recon": 5.0}),
        Variant("c2f-aux1-recon5", "aux 1 and recon 5 on column 1", {"aux": 1.0, "recon": 5.0}),
    ],
}


def variant_yaml(base: dict, variant: Variant) -> dict:
    """The model dictionary of ``variant``: ``base`` with its RevCol row's arguments replaced (options merged)."""
    d = copy.deepcopy(base)
    row = d["backbone"][0]
    if row[2] != "RevCol":
        raise ValueError(f"{BASE_YAML}: layer 0 must be RevCol to run ablations, got {row[2]}")
    channels, layers, columns = row[3][:3]
    if variant.columns is not None:  # same count at every scale, written the way the YAML writes columns
        columns = {s: variant.columns for s in columns} if isinstance(columns, dict) else variant.columns
    channels = variant.channels or channels
    layers = variant.layers or layers
    options = row[3][3] if len(row[3]) > 3 and isinstance(row[3][3], dict) else {}
    row[3] = [channels, layers, columns, {**options, **variant.options}]
    for r in d["backbone"][1:]:  # the Index rows that pick levels must name the variant's channels
        if r[2] == "Index" and r[0] == 0:
            r[3][0] = channels[r[3][1]]
    d.pop("scale", None)
    return d


def find_variant(name: str) -> Variant | None:
    """The variant named ``name`` in any study (``shipped`` included), or None."""
    return next((v for v in [SHIPPED, *(v for vs in STUDIES.values() for v in vs)] if v.name == name), None)


def variant_path(variant: Variant, folder: Path, scale: str = "n") -> Path:
    """Write ``variant`` as ``<folder>/yolov8<scale>-revcol-<name>.yaml`` (the scale letter where Ultralytics reads it,
    the variant's description as a comment) and return the path."""
    base = yaml.safe_load((cfg_dir() / BASE_YAML).read_text())
    path = Path(folder) / f"yolov8{scale}-revcol-{variant.name}.yaml"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(f"# {variant.what}\n" + yaml.safe_dump(variant_yaml(base, variant), sort_keys=False))
    return path
