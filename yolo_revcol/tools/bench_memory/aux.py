"""Section ``aux`` (opt-in): what intermediate supervision (the RevCol ``aux`` option) adds to a training step.

Builds yolov8<scale>-revcol (8 classes) with and without ``aux``, reversible and plain, and measures one training
step (Ultralytics' loss on a batch of random images with a few boxes, then backward): the bytes autograd saves for
backward (each storage counted once, parameters excluded) and the step time (median of ``reps``, the variants
interleaved so that machine noise hits them alike). Writes ``aux_memory.md`` and ``.csv`` and prints the table.
Run it with ``yolo-revcol memory --sections aux`` (options ``--aux-scale``, ``--aux-imgsz``, ``--aux-batch``,
``--aux``, ``--aux-reps``).
"""

from __future__ import annotations

import statistics
import time
from pathlib import Path

import torch
import yaml

from ...paths import cfg_dir
from ..bench_speed import interleave
from ..report import command_line, machine, markdown_table, write_result
from .common import MIB

AUX_HEADER = ("training path", "aux", "saved for backward (MiB)", "ratio", "step (ms)", "step ratio", "aux head params")
AUX_CSV_KEYS = ("path", "aux", "saved_mib", "saved_ratio", "step_ms", "step_ratio", "aux_head_params")


def build(scale: str, aux: float, reversible: bool):
    """Build yolov8<scale>-revcol with 8 classes, the given ``aux`` and training path, with Ultralytics' default loss.

    Args:
        scale (str): Model scale letter (n, s, m, l, x).
        aux (float): The RevCol row's ``aux`` option (0: no intermediate supervision).
        reversible (bool): The RevCol row's ``reversible`` option.

    Returns:
        (DetectionModel): The model in training mode, Ultralytics' default hyperparameters as ``model.args``.
    """
    from ultralytics.cfg import get_cfg
    from ultralytics.nn.tasks import DetectionModel

    from ...integration.register import register

    register()
    d = yaml.safe_load((cfg_dir() / "yolov8-revcol.yaml").read_text())
    d["backbone"][0][3][3].update(aux=aux, reversible=reversible)
    torch.manual_seed(0)
    model = DetectionModel(dict(d, scale=scale), nc=8, verbose=False).train()
    model.args = get_cfg()
    return model


def batch_of(n: int, imgsz: int) -> dict:
    """Random images with three boxes each, in Ultralytics' batch layout.

    Args:
        n (int): Batch size.
        imgsz (int): Square image side.

    Returns:
        (dict): ``img``, ``batch_idx``, ``cls`` and ``bboxes`` (normalised xywh), reproducible (seed 0).
    """
    g = torch.Generator().manual_seed(0)
    boxes = torch.tensor([[0.3, 0.3, 0.2, 0.3], [0.7, 0.6, 0.3, 0.2], [0.5, 0.5, 0.6, 0.5]])
    return {
        "img": torch.rand(n, 3, imgsz, imgsz, generator=g),
        "batch_idx": torch.arange(n).repeat_interleave(3).float(),
        "cls": torch.tensor([[1.0], [3.0], [5.0]]).repeat(n, 1),
        "bboxes": boxes.repeat(n, 1),
    }


def saved_mib(model, batch: dict) -> float:
    """MiB that one training forward and loss save for backward (distinct storages, parameters excluded).

    Unlike ``SavedTensorCounter`` this keeps no reference to the saved tensors, so a storage freed during the
    forward (a discarded branch) and its address reused is counted once: what is still held when the loss is there.

    Args:
        model (DetectionModel): A model from ``build``.
        batch (dict): A batch from ``batch_of``.

    Returns:
        (float): The saved MiB.
    """
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
    """Seconds of one forward, loss and backward (gradients reset first, outside the timing)."""
    model.zero_grad(set_to_none=True)
    start = time.perf_counter()
    model.loss(batch)[0].sum().backward()
    return time.perf_counter() - start


def measure_aux(scale: str = "n", imgsz: int = 320, batch: int = 8, aux: float = 0.5, reps: int = 5) -> list[list]:
    """Measure every variant (reversible and plain, each without and with ``aux``).

    Args:
        scale (str): Model scale letter.
        imgsz (int): Image side.
        batch (int): Batch size.
        aux (float): The ``aux`` value of the supervised variants.
        reps (int): Timed steps per variant, after one untimed step each, interleaved (``bench_speed.interleave``).

    Returns:
        (list[list]): One row per variant, unrounded, in ``AUX_CSV_KEYS`` order: path, aux, saved MiB, ratio to the
            same path without aux, median step in ms, its ratio, parameters of the auxiliary heads.
    """
    data = batch_of(batch, imgsz)
    variants = {
        (path, a): build(scale, a, path == "reversible") for path in ("reversible", "plain") for a in (0.0, aux)
    }
    saved = {k: saved_mib(m, data) for k, m in variants.items()}
    steps = {k: (lambda m=m: step_s(m, data)) for k, m in variants.items()}
    ms = interleave(steps, reps, 1, 1, torch.get_num_threads())
    values = []
    for path in ("reversible", "plain"):
        base, with_aux = (path, 0.0), (path, aux)
        heads = sum(q.numel() for q in variants[with_aux].model[0].aux_heads.parameters())
        for k in (base, with_aux):
            t = statistics.median(ms[k])
            values.append([path, k[1], saved[k], saved[k] / saved[base], t, t / statistics.median(ms[base])])
            values[-1].append(heads if k[1] else 0)
    return values


def aux_table(values: list[list]) -> str:
    """The Markdown table of ``measure_aux``'s rows (MiB to 0.1, ratios to 0.001, milliseconds whole)."""
    rows = [
        [path, f"{aux:g}", f"{mib:.1f}", f"{ratio:.3f}", f"{ms:.0f}", f"{step:.3f}", f"{heads:,}"]
        for path, aux, mib, ratio, ms, step, heads in values
    ]
    return markdown_table(AUX_HEADER, rows)


def aux_section(
    out: Path,
    scale: str = "n",
    imgsz: int = 320,
    batch: int = 8,
    aux: float = 0.5,
    reps: int = 5,
    readme: Path | None = None,
) -> list[list]:
    """Measure, then write ``<out>/aux_memory.md`` and ``.csv`` and refresh the README's ``aux-memory`` block.

    Args:
        out (Path): Output folder.
        scale (str): Model scale letter.
        imgsz (int): Image side.
        batch (int): Batch size.
        aux (float): The ``aux`` value of the supervised variants.
        reps (int): Timed steps per variant.
        readme (Path | None): README whose ``<!-- aux-memory:start/end -->`` block is replaced.

    Returns:
        (list[list]): ``measure_aux``'s rows.
    """
    values = measure_aux(scale, imgsz, batch, aux, reps)
    note = (
        f"Measured by `{command_line()}` on {machine()}.\n"
        f"yolov8{scale}-revcol, 8 classes, batch {batch} at {imgsz} px, one training step (Ultralytics' "
        f"loss, then backward); median of {reps} interleaved steps.\n"
    )
    text = note + "\n" + aux_table(values)
    write_result(out / "aux_memory", text, AUX_CSV_KEYS, values, readme=readme, block="aux-memory")
    return values
