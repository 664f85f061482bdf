"""Section 1a: the bytes autograd saves for backward, per block family, mode and column count, and the targets."""

from __future__ import annotations

from collections.abc import Iterable

import torch

from ..report import fmt, markdown_table
from .common import MIB, MODES, BenchConfig, Section, build_model, make_input

TARGET_REV_GROWTH = 1.25  # saved bytes: reversible(8 or 16 columns) / reversible(2 columns) must not exceed this
TARGET_REV_VS_PLAIN = 0.10  # saved bytes: reversible(4 columns) / plain(4 columns) must not exceed this
# (name, numerator, denominator, limit); "reversible" is the default checkpoint_every, as a YAML without it gets.
TARGETS = (
    ("saved bytes reversible(8) / reversible(2)", ("reversible", 8), ("reversible", 2), TARGET_REV_GROWTH),
    ("saved bytes reversible(16) / reversible(2)", ("reversible", 16), ("reversible", 2), TARGET_REV_GROWTH),
    ("saved bytes reversible(4) / plain(4)", ("reversible", 4), ("plain", 4), TARGET_REV_VS_PLAIN),
)


class SavedTensorCounter:
    """Context manager that records what autograd saves for backward, counting each storage once.

    Every tensor packed by ``torch.autograd.graph.saved_tensors_hooks`` inside the context is keyed by its
    untyped storage's ``data_ptr`` and charged that storage's full ``nbytes``. Storage keying is chosen over
    ``(tensor.data_ptr(), tensor.nbytes)`` because it measures the memory a saved tensor actually keeps alive:
    a saved view pins its whole storage, and several views or re-saves of one buffer (an op's input that is
    also another op's output, ``x.float()`` returning ``x`` itself, an expanded parameter) would otherwise be
    counted several times or only in part. Storages of the excluded tensors (the model's parameters and
    buffers, resident anyway) are tallied separately. Saved tensors are referenced until ``__exit__`` so no
    address can be freed and reused by another storage while counting.

    Only tensors that pass through the hooks are seen: with non-reentrant checkpointing that is each checkpointed
    call's inputs (its inner saves go to checkpoint's own, innermost hooks and are dropped).

    Args:
        exclude (Iterable[torch.Tensor]): Tensors whose storages are reported as ``excluded_bytes`` instead.

    Attributes:
        storages (dict[int, tuple[int, tuple, torch.dtype]]): data_ptr -> (nbytes, first saved shape, dtype).
        excluded (dict[int, int]): data_ptr -> nbytes of excluded storages that were saved.
        packs (int): Number of pack calls (saved tensors, duplicates included).
    """

    def __init__(self, exclude: Iterable[torch.Tensor] = ()):
        """Remember the storages to exclude."""
        self._exclude = {t.untyped_storage().data_ptr() for t in exclude}
        self.storages: dict[int, tuple[int, tuple, torch.dtype]] = {}
        self.excluded: dict[int, int] = {}
        self.packs = 0
        self._refs: list[torch.Tensor] = []
        self._hooks = None

    def _pack(self, t: torch.Tensor) -> torch.Tensor:
        """Record ``t``'s storage and return ``t`` unchanged."""
        self.packs += 1
        storage = t.untyped_storage()
        ptr = storage.data_ptr()
        if ptr in self._exclude:
            self.excluded[ptr] = storage.nbytes()
        elif ptr not in self.storages:
            self.storages[ptr] = (storage.nbytes(), tuple(t.shape), t.dtype)
        self._refs.append(t)
        return t

    def __enter__(self) -> SavedTensorCounter:
        """Install the hooks."""
        self._hooks = torch.autograd.graph.saved_tensors_hooks(self._pack, lambda t: t)
        self._hooks.__enter__()
        return self

    def __exit__(self, *exc) -> None:
        """Remove the hooks and drop the references."""
        self._hooks.__exit__(*exc)
        self._refs.clear()

    @property
    def nbytes(self) -> int:
        """Distinct bytes saved, excluded storages not included."""
        return sum(n for n, _, _ in self.storages.values())

    @property
    def excluded_bytes(self) -> int:
        """Distinct bytes of excluded storages (parameters) that were saved."""
        return sum(self.excluded.values())

    def breakdown(self) -> list[tuple[str, str, int, float]]:
        """Return (shape, dtype, count, MiB) rows grouping the counted storages by shape and dtype, largest first."""
        groups: dict[tuple[tuple, torch.dtype], list[int]] = {}
        for n, shape, dtype in self.storages.values():
            groups.setdefault((shape, dtype), []).append(n)
        rows = [(str(list(s)), str(d).replace("torch.", ""), len(v), sum(v) / MIB) for (s, d), v in groups.items()]
        return sorted(rows, key=lambda r: -r[3])


