"""Memory, reconstruction-error and step-time benchmark of RevCol's reversible path (CPU).

Compares three ways of training the same RevCol backbone, for each block family (``--blocks``; by default ``c2f``,
the block the shipped YAMLs use, and ``convnext``, the paper's block and ``RevCol``'s class default):

* ``reversible``: ``RevCol(reversible=True)``, the custom autograd function that keeps only the stem output and the
  last column's states and reconstructs the rest during backward;
* ``plain``: ``RevCol(reversible=False)``, ordinary autograd keeping every activation;
* ``checkpoint``: the stem, then every column under ``torch.utils.checkpoint.checkpoint(use_reentrant=False)``.

Sections: (1) bytes saved for backward (``saved_tensors_hooks``) and peak RSS (one fresh subprocess per
configuration), (2) the reverse pass's reconstruction error against the true forward activations, in float32 and
under CPU bfloat16 autocast, with default and trained-looking weights, and what it does to the parameter gradients
(reversible vs plain), (3) the training-step time of each mode relative to ``plain``. Reversible models run at the
class default ``checkpoint_every: auto`` beside explicit values (K) where a table names them; the reconstruction
error is shown both for division-only arithmetic and for the reverse pass itself (exact by default). Writes
``memory.md``, ``memory.csv`` (one measurement per row) and ``memory.png`` into ``--out`` and prints the tables.

Opt-in (``--sections aux``): what intermediate supervision (the RevCol ``aux`` option) adds to a training step of
yolov8<scale>-revcol, saved bytes and step time with and without it (``aux_memory.md`` and ``.csv``).
Opt-in (``--sections paper``): the paper's RevCol-T/S/B YAMLs, their reverse pass at 4/8/16 columns (division only
against the shipped pass, default and explicit ``checkpoint_every``) and a YOLO training step against the stock
YOLOv8 of the same neck (``paper_memory.md`` and ``.csv``, ``paper_memory_step.csv``).

Modules: ``common`` (config, models, inputs), one per section (``saved``, ``rss``, ``reconstruction``, ``timing``,
``aux``, ``paper``), ``summary`` (README block and figure) and ``command`` (``parse_args``, ``main``).

Examples:
    yolo-revcol memory                      # full run, several minutes on 2 cores
    yolo-revcol memory --quick              # tiny sizes, smoke test, temporary output folder
    yolo-revcol memory --readme README.md   # also replace the <!-- memory:start/end --> block
    yolo-revcol memory --sections aux --readme README.md   # only the aux section, its <!-- aux-memory --> block
    yolo-revcol memory --sections paper --readme README.md   # RevCol-T/S/B, the <!-- paper-memory --> block
"""

from __future__ import annotations

from .aux import AUX_CSV_KEYS, AUX_HEADER, aux_section, aux_table, batch_of, build, measure_aux, saved_mib, step_s
from .command import REPORTS, SECTIONS, main, memory_report, parse_args
from .common import (
    CSV_KEYS,
    MIB,
    MODES,
    QUICK,
    BenchConfig,
    CheckpointedRevCol,
    Section,
    block_label,
    build_model,
    loss_of,
    make_input,
    set_trained_like,
    shipped_block,
)
from .paper import PAPER_MODELS, measure_paper_reconstruction, measure_paper_step, paper_section
from .reconstruction import (
    GradientCheck,
    column_errors,
    division_errors,
    gradient_check,
    gradient_section,
    growth_per_column,
    measure_gradient_error,
    measure_reconstruction,
    reconstruct_with_checkpoints,
    reconstruction_section,
    relative_error,
    true_states,
)
from .rss import MALLOC_ENV, RSS_CHILD, measure_rss, rss_child_main, rss_section, rss_worker
from .saved import TARGET_REV_GROWTH, TARGET_REV_VS_PLAIN, TARGETS, SavedTensorCounter, measure_saved, saved_section
from .summary import auto_sentence, describe, plot, plot_errors, readme_block
from .timing import measure_step_times, time_section, train_step

__all__ = [
    "AUX_CSV_KEYS",
    "AUX_HEADER",
    "CSV_KEYS",
    "MALLOC_ENV",
    "MIB",
    "MODES",
    "PAPER_MODELS",
    "QUICK",
    "REPORTS",
    "RSS_CHILD",
    "SECTIONS",
    "TARGET_REV_GROWTH",
    "TARGET_REV_VS_PLAIN",
    "TARGETS",
    "BenchConfig",
    "CheckpointedRevCol",
    "GradientCheck",
    "SavedTensorCounter",
    "Section",
    "auto_sentence",
    "aux_section",
    "aux_table",
    "batch_of",
    "block_label",
    "build",
    "build_model",
    "column_errors",
    "division_errors",
    "describe",
    "gradient_check",
    "gradient_section",
    "growth_per_column",
    "loss_of",
    "main",
    "make_input",
    "measure_aux",
    "measure_gradient_error",
    "measure_paper_reconstruction",
    "measure_paper_step",
    "measure_reconstruction",
    "measure_rss",
    "measure_saved",
    "measure_step_times",
    "memory_report",
    "paper_section",
    "parse_args",
    "plot",
    "plot_errors",
    "readme_block",
    "reconstruct_with_checkpoints",
    "reconstruction_section",
    "relative_error",
    "rss_child_main",
    "rss_section",
    "rss_worker",
    "saved_mib",
    "saved_section",
    "set_trained_like",
    "shipped_block",
    "step_s",
    "time_section",
    "train_step",
    "true_states",
]
