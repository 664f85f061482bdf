"""Ablations of the RevCol backbone at one scale: which block, stem, columns, budget and supervision to ship.

Every variant is the shipped ``cfg/yolov8-revcol.yaml`` with only its RevCol row changed (options merged over the
shipped ones; same neck and head). Each variant's YAML is written next to its runs, its params and GFLOPs are measured
like ``yolo-revcol compare`` does (inference model), and it is trained from scratch with exactly the settings and
seeds of ``yolo-revcol accuracy``, next to stock YOLOv8 and the shipped row at the same scale. Studies:

* ``design``: block family (the paper's ConvNeXt block vs a YOLOv8-style C2f block with BatchNorm/SiLU) and stem
  (4x4 patchify vs two 3x3 stride-2 convs), drop path, plain backprop;
* ``columns``: the column count (1, 3, 4 next to the shipped 2);
* ``budget``: where the parameters go (blocks per level, the stride-4 level's width);
* ``width``: wider levels, so the neck reads wider maps;
* ``stocklike``: RevCol modules at the stock backbone's widths and depths (1 and 2 columns);
* ``supervision``: intermediate supervision (``aux``) of the first column with auxiliary Detect heads.

Decision rule (``bench_accuracy.decide``): a variant is better or worse than the shipped row only when the difference
of mean mAP50-95 over seeds exceeds two standard errors; otherwise the table says "no difference". Runs are shared
with ``yolo-revcol accuracy`` (same project folder): identical model, dataset and settings train once. Writes
``ablation_<study>.md``/``.csv``/``.png``, a mAP-vs-GFLOPs scatter of stock and every variant
(``ablation_scatter.png``), and prints the tables.

Examples:
    yolo-revcol ablation --jobs 2                     # every study at scale n, seeds 0 1 2 (CPU: many hours)
    yolo-revcol ablation --study supervision --seeds 0 1 2 --jobs 2
    yolo-revcol ablation --no-train                   # params/GFLOPs only, seconds
    yolo-revcol ablation --readme README.md           # also fill the <!-- ablation-<study>:start/end --> blocks
"""

from __future__ import annotations

import argparse
import math
import sys
from dataclasses import dataclass, field
from pathlib import Path

from .bench_accuracy import (
    DEFAULT_DATA,
    SIGNIFICANCE,
    Result,
    add_training_arguments,
    decide,
    diff_se,
    fill_training_defaults,
    mean_std,
    pm,
    resolve_data,
    settings_of,
    train_all,
)
from .report import command_line, figure, machine, markdown_table, offline, write_result
from .variants import BASE_YAML, SHIPPED, STUDIES, Variant, variant_path, variant_yaml

__all__ = ("SHIPPED", "STUDIES", "Variant", "variant_yaml", "main")  # the variants live in .variants


def size(model_yaml: str, imgsz: int = 640) -> tuple[int, float]:
    """Params and GFLOPs at ``imgsz`` of a detection model built from a YAML (no weights)."""
    from .compare import summarize

    s = summarize(model_yaml, Path(model_yaml).stem, imgsz)
    return s.params, s.gflops


HEADER = ("variant", "what changes", "params (M)", "GFLOPs @640", "params ratio", "GFLOPs ratio", "seeds")
HEADER += ("mAP50-95", "ratio to stock", "vs shipped", f"verdict ({SIGNIFICANCE:g} SE)", "train (s)")
CSV_HEADER = ("variant", "params", "gflops_640", "seeds", "map50_95_mean", "map50_95_std", "diff_vs_shipped")
CSV_HEADER += ("se_vs_shipped", "verdict", "train_s_mean")


@dataclass
class Row:
    """One table row: a variant (or stock), its size and its runs (empty when not trained)."""

    name: str
    what: str
    params: int
    gflops: float
    runs: list[Result] = field(default_factory=list)

    @property
    def maps(self) -> list[float]:
        """mAP50-95 of every seed."""
        return [r.map50_95 for r in self.runs]


def compare_rows(stock: Row, shipped: Row, rows: list[Row]) -> list[tuple[Row, tuple[float, float, str] | None]]:
    """Pair every row with the decision rule's result against the shipped row (None where undefined)."""
    judged = [r.runs and shipped.runs and r is not shipped and r is not stock for r in rows]
    return [(r, decide(r.maps, shipped.maps) if j else None) for r, j in zip(rows, judged)]