def measure_saved(
    cfg: BenchConfig, block: str, columns: int, mode: str, every: int | str = "auto"
) -> SavedTensorCounter:
    """Count what one training-mode forward of the whole model saves for backward.

    Args:
        cfg (BenchConfig): Sizes.
        block (str): Block family.
        columns (int): Number of columns.
        mode (str): One of ``MODES``.
        every (int | str): ``checkpoint_every`` (reversible mode only; the class default "auto" unless given).

    Returns:
        (SavedTensorCounter): The filled counter (its references already dropped).
    """
    model, x = build_model(cfg, block, columns, mode, every=every), make_input(cfg)
    with SavedTensorCounter(exclude=[*model.parameters(), *model.buffers()]) as counter:
        out = model(x)
    del out  # the graph (and the saved tensors) lived through the count
    return counter


def saved_section(cfg: BenchConfig) -> Section:
    """Bytes saved for backward per block, mode and column count, the memory targets and what reversible keeps.

    Returns:
        (Section): ``data``: ``saved`` ((block, mode, columns) -> counter; ``reversible`` at the default
            ``checkpoint_every``, ``reversible-K<k>`` at the explicit values), ``targets`` ((block, ratio name) ->
            (value or None, limit)).
    """
    saved: dict[tuple[str, str, int], SavedTensorCounter] = {}
    records = []
    for block in cfg.blocks:
        for c in cfg.mem_columns:
            for mode, every in [*((m, "auto") for m in MODES), *((f"reversible-K{e}", e) for e in cfg.mem_every)]:
                saved[(block, mode, c)] = s = measure_saved(cfg, block, c, mode.split("-")[0], every)
                counts = (("saved_bytes", s.nbytes), ("saved_param_bytes", s.excluded_bytes), ("packs", s.packs))
                for metric, v in counts:
                    records.append(dict(section="saved", block=block, mode=mode, columns=c, checkpoint_every=every,
                                        metric=metric, value=v))  # fmt: skip
                print(f"saved  {block:8s} {mode:13s} {c:2d} cols: {s.nbytes / MIB:8.2f} MiB", flush=True)
    rows = []
    for block in cfg.blocks:
        for c in cfg.mem_columns:
            r, p, k = (saved[(block, m, c)].nbytes for m in MODES)
            extra = [f"{saved[(block, f'reversible-K{e}', c)].nbytes / MIB:.2f}" for e in cfg.mem_every]
            rows.append([block, c, f"{r / MIB:.2f}", *extra, f"{p / MIB:.2f}", f"{k / MIB:.2f}", f"{r / p:.3f}"])
            rows[-1].append(f"{k / p:.3f}")

    def ratio(block: str, num: tuple[str, int], den: tuple[str, int]) -> float | None:
        a, b = saved.get((block, *num)), saved.get((block, *den))
        return a.nbytes / b.nbytes if a and b else None

    targets, target_rows = {}, []
    for block in cfg.blocks:
        for name, num, den, limit in TARGETS:
            targets[(block, name)] = value, limit = ratio(block, num, den), limit
            verdict = "n/a" if value is None else ("PASS" if value <= limit else "FAIL")
            target_rows.append([block, name, fmt(value), f"<= {limit}", verdict])
            records.append(dict(section="target", block=block, metric=name, value=value))
            print(f"{verdict}: {block} {name} = {fmt(value)} (target <= {limit})")
    big = max(cfg.mem_columns)
    breakdown = [
        [block, s, d, n, f"{v:.3f}"]
        for block in cfg.blocks
        for s, d, n, v in saved[(block, "reversible", big)].breakdown()
    ]
    ks = [f"reversible, checkpoint_every={e} (MiB)" for e in cfg.mem_every]
    header = ["block", "columns", "reversible, default (MiB)", *ks, "plain (MiB)", "checkpoint (MiB)"]
    header.append("reversible / plain")
    md = [
        "## 1. Memory",
        "",
        "### Bytes saved for backward",
        "",
        "Distinct storages packed by `torch.autograd.graph.saved_tensors_hooks` during one training-mode forward of "
        "the whole model (stem included), keyed by untyped-storage `data_ptr` and charged the storage's `nbytes`; "
        "parameter storages (which convs and scales also save) are excluded here and listed in the CSV as "
        "`saved_param_bytes`. For `checkpoint` the hooks only see what each `checkpoint(column, ...)` call saves "
        "itself, i.e. its inputs (stem output, previous column's states); the activations recomputed in backward "
        "are not saved. `reversible, default`: the class default `checkpoint_every: auto`, as a YAML without the "
        "option gets it (it keeps no column's states; what it saves instead, the lost-bit stacks of the exact "
        "reverse pass, is counted here: they go through `save_for_backward`); `checkpoint_every=K` columns: the "
        "reversible mode set to also keep every K-th column's states.",
        "",
        markdown_table([*header, "checkpoint / plain"], rows),
        "### Targets",
        "",
        markdown_table(["block", "ratio", "value", "target", "result"], target_rows),
        f"### What the reversible path saves ({big} columns)",
        "",
        "Distinct saved storages grouped by shape (shape of the first tensor saved from each storage).",
        "",
        markdown_table(["block", "shape", "dtype", "storages", "MiB"], breakdown),
    ]
    return Section("\n".join(md), records, dict(saved=saved, targets=targets))
