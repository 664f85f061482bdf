"""What intermediate supervision (the RevCol ``aux`` option) adds to a training step: saved activations and time.

Builds yolov8<scale>-revcol (8 classes) with and without ``aux``, reversible and plain, and measures one training
step (Ultralytics' loss on a batch of random images with a few boxes, then backward): the bytes autograd saves for
backward (each storage counted once, parameters excluded) and the step time (median of ``--reps``, the variants
interleaved so that machine noise hits them alike). Writes ``results/aux_memory.md`` and ``.csv`` and prints the table.

Usage: python runs_scripts/aux_memory.py [--scale n] [--imgsz 320] [--batch 8] [--aux 0.5] [--reps 5] [--out results]
       [--readme README.md]   (also replaces the <!-- aux-memory:start/end --> block)
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path

import torch
import yaml

from yolo_revcol.integration.register import register
from yolo_revcol.paths import cfg_dir
from yolo_revcol.tools.report import command_line, machine, markdown_table, write_result

MIB = 2**20


def build(scale: str, aux: float, reversible: bool):
    """yolov8<scale>-revcol with 8 classes, the given ``aux`` and training path, with Ultralytics' default loss."""
    from ultralytics.cfg import get_cfg
    from ultralytics.nn.tasks import DetectionModel

    register()
    d = yaml.safe_load((cfg_dir() / "yolov8-revcol.yaml").read_text())
    d["backbone"][0][3][3].update(aux=aux, reversible=reversible)
    torch.manual_seed(0)
    model = DetectionModel(dict(d, scale=scale), nc=8, verbose=False).train()
    model.args = get_cfg()
    return model


def batch_of(n: int, imgsz: int) -> dict:
    """Random images with three boxes each, in Ultralytics' batch layout."""
    g = torch.Generator().manual_seed(0)
    boxes = torch.tensor([[0.3, 0.3, 0.2, 0.3], [0.7, 0.6, 0.3, 0.2], [0.5, 0.5, 0.6, 0.5]])
    return {
        "img": torch.rand(n, 3, imgsz, imgsz, generator=g),
        "batch_idx": torch.arange(n).repeat_interleave(3).float(),
        "cls": torch.tensor([[1.0], [3.0], [5.0]]).repeat(n, 1),
        "bboxes": boxes.repeat(n, 1),
    }


def saved_mib(model, batch: dict) -> float:
    """MiB that one training forward and loss save for backward (distinct storages, parameters excluded)."""
    exclude = {p.untyped_storage().data_ptr() for p in [*model.parameters(), *model.buffers()]}
    seen: dict[int, int] = {}

    def pack(t: torch.Tensor):
        storage = t.untyped_storage()
        if storage.data_ptr() not in exclude:
            seen[storage.data_ptr()] = storage.nbytes()
        return t

    with torch.autograd.graph.saved_tensors_hooks(pack, lambda t: t):
        loss = model.loss(batch)[0]
    del loss
    return sum(seen.values()) / MIB


def step_s(model, batch: dict) -> float:
    """Seconds of one forward, loss and backward."""
    model.zero_grad(set_to_none=True)
    start = time.perf_counter()
    model.loss(batch)[0].sum().backward()
    return time.perf_counter() - start


def main(argv: list[str] | None = None) -> int:
    """Measure every variant and write the table."""
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--scale", default="n")
    p.add_argument("--imgsz", type=int, default=320)
    p.add_argument("--batch", type=int, default=8)
    p.add_argument("--aux", type=float, default=0.5)
    p.add_argument("--reps", type=int, default=5)
    p.add_argument("--out", type=Path, default=Path("results"))
    p.add_argument("--readme", type=Path, help="also replace the <!-- aux-memory:start/end --> block of this file")
    args = p.parse_args(argv)
    batch = batch_of(args.batch, args.imgsz)
    variants = {
        (path, aux): build(args.scale, aux, path == "reversible")
        for path in ("reversible", "plain")
        for aux in (0.0, args.aux)
    }
    saved = {k: saved_mib(m, batch) for k, m in variants.items()}
    times: dict = {k: [] for k in variants}
    for m in variants.values():
        step_s(m, batch)  # warm-up
    for _ in range(args.reps):
        for k, m in variants.items():
            times[k].append(step_s(m, batch))
    values = []  # unrounded: path, aux, saved MiB, ratio, step ms, step ratio, aux head params
    for path in ("reversible", "plain"):
        base, with_aux = (path, 0.0), (path, args.aux)
        heads = sum(q.numel() for q in variants[with_aux].model[0].aux_heads.parameters())
        for k in (base, with_aux):
            t = statistics.median(times[k])
            values.append([path, k[1], saved[k], saved[k] / saved[base], t * 1e3, t / statistics.median(times[base])])
            values[-1].append(heads if k[1] else 0)
    rows = [
        [path, f"{aux:g}", f"{mib:.1f}", f"{ratio:.3f}", f"{ms:.0f}", f"{step:.3f}", f"{heads:,}"]
        for path, aux, mib, ratio, ms, step, heads in values
    ]
    header = ("training path", "aux", "saved for backward (MiB)", "ratio", "step (ms)", "step ratio", "aux head params")
    table = markdown_table(header, rows)
    note = (
        f"Measured by `{command_line()}` on {machine()}.\n"
        f"yolov8{args.scale}-revcol, 8 classes, batch {args.batch} at {args.imgsz} px, one training step (Ultralytics' "
        f"loss, then backward); median of {args.reps} interleaved steps.\n"
    )
    csv_header = ("path", "aux", "saved_mib", "saved_ratio", "step_ms", "step_ratio", "aux_head_params")
    stem = args.out / "aux_memory"
    write_result(stem, note + "\n" + table, csv_header, values, readme=args.readme, block="aux-memory")
    return 0


if __name__ == "__main__":
    sys.exit(main())