def table_rows(stock: Row, shipped: Row, rows: list[Row]) -> list[list]:
    """Markdown rows: stock, shipped, then every variant, with ratios to stock and verdicts against shipped."""
    out = []
    for r, cmp in compare_rows(stock, shipped, [stock, shipped, *rows]):
        cells = [r.name, r.what, f"{r.params / 1e6:.2f}", f"{r.gflops:.1f}", f"{r.params / stock.params:.3f}"]
        cells += [f"{r.gflops / stock.gflops:.3f}", len(r.runs)]
        if r.runs:
            m, sd = mean_std(r.maps)
            base = mean_std(stock.maps)[0] if stock.runs else math.nan
            cells += [pm(r.maps), f"{m / base:.3f}" if base else ""]
            cells += [diff_se(*cmp[:2]), cmp[2]] if cmp else ["", "reference" if r is shipped else ""]
            cells += [f"{mean_std([x.train_s for x in r.runs])[0]:.0f}"]
        else:
            cells += ["", "", "", "", ""]
        out.append(cells)
    return out


def csv_rows(stock: Row, shipped: Row, rows: list[Row]) -> list[list]:
    """Full-precision rows (means and standard deviations over seeds)."""
    out = []
    for r, cmp in compare_rows(stock, shipped, [stock, shipped, *rows]):
        m, sd = mean_std(r.maps) if r.runs else (math.nan, math.nan)
        train = mean_std([x.train_s for x in r.runs])[0] if r.runs else math.nan
        out.append([r.name, r.params, r.gflops, len(r.runs), m, sd, *(cmp or (math.nan, math.nan, "")), train])
    return out


def plot(rows: list[Row], title: str, path: Path) -> None:
    """mAP50-95 per epoch, mean over seeds, of every trained row."""
    with figure(path, figsize=(7, 4)) as (_, ax):
        for r in rows:
            n = min((len(x.curve) for x in r.runs), default=0)
            if n:
                mean = [sum(x.curve[e] for x in r.runs) / len(r.runs) for e in range(n)]
                label, width = f"{r.name} ({len(r.runs)} seeds)", 2.5 if r.name == "stock" else 1.5
                ax.plot(range(1, n + 1), mean, label=label, lw=width)
        ax.set_xlabel("epoch")
        ax.set_ylabel("mAP50-95 (val), mean over seeds")
        ax.set_ylim(bottom=0)
        ax.set_title(title)
        ax.grid(alpha=0.3)
        ax.legend(fontsize=8)


def scatter(rows: list[Row], title: str, path: Path) -> None:
    """Mean mAP50-95 (bars: min-max over seeds) against GFLOPs at 640 for every trained row."""
    with figure(path, figsize=(7, 4.5)) as (_, ax):
        for r in rows:
            if not r.runs:
                continue
            m = mean_std(r.maps)[0]
            err = [[m - min(r.maps)], [max(r.maps) - m]]
            style = dict(marker="s", ms=8, color="black") if r.name == "stock" else dict(marker="o", ms=5)
            ax.errorbar([r.gflops], [m], yerr=err, capsize=3, **style)
            ax.annotate(r.name, (r.gflops, m), textcoords="offset points", xytext=(5, 3), fontsize=7)
        ax.margins(x=0.12)  # room for the labels right of the points
        ax.set_xlabel("GFLOPs @640 (inference model)")
        ax.set_ylabel("mAP50-95 (val): mean, min-max over seeds")
        ax.set_title(title)
        ax.grid(alpha=0.3)


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    """Command-line options (training settings and seeds as in ``yolo-revcol accuracy``)."""
    p = argparse.ArgumentParser(prog="yolo-revcol ablation", description=__doc__.split("\n\n")[0])
    p.add_argument("--study", nargs="+", choices=list(STUDIES), default=list(STUDIES))
    p.add_argument(
        "--variants", nargs="+", help="only these variants (names as in the tables; stock and shipped always)"
    )
    p.add_argument("--scale", default="n", choices=list("nsmlx"))
    p.add_argument("--data", help=f"dataset YAML (default cfg/{DEFAULT_DATA}; --quick: a tiny generated one)")
    p.add_argument("--no-train", action="store_true", help="params and GFLOPs only")
    add_training_arguments(p)
    p.add_argument("--project", type=Path, default=Path("runs/accuracy"), help="runs (shared with accuracy) and YAMLs")
    p.add_argument("--out", type=Path, default=Path("results"), help="folder for ablation_<study>.md/.csv/.png")
    p.add_argument(
        "--readme",
        type=Path,
        nargs="+",
        metavar="FILE",
        help="also replace, in these files, the <!-- ablation-<study>:start/end --> blocks",
    )
    args = p.parse_args(argv)
    fill_training_defaults(p, args)
    known = {v.name for vs in STUDIES.values() for v in vs}
    unknown = sorted(set(args.variants or ()) - known)
    if unknown:
        p.error(f"unknown variant(s) {', '.join(unknown)}; known: {', '.join(sorted(known))}")
    return args


def main(argv: list[str] | None = None) -> int:
    """Measure (and train) every variant of the chosen studies; print and write the tables as runs land."""
    args = parse_args(argv)
    offline()
    settings = settings_of(args)
    project = args.project.resolve()
    yamls = project / "yamls"
    yamls.mkdir(parents=True, exist_ok=True)
    stock_name = f"yolov8{args.scale}.yaml"

    studies = {s: [v for v in STUDIES[s] if not args.variants or v.name in args.variants] for s in args.study}
    paths: dict[str, str] = {"stock": stock_name}
    rows: dict[str, Row] = {"stock": Row("stock", "YOLOv8 backbone (reference)", *size(stock_name))}
    for v in [SHIPPED, *(v for vs in studies.values() for v in vs)]:
        # The scale letter goes into the file name, where Ultralytics reads it (yolov8n-revcol-<variant>.yaml).
        path = variant_path(v, yamls, args.scale)
        paths[v.name] = str(path)
        rows[v.name] = Row(v.name, v.what, *size(str(path)))
        print(f"{path.name}: {rows[v.name].params / 1e6:.2f} M params, {rows[v.name].gflops:.1f} GFLOPs", flush=True)

    how = "params/GFLOPs only (not trained)"
    if not args.no_train:
        data = resolve_data(args.data, args.quick, project / "data")
        how = (
            f"trained from scratch on {Path(data).stem}, identical settings, seeds {', '.join(map(str, args.seeds))}: "
            f"{settings.describe()}; mAP50-95 of the final validation of best.pt, mean ± sample standard deviation; "
            f"verdict against the shipped row by the {SIGNIFICANCE:g}-standard-error rule"
        )

    def report(results: dict[str, list[Result]]) -> None:
        """Write every study's table, plot and the scatter from the runs finished so far."""
        for name, row in rows.items():
            row.runs = results.get(paths[name], [])
        stock, shipped = rows["stock"], rows["shipped"]
        note_head = (
            f"Measured by `{command_line()}` on {machine()}.\n"
            f"Scale {args.scale}, variants of cfg/{BASE_YAML} (RevCol row only; params and GFLOPs of the inference "
            f"model, ratios against stock yolov8{args.scale}); {how}.\n"
        )
        for study, variants in studies.items():
            study_rows = [rows[v.name] for v in variants]
            title = f"{study}: mAP50-95 per epoch (scale {args.scale}, imgsz {settings.imgsz})"
            curves = [stock, shipped, *study_rows]
            write_result(
                args.out / f"ablation_{study}",
                note_head + "\n" + markdown_table(HEADER, table_rows(stock, shipped, study_rows)),
                CSV_HEADER,
                csv_rows(stock, shipped, study_rows),
                plot=None if args.no_train else lambda path, curves=curves, title=title: plot(curves, title, path),
                readme=args.readme,
                block=f"ablation-{study}",
                echo=False,  # refreshed after every finished run; the tables are printed once at the end
            )
        if not args.no_train:
            scatter(
                list(rows.values()), f"stock yolov8{args.scale} and RevCol variants", args.out / "ablation_scatter.png"
            )

    if args.no_train:
        report({})
    else:
        models = list(dict.fromkeys(paths.values()))
        stem = Path(data).stem
        results = train_all(
            models,
            args.seeds,
            data,
            project / stem,
            settings,
            args.jobs,
            on_result=report,
            ledger=args.out / "runs" / stem,
        )
        report(results)
    for study in studies:
        print(f"\n## {study}\n" + (args.out / f"ablation_{study}.md").read_text())
    return 0


if __name__ == "__main__":
    sys.exit(main())
