"""Train models with identical settings over several seeds and compare their accuracy (``yolo-revcol accuracy``).

Each (model, seed) run trains from scratch in its own subprocess (its peak RSS and wall time are its own). Per model:
params and GFLOPs of the inference model, mAP50 and mAP50-95 of the final validation of ``best.pt`` (mean and SD
over seeds), the ratio of means to the first model and the 2-standard-error verdict; with two or more stock rows,
every RevCol model against stock at its own cost. A finished run is reused when its parsed model YAML, dataset and
settings are identical (the ledger under ``--out``). ``--study NAME`` trains stock, the shipped RevCol row and the
variants of ``studies.yaml`` instead (``ablation_<study>.*``).

Examples:
    yolo-revcol accuracy --jobs 2                 # yolov8n vs yolov8n-revcol, seeds 0 1 2 on revcol-shapes
    yolo-revcol accuracy --quick --out /tmp/acc   # smoke test: 1 epoch at 64 px on a tiny generated dataset
    yolo-revcol accuracy --models yolov8n.yaml yolov8n-revcol.yaml yolov8n@d0.17w0.21 --readme README.md
    yolo-revcol accuracy --study cheap --seeds 0 --jobs 2 --readme docs/design.md
"""

from __future__ import annotations

import argparse
import copy
import csv
import hashlib
import json
import math
import re
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass, field
from pathlib import Path

import yaml

from ..integration.resolve import unscaled
from ..paths import cfg_dir
from .toolbox import (
    DISTILL_FIELDS,
    SIGNIFICANCE,
    Settings,
    add_report_arguments,
    command_line,
    decide,
    diff_se,
    figure,
    inference_size,
    machine,
    markdown_table,
    mean_std,
    model_size,
    offline,
    peak_rss_kib,
    pm,
    ratio,
    replace_blocks,
    run_child,
    write_result,
)

DEFAULT_MODELS = ("yolov8n.yaml", "yolov8n-revcol.yaml")  # first one is the baseline of the ratio rows
DEFAULT_DATA = "datasets/revcol-shapes.yaml"  # relative to cfg_dir()
DEFAULT_SEEDS = (0, 1, 2)
MAP_COLUMN = "metrics/mAP50-95(B)"

KD_SUFFIX = "+kd"  # `--models yolov8n-revcol.yaml+kd`: train that model with the --teacher's distillation


def split_kd(model: str) -> tuple[str, bool]:
    """``yolov8n-revcol.yaml+kd`` -> (``yolov8n-revcol.yaml``, True); other names -> (name, False)."""
    return (model[: -len(KD_SUFFIX)], True) if model.endswith(KD_SUFFIX) else (model, False)


@dataclass
class Result:
    """What one training run measured: params (inference model, the dataset's classes; ``train_only``: training-only
    heads), GFLOPs at the training size and at 640, mAP50 and mAP50-95 of the final validation of ``best.pt``,
    ``model.train()`` wall time (``train_s``) and the loop time of ``results.csv`` (``loop_s``), peak RSS, the run
    folder, mAP50-95 per epoch (``curve``) and the seed.
    """

    name: str
    params: int
    gflops: float
    gflops_640: float
    map50: float
    map50_95: float
    train_s: float
    loop_s: float
    rss_mib: float
    save_dir: str
    curve: list[float] = field(default_factory=list)
    seed: int = 0
    train_only: int = 0


# ---------------------------------------------------------- variants of the shipped RevCol row (studies.yaml: data)

BASE_YAML = "yolov8-revcol.yaml"


@dataclass
class Variant:
    """One entry of ``studies.yaml``: the shipped RevCol row with RevCol ``options`` merged over its own and, where
    given, ``columns`` (every scale), ``channels`` and ``layers`` (per level, before scaling) replaced.
    """

    name: str
    what: str
    options: dict = field(default_factory=dict)
    columns: int | None = None
    channels: list[int] | None = None
    layers: list[int] | None = None


def _load_studies() -> tuple[Variant, dict[str, list[Variant]]]:
    """The shipped row and every study of ``studies.yaml``, in file order."""
    d = yaml.safe_load((Path(__file__).with_name("studies.yaml")).read_text())
    studies = {s: [Variant(n, **v) for n, v in vs.items()] for s, vs in d["studies"].items()}
    return Variant("shipped", **d["shipped"]), studies


SHIPPED, STUDIES = _load_studies()


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


# A stock model at a custom compound scale: ``yolov8n@w0.21`` or ``yolov8n@d0.17w0.21`` (depth, width multiples).
SCALED_STOCK = re.compile(
    r"^(?P<family>yolov8|yolo11)(?P<scale>[nslmx])@(?:d(?P<depth>[0-9.]+))?(?:w(?P<width>[0-9.]+))?$"
)


def parse_scaled_stock(name: str) -> tuple[str, str, float | None, float | None]:
    """Split ``yolov8n@d0.17w0.21`` into family, scale and the depth and width multiples it gives (None: not given).

    Raises:
        ValueError: A name that does not follow the pattern, or a multiple that is not a number in (0, 4].
    """
    m = SCALED_STOCK.match(name)
    if not m or not (m["depth"] or m["width"]):
        raise ValueError(f"scaled stock model {name!r}: expected e.g. yolov8n@w0.21 or yolov8n@d0.17w0.21")
    multiples = []
    for label in ("depth", "width"):
        try:
            value = None if m[label] is None else float(m[label])
        except ValueError:
            raise ValueError(f"scaled stock model {name!r}: {label} multiple {m[label]!r} is not a number") from None
        if value is not None and not 0 < value <= 4:
            raise ValueError(f"scaled stock model {name!r}: {label} multiple {value:g} must be in (0, 4]")
        multiples.append(value)
    return m["family"], m["scale"], *multiples


def scaled_stock_yaml(name: str, folder: Path) -> Path:
    """Write Ultralytics' own YAML of a stock family at a custom scale (``yolov8n@d0.17w0.21``) into ``folder``.

    The named scale's depth and width multiples are replaced where given (max channels kept) and it is the file's only
    scale, so the model is built as Ultralytics builds its own scales: the frontier a RevCol row is judged against.
    Returns ``<family><scale>-d<depth>-w<width>.yaml``; raises ``ValueError`` as ``parse_scaled_stock``.
    """
    from ultralytics.utils import ROOT

    family, scale, new_depth, new_width = parse_scaled_stock(name)
    base = yaml.safe_load(
        (ROOT / "cfg" / "models" / ("v8" if family == "yolov8" else "11") / f"{family}.yaml").read_text()
    )
    depth, width, max_channels = base["scales"][scale]
    depth, width = new_depth or depth, new_width or width
    base["scales"] = {scale: [depth, width, max_channels]}
    path = Path(folder) / f"{family}{scale}-d{depth:g}-w{width:g}.yaml"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(
        f"# {family}{scale} at depth {depth:g}, width {width:g} ({name})\n" + yaml.safe_dump(base, sort_keys=False)
    )
    return path


# A RevCol variant of ``yolo-revcol ablation`` by the name it trains under: ``yolov8n-revcol-c2f-p3p4wide``.
VARIANT_NAME = re.compile(r"^yolov8(?P<scale>[nslmx])-revcol-(?P<variant>.+?)(\.yaml)?$")


def resolve_model(name: str, folder: Path | None = None) -> str:
    """Return a model YAML for Ultralytics: a path (made absolute), a YAML of this repository's ``cfg/``, a scaled
    stock model (``yolov8n@w0.21``, see ``scaled_stock_yaml``) or an ablation variant (``yolov8n-revcol-c2f-1col``,
    see ``studies.yaml``) written into ``folder``, or the name.

    Scaled names need not exist as files (``yolov8n-revcol.yaml`` is ``yolov8-revcol.yaml`` at scale n, which
    Ultralytics resolves itself); names found in neither place (``yolov8n.yaml``) come from Ultralytics' own
    ``cfg/models``.
    """

    def written_to() -> Path:
        return folder or Path(tempfile.mkdtemp(prefix="yolo_revcol_yamls_"))

    if "@" in name:
        return str(scaled_stock_yaml(name, written_to()).resolve())
    named = VARIANT_NAME.match(name)
    variant = find_variant(named["variant"]) if named and not Path(name).is_file() else None
    if variant is not None:
        return str(variant_path(variant, written_to(), named["scale"]).resolve())
    path = Path(name)
    if path.is_file() or (path.parent != Path(".") and path.parent.is_dir()):
        return str(path.resolve())
    unified = unscaled(path.stem) + path.suffix  # as Ultralytics drops the scale
    return str(cfg_dir() / name) if (cfg_dir() / name).is_file() or (cfg_dir() / unified).is_file() else name


def train_one(model: str, data: str, project: str, name: str, settings: dict, teacher: str | None = None) -> dict:
    """Train ``model`` on ``data`` into ``project/name`` with ``settings`` (``Settings`` fields; with ``teacher``'s
    weights as Ultralytics' ``distill_model``) in this process, meant to be a fresh one; return the ``Result`` fields
    but ``curve``, ``name``, ``seed`` and ``loop_s``.
    """
    import copy

    from ultralytics import YOLO
    from ultralytics.utils.torch_utils import get_flops

    from ..integration.offline import provide_fonts

    provide_fonts()
    yolo = YOLO(model)
    settings = {k: v for k, v in settings.items() if k not in DISTILL_FIELDS} | (
        dict(distill_model=teacher, dis=settings["dis"]) if teacher else {}
    )
    start = time.perf_counter()
    metrics = yolo.train(data=data, project=project, name=name, exist_ok=True, pretrained=False, **settings)
    train_s = time.perf_counter() - start
    values = getattr(metrics, "results_dict", metrics) or {}  # DetMetrics of the final validation of best.pt
    net = copy.deepcopy(yolo.model)  # best.pt, reloaded by train(): sized for the dataset's classes
    params, gflops, train_only = inference_size(net, settings["imgsz"])
    return dict(
        params=params,
        gflops=gflops,
        gflops_640=get_flops(net, 640),
        map50=float(values.get("metrics/mAP50(B)", math.nan)),
        map50_95=float(values.get(MAP_COLUMN, math.nan)),
        train_s=train_s,
        rss_mib=peak_rss_kib(children=True) / 1024,  # last, after everything the run allocated
        save_dir=str(yolo.trainer.save_dir),
        train_only=train_only,
    )


def read_results_csv(save_dir: Path) -> list[dict[str, str]]:
    """Rows of a run's ``results.csv`` with whitespace stripped from keys and values (older versions pad them)."""
    path = save_dir / "results.csv"
    if not path.is_file():
        return []
    with open(path, newline="") as f:
        return [{k.strip(): v.strip() for k, v in row.items()} for row in csv.DictReader(f)]


def run_model(model: str, data: str, project: Path, settings: Settings, name: str, teacher: str | None) -> Result:
    """Train ``model`` with ``settings`` (its seed too) in a fresh subprocess as run ``name``, distilled from
    ``teacher``'s weights when given; ``RuntimeError`` if the subprocess fails."""
    run_name = f"{name}-seed{settings.seed}"
    spec = dict(model=model, data=data, project=str(project), name=run_name, settings=asdict(settings), teacher=teacher)
    print(f"\n== {run_name}: training in a subprocess ({settings.epochs} epochs, imgsz {settings.imgsz})", flush=True)
    measured = run_child("yolo_revcol.tools.bench_accuracy:train_one", spec)  # inherits YOLO_OFFLINE
    rows = read_results_csv(Path(measured["save_dir"]))
    curve = [float(r.get(MAP_COLUMN, "nan") or "nan") for r in rows]
    loop_s = float(rows[-1].get("time", "nan")) if rows else math.nan
    return Result(name=name, loop_s=loop_s, curve=curve, seed=settings.seed, **measured)


def model_dict(model: str) -> dict | str:
    """The parsed model YAML as Ultralytics reads it (scale included, file location left out), or the bare name."""
    from ultralytics.nn.tasks import yaml_model_load

    try:
        d = yaml_model_load(model)
    except FileNotFoundError:
        return str(model)
    d.pop("yaml_file", None)
    return d


def data_identity(data: str) -> str:
    """The dataset as a run's identity names it: a shipped dataset YAML by its path inside ``cfg/`` (the same in
    every checkout and install), anything else as given."""
    try:
        return Path(data).resolve().relative_to(cfg_dir().resolve()).as_posix()
    except ValueError:
        return data


def run_key(model: str, data: str, settings: Settings) -> str:
    """Identity of a training run: the model's parsed YAML (not its name or comments), the dataset, every setting
    (``Settings.identity``: the distillation teacher's own run when there is one)."""
    blob = json.dumps([model_dict(model), data_identity(data), settings.identity()], sort_keys=True, default=str)
    return hashlib.sha256(blob.encode()).hexdigest()[:16]


def ledger_path(ledger: Path, name: str, settings: Settings, key: str) -> Path:
    """A run's file in the ledger: ``<name>-seed<seed>-<key>.json`` (readable name, found by its key)."""
    return ledger / f"{name}-seed{settings.seed}-{key}.json"


def train_cached(
    model: str,
    data: str,
    project: Path,
    settings: Settings,
    ledger: Path | None = None,
    name: str | None = None,
    teacher: str | None = None,
    need_weights: bool = False,
) -> tuple[Result, bool]:
    """Train ``model`` unless an identical finished run is known; return its result and whether it was reused.

    Finished runs are looked up by ``run_key`` in the ``ledger`` folder (committed with the results, so a fresh
    checkout keeps every run it reports) and in ``<project>/results`` (the local cache); a new run is written to both.
    ``name`` names the run (default: the YAML's stem), ``teacher`` is passed to ``run_model``; with ``need_weights``
    a known run is reused only while its ``best.pt`` still exists (a distillation teacher), else it is trained again.
    """
    name = name or Path(model).stem
    key = run_key(model, data, settings)
    cache = project / "results" / f"{key}.json"
    known = [*sorted(ledger.glob(f"*-{key}.json")), cache] if ledger is not None and ledger.is_dir() else [cache]
    for path in known:
        if path.is_file():
            known_fields = {k: v for k, v in json.loads(path.read_text()).items() if k in Result.__dataclass_fields__}
            result = Result(**{**known_fields, "name": name})  # other keys: provenance notes
            if not need_weights or best_weights(result).is_file():
                return result, True
    result = run_model(model, data, project, settings, name, teacher)
    for path in [cache] + ([ledger_path(ledger, name, settings, key)] if ledger is not None else []):
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps(asdict(result), indent=1) + "\n")
    return result, False


def best_weights(result: Result) -> Path:
    """The ``best.pt`` a run left in its Ultralytics run folder (absent in a fresh checkout)."""
    return Path(result.save_dir) / "weights" / "best.pt"


@dataclass
class Teacher:
    """A distillation teacher: its run (``<model>-seed<seed>-<key>``, recorded in a student's identity) and weights."""

    name: str
    weights: str


def prepare_teacher(
    model: str, data: str, project: Path, settings: Settings, ledger: Path | None, seed: int = 0
) -> Teacher:
    """Train the teacher (``model`` with ``settings`` and ``seed``) unless the ledger has it with its weights."""
    run_settings = Settings(**{**asdict(settings), "seed": seed, "distill": ""})
    result, _ = train_cached(model, data, project, run_settings, ledger, need_weights=True)
    key = run_key(model, data, run_settings)
    print(
        f"teacher {Path(model).stem} seed {seed}: mAP50-95 {result.map50_95:.3f} ({best_weights(result)})", flush=True
    )
    return Teacher(ledger_path(Path(), Path(model).stem, run_settings, key).stem, str(best_weights(result)))


def train_all(
    models: list[str],
    seeds: list[int],
    data: str,
    project: Path,
    settings: Settings,
    jobs: int = 1,
    on_result: Callable[[dict[str, list[Result]]], None] | None = None,
    ledger: Path | None = None,
    teacher: Teacher | None = None,
) -> dict[str, list[Result]]:
    """Train every model with every seed, ``jobs`` at a time, reusing identical finished runs (``train_cached``);
    a model ending in ``+kd`` trains with ``teacher``'s distillation. ``on_result`` gets the results so far after
    every run (reports written as runs land). Returns the results per model, in seed order."""
    pairs = [(m, s) for s in seeds for m in models]  # seed-major: a partial run still compares models fairly

    def train(pair: tuple[str, int]) -> tuple[str, Result]:
        model, seed = pair
        path, kd = split_kd(model)
        if kd and teacher is None:
            raise ValueError(f"{model}: distillation needs a teacher (--teacher)")
        name = Path(path).stem + (KD_SUFFIX if kd else "")
        run_settings = Settings(**{**asdict(settings), "seed": seed, "distill": teacher.name if kd else ""})
        weights = teacher.weights if kd else None
        result, reused = train_cached(path, data, project, run_settings, ledger, name, weights)
        reuse = " (reused run)" if reused else ""
        print(f"{name} seed {seed}: mAP50-95 {result.map50_95:.3f}{reuse}", flush=True)
        return model, result

    results: dict[str, list[Result]] = {m: [] for m in models}
    with ThreadPoolExecutor(jobs) as pool:
        for model, result in pool.map(train, pairs):  # in submission order, so each model's list is in seed order
            results[model].append(result)
            if on_result is not None:
                on_result({m: list(r) for m, r in results.items() if r})
    return results


def quick_dataset(root: Path) -> Path:
    """Generate a tiny detection dataset (8 train, 4 val images at 64 px) under ``root``; return its YAML."""
    from ..data.synthetic import CLASS_NAMES, generate_detection_dataset

    images = generate_detection_dataset(root / "quick-shapes", train=8, val=4, imgsz=64, seed=0)
    names = "".join(f"  {i}: {n}\n" for i, n in enumerate(CLASS_NAMES))
    path = root / "quick-shapes.yaml"
    path.write_text(f"path: {images}\ntrain: images/train\nval: images/val\nnames:\n{names}")
    return path


def resolve_data(data: str | None, quick: bool, root: Path) -> str:
    """The dataset to train on: ``data`` (made absolute when it is a file), the embedded one, or with ``quick`` a
    tiny generated one under ``root``; prepared (generated when missing) before returning."""
    data = str(quick_dataset(root)) if quick and not data else data
    data = data or str(cfg_dir() / DEFAULT_DATA)
    data = str(Path(data).resolve()) if Path(data).is_file() else data  # else an Ultralytics dataset name
    from ultralytics.data.utils import check_det_dataset

    check_det_dataset(data)  # generates the embedded dataset before any run starts
    return data


RUN_HEADER = ("model", "seed", "mAP50", "mAP50-95", "train (s)", "loop (s)", "peak RSS (MiB)")
SUMMARY_HEADER = ("model", "params (M)", "GFLOPs @imgsz", "GFLOPs @640", "seeds", "mAP50", "mAP50-95")
SUMMARY_HEADER += ("mAP50-95 ratio of means", "difference ± SE", "verdict (2 SE)", "train (s)", "peak RSS (MiB)")
CSV_HEADER = ("model", "seed", "params", "train_only_params", "gflops_imgsz", "gflops_640", "map50", "map50_95")
CSV_HEADER += ("train_s", "loop_s", "peak_rss_mib", "save_dir")


def run_rows(results: dict[str, list[Result]]) -> list[list]:
    """One row per run: model and seed, mAP, times, memory."""
    return [
        [
            r.name,
            r.seed,
            f"{r.map50:.3f}",
            f"{r.map50_95:.3f}",
            f"{r.train_s:.0f}",
            f"{r.loop_s:.0f}",
            f"{r.rss_mib:.0f}",
        ]
        for runs in results.values()
        for r in runs
    ]


def summary_rows(results: dict[str, list[Result]]) -> list[list]:
    """One row per model: size, mean ± std over seeds, ratio of means and the decision rule against the first model."""
    base = next(iter(results.values()))
    base_maps = [r.map50_95 for r in base]
    rows = []
    for runs in results.values():
        r0, maps = runs[0], [r.map50_95 for r in runs]
        params = f"{r0.params / 1e6:.2f}" + (f" (+{r0.train_only / 1e6:.2f} training-only)" if r0.train_only else "")
        if runs is base:
            versus = ["1.000", "", "baseline"]
        else:
            diff, se, verdict = decide(maps, base_maps)
            versus = [ratio(mean_std(maps)[0], mean_std(base_maps)[0]), diff_se(diff, se), verdict]
        rows.append(
            [r0.name, params, f"{r0.gflops:.2f}", f"{r0.gflops_640:.1f}", len(runs)]
            + [pm([r.map50 for r in runs]), pm(maps)]
            + versus
            + [f"{mean_std([r.train_s for r in runs])[0]:.0f}", f"{max(r.rss_mib for r in runs):.0f}"]
        )
    return rows


def is_stock(name: str) -> bool:
    """Whether a model is Ultralytics' own (stock or stock at a custom scale), not a RevCol model."""
    return "revcol" not in name


def frontier_at(stock: list[tuple[float, float]], gflops: float) -> float:
    """Stock's mean mAP50-95 at ``gflops``, interpolated linearly between the two ``stock`` rows (GFLOPs, mean
    mAP50-95) around it; NaN outside their GFLOPs range."""
    points = sorted(stock)
    for (g0, m0), (g1, m1) in zip(points, points[1:]):
        if g0 <= gflops <= g1:
            return m0 if g1 == g0 else m0 + (m1 - m0) * (gflops - g0) / (g1 - g0)
    return math.nan


EQUAL_COST_HEADER = ("model", "params ratio", "GFLOPs ratio", "mAP50-95", "stock frontier at its GFLOPs")
EQUAL_COST_HEADER += ("above frontier", "nearest-GFLOPs stock row", "difference ± SE", f"verdict ({SIGNIFICANCE:g} SE)")


def equal_cost_rows(results: dict[str, list[Result]]) -> list[list]:
    """Every RevCol model against stock at its own cost (needs two or more stock rows, e.g. a scaled one).

    Per model: its params and GFLOPs@640 as ratios of the first model (the baseline), its mean mAP50-95, the stock
    frontier there (``frontier_at``) and how far above it the model lies, and the decision rule against the stock
    row nearest in GFLOPs. Models trained with distillation (``+kd``) are set against the stock rows trained with
    it, the others against those trained without: equal cost and equal training help.
    """
    base = next(iter(results.values()))[0]
    if sum(is_stock(runs[0].name) for runs in results.values()) < 2:
        return []
    rows = []
    for runs in results.values():
        r0 = runs[0]
        kd = r0.name.endswith(KD_SUFFIX)
        stock = [s for s in results.values() if is_stock(s[0].name) and s[0].name.endswith(KD_SUFFIX) == kd]
        if is_stock(r0.name) or not stock:
            continue
        points = [(s[0].gflops_640, mean_std([r.map50_95 for r in s])[0]) for s in stock]
        maps = [r.map50_95 for r in runs]
        mean = mean_std(maps)[0]
        front = frontier_at(points, r0.gflops_640)
        near = min(stock, key=lambda s: abs(s[0].gflops_640 - r0.gflops_640))
        diff, se, verdict = decide(maps, [r.map50_95 for r in near])
        rows.append(
            [r0.name, f"{r0.params / base.params:.3f}", f"{r0.gflops_640 / base.gflops_640:.3f}", pm(maps)]
            + (["", ""] if math.isnan(front) else [f"{front:.3f}", f"{mean - front:+.3f}"])
            + [f"{near[0].name} ({near[0].gflops_640 / base.gflops_640:.3f}x GFLOPs)", diff_se(diff, se), verdict]
        )
    return rows


def accuracy_line(results: dict[str, list[Result]], settings: Settings, seeds: list[int], dataset: str) -> str:
    """One line for the README's first screen: the first RevCol model against the baseline and at equal cost.

    Returns:
        (str): Markdown, or an empty string when the results hold no RevCol model.
    """
    base = next(iter(results.values()))
    plain = {k: runs for k, runs in results.items() if not runs[0].name.endswith(KD_SUFFIX)}
    ours = next((runs for runs in plain.values() if not is_stock(runs[0].name)), None)
    if ours is None:
        return ""
    maps, base_maps = [r.map50_95 for r in ours], [r.map50_95 for r in base]
    line = (
        f"**Accuracy cost:** {ours[0].name} reaches {pm(maps)} mAP50-95 against {base[0].name}'s {pm(base_maps)} "
        f"({ratio(mean_std(maps)[0], mean_std(base_maps)[0])}x) at {ours[0].gflops_640 / base[0].gflops_640:.2f}x "
        "its GFLOPs"
    )
    stock = [runs for runs in plain.values() if is_stock(runs[0].name) and runs is not base]
    if stock:
        near = min(stock, key=lambda s: abs(s[0].gflops_640 - ours[0].gflops_640))
        diff, se, _ = decide(maps, [r.map50_95 for r in near])
        side = "below" if diff < 0 else "above"
        amount = f"{abs(diff):.3f}" + ("" if math.isnan(se) else f" ± {se:.3f}")
        line += (
            f", and {amount} {side} stock scaled to about its cost ({near[0].name}, "
            f"{near[0].gflops_640 / base[0].gflops_640:.2f}x GFLOPs: {pm([r.map50_95 for r in near])})"
        )
    return (
        f"{line}; {dataset}, from scratch, {settings.epochs} epochs at {settings.imgsz} px, {len(seeds)} seed"
        f"{'s' if len(seeds) > 1 else ''} each (mean ± SD).\n"
    )


def plot_frontier(results: dict[str, list[Result]], title: str, path: Path) -> None:
    """Mean mAP50-95 against GFLOPs@640: stock rows joined as the frontier, every other model as a point; bars show
    the min-max over seeds."""
    with figure(path, figsize=(10, 4.5)) as (_, ax):
        plain = [r for r in results.values() if is_stock(r[0].name) and not r[0].name.endswith(KD_SUFFIX)]
        stock = sorted(plain, key=lambda r: r[0].gflops_640)
        if stock:
            ax.plot(
                [r[0].gflops_640 for r in stock],
                [mean_std([x.map50_95 for x in r])[0] for r in stock],
                color="black",
                lw=1,
                ls="--",
                label="stock at other scales (frontier)",
            )
        # Every model in the legend (name and seeds), none written beside its point: close points never overlap text
        import matplotlib

        cmap = matplotlib.colormaps["tab10" if len(results) <= 10 else "tab20"]
        colors = iter(cmap(i % cmap.N) for i in range(len(results)))
        for runs in results.values():
            maps = [r.map50_95 for r in runs]
            m, g = mean_std(maps)[0], runs[0].gflops_640
            kd = runs[0].name.endswith(KD_SUFFIX)
            marker = ("D" if kd else "s") if is_stock(runs[0].name) else ("^" if kd else "o")
            label = f"{runs[0].name} ({len(runs)} seed{'s' if len(runs) > 1 else ''})"
            yerr = [[max(0.0, m - min(maps))], [max(0.0, max(maps) - m)]]  # a mean can round past equal values
            ax.errorbar([g], [m], yerr=yerr, capsize=3, marker=marker, ms=6, color=next(colors), ls="", label=label)
        ax.margins(x=0.1)
        ax.set_xlabel("GFLOPs @640 (inference model)")
        ax.set_ylabel("mAP50-95 (val): mean, min-max over seeds")
        ax.set_title(title)
        ax.grid(alpha=0.3)
        ax.legend(fontsize=7, loc="center left", bbox_to_anchor=(1.02, 0.5), frameon=False)


def csv_rows(results: dict[str, list[Result]]) -> list[list]:
    """One row per run, full precision."""
    return [
        [r.name, r.seed, r.params, r.train_only, r.gflops, r.gflops_640, r.map50, r.map50_95]
        + [r.train_s, r.loop_s, r.rss_mib, r.save_dir]
        for runs in results.values()
        for r in runs
    ]


def plot(results: dict[str, list[Result]], title: str, path: Path) -> None:
    """mAP50-95 after each epoch: the mean over seeds as a line and the min-max band over seeds, per model."""
    from matplotlib.ticker import MaxNLocator

    with figure(path, figsize=(7, 4)) as (_, ax):
        epochs = 1
        for runs in results.values():
            n = min(len(r.curve) for r in runs)
            if not n:
                continue
            per_epoch = [[r.curve[e] for r in runs] for e in range(n)]
            x = range(1, n + 1)
            label = f"{runs[0].name} ({len(runs)} seeds)"
            line = ax.plot(x, [statistics.fmean(v) for v in per_epoch], marker="o", ms=3, label=label)
            low, high = [min(v) for v in per_epoch], [max(v) for v in per_epoch]
            ax.fill_between(x, low, high, color=line[0].get_color(), alpha=0.2)
            epochs = max(epochs, n)
        ax.set_xlim(0.5, epochs + 0.5)
        ax.xaxis.set_major_locator(MaxNLocator(integer=True, min_n_ticks=1))  # whole epochs, even for one epoch
        ax.set_ylim(bottom=0)
        ax.set_xlabel("epoch")
        ax.set_ylabel("mAP50-95 (val): mean, min-max band")
        ax.set_title(title)
        ax.grid(alpha=0.3)
        if ax.get_legend_handles_labels()[0]:  # an early report may hold no curve yet
            ax.legend()


# --------------------------------------------------------------------- studies: variants of the shipped RevCol row

STUDY_HEADER = ("variant", "what changes", "params (M)", "GFLOPs @640", "params ratio", "GFLOPs ratio", "seeds")
STUDY_HEADER += ("mAP50-95", "ratio to stock", "vs shipped", f"verdict ({SIGNIFICANCE:g} SE)", "train (s)")
STUDY_CSV_HEADER = ("variant", "params", "gflops_640", "seeds", "map50_95_mean", "map50_95_std", "diff_vs_shipped")
STUDY_CSV_HEADER += ("se_vs_shipped", "verdict", "train_s_mean")


@dataclass
class StudyRow:
    """One row of a study table: stock, the shipped row or a variant, its size and its runs (empty if untrained)."""

    name: str
    what: str
    params: int
    gflops: float
    runs: list[Result] = field(default_factory=list)

    @property
    def maps(self) -> list[float]:
        """mAP50-95 of every seed."""
        return [r.map50_95 for r in self.runs]


def study_rows(rows: list[StudyRow]) -> tuple[list[list], list[list]]:
    """Markdown and full-precision CSV rows of a study: ``rows`` is stock, the shipped row, then the variants; ratios
    to stock, verdicts of every variant against the shipped row."""
    stock, shipped = rows[0], rows[1]
    table, csv = [], []
    for r in rows:
        cmp = decide(r.maps, shipped.maps) if r.runs and shipped.runs and r not in (stock, shipped) else None
        (m, sd), train = (mean_std(r.maps), mean_std([x.train_s for x in r.runs])[0]) if r.runs else ((0, 0), 0)
        cells = [r.name, r.what, f"{r.params / 1e6:.2f}", f"{r.gflops:.1f}", f"{r.params / stock.params:.3f}"]
        cells += [f"{r.gflops / stock.gflops:.3f}", len(r.runs)]
        if r.runs:
            cells += [pm(r.maps), ratio(m, mean_std(stock.maps)[0] if stock.runs else math.nan)]
            cells += [diff_se(*cmp[:2]), cmp[2]] if cmp else ["", "reference" if r is shipped else ""]
            cells += [f"{train:.0f}"]
        table.append(cells + [""] * (len(STUDY_HEADER) - len(cells)))
        nan = math.nan
        csv.append([r.name, r.params, r.gflops, len(r.runs), *((m, sd) if r.runs else (nan, nan))])
        csv[-1] += [*(cmp or (nan, nan, "")), train if r.runs else nan]
    return table, csv


def run_studies(args: argparse.Namespace, settings: Settings, project: Path) -> int:
    """``--study``: train stock, the shipped row and every variant of the chosen studies; write one table each."""
    scale = args.scale
    rows = {"stock": StudyRow("stock", "YOLOv8 backbone (reference)", *model_size(f"yolov8{scale}.yaml")[:2])}
    paths = {"stock": f"yolov8{scale}.yaml"}
    studies = {s: [v for v in STUDIES[s] if not args.variants or v.name in args.variants] for s in args.study}
    for v in [SHIPPED, *(v for vs in studies.values() for v in vs)]:
        paths[v.name] = str(variant_path(v, project / "yamls", scale))  # yolov8<scale>-revcol-<name>.yaml
        rows[v.name] = StudyRow(v.name, v.what, *model_size(paths[v.name])[:2])
        print(f"{Path(paths[v.name]).name}: {rows[v.name].params / 1e6:.2f} M params, {rows[v.name].gflops:.1f} GFLOPs")
    how = "params/GFLOPs only (not trained)"
    if not args.no_train:
        data = resolve_data(args.data, args.quick, project / "data")
        how = (
            f"trained from scratch on {Path(data).stem}, identical settings, seeds {', '.join(map(str, args.seeds))}: "
            f"{settings.describe()}; mAP50-95 of the final validation of best.pt, mean ± sample standard deviation; "
            f"verdict against the shipped row by the {SIGNIFICANCE:g}-standard-error rule"
        )
    note = (
        f"Measured by `{command_line()}` on {machine()}.\nScale {scale}, variants of cfg/{BASE_YAML} (RevCol row "
        f"only; params and GFLOPs of the inference model, ratios against stock yolov8{scale}); {how}.\n"
    )

    def report(results: dict[str, list[Result]]) -> None:
        """Write every study's table and plot from the runs finished so far."""
        for name, row in rows.items():
            row.runs = results.get(paths[name], [])
        for study, variants in studies.items():
            chosen = [rows["stock"], rows["shipped"], *(rows[v.name] for v in variants)]
            table, csv = study_rows(chosen)
            title = f"{study}: mAP50-95 per epoch (scale {scale}, imgsz {settings.imgsz})"
            curves = {r.name: r.runs for r in chosen if r.runs}
            write_result(
                args.out / f"ablation_{study}",
                note + "\n" + markdown_table(STUDY_HEADER, table),
                STUDY_CSV_HEADER,
                csv,
                plot=None if args.no_train else lambda path, c=curves, t=title: plot(c, t, path),
                readme=args.readme,
                block=f"ablation-{study}",
                echo=False,  # refreshed after every finished run; printed once at the end
            )

    if args.no_train:
        report({})
    else:
        models = list(dict.fromkeys(paths.values()))
        ledger = args.out / "runs" / Path(data).stem
        report(train_all(models, args.seeds, data, project / Path(data).stem, settings, args.jobs, report, ledger))
    for study in studies:
        print(f"\n## {study}\n" + (args.out / f"ablation_{study}.md").read_text())
    return 0


def add_training_arguments(p: argparse.ArgumentParser) -> None:
    """Add the training settings every training benchmark shares (``--epochs`` .. ``--quick``, ``--seeds``,
    ``--jobs``), defaults from ``Settings``; ``--epochs`` and ``--imgsz`` stay None when not given, for ``--quick``
    to fill."""
    d = Settings()
    p.add_argument("--epochs", type=int, help=f"default {d.epochs} (--quick: 1)")
    p.add_argument("--imgsz", type=int, help=f"default {d.imgsz} (--quick: 64)")
    p.add_argument("--batch", type=int, default=d.batch)
    p.add_argument("--optimizer", default=d.optimizer)
    p.add_argument("--lr0", type=float, default=d.lr0, help="ignored by Ultralytics with --optimizer auto")
    p.add_argument("--warmup-epochs", type=float, default=d.warmup_epochs)
    p.add_argument("--close-mosaic", type=int, default=d.close_mosaic)
    seeds = " ".join(map(str, DEFAULT_SEEDS))
    p.add_argument("--seeds", type=int, nargs="+", help=f"training seeds (default {seeds}; --quick: 0 1)")
    p.add_argument("--jobs", type=int, default=1, help="trainings at a time (on CPU each uses cores - 1 torch threads)")
    p.add_argument("--workers", type=int, default=d.workers, help="Ultralytics uses 0 on CPU whatever is set")
    p.add_argument("--deterministic", action=argparse.BooleanOptionalAction, default=d.deterministic)
    p.add_argument("--plots", action=argparse.BooleanOptionalAction, default=d.plots, help="Ultralytics' run plots")
    p.add_argument("--device", default=d.device)
    p.add_argument("--quick", action="store_true", help="smoke test: 1 epoch, imgsz 64, 8+4 generated images, 2 seeds")


def fill_training_defaults(p: argparse.ArgumentParser, args: argparse.Namespace) -> None:
    """Fill ``--epochs``, ``--imgsz`` and ``--seeds`` left unset (``Settings`` defaults, or the ``--quick`` ones)
    and check them."""
    d = Settings()
    args.epochs = args.epochs or (1 if args.quick else d.epochs)
    args.imgsz = args.imgsz or (64 if args.quick else d.imgsz)
    args.seeds = args.seeds or ([0, 1] if args.quick else list(DEFAULT_SEEDS))
    if len(set(args.seeds)) != len(args.seeds):
        p.error(f"--seeds must differ, got {args.seeds}")
    if args.jobs < 1:
        p.error(f"--jobs must be >= 1, got {args.jobs}")


def settings_of(args: argparse.Namespace) -> Settings:
    """The ``Settings`` given on the command line (every field but the seed has an option of the same name)."""
    fields = [k for k in Settings.__dataclass_fields__ if k not in ("seed", "distill")]  # distill: per model, in main
    defaults = Settings()
    return Settings(**{k: getattr(args, k, getattr(defaults, k)) for k in fields})  # commands without --dis


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    """Command-line options; ``--quick`` fills epochs, imgsz and seeds only where they were not given."""
    p = argparse.ArgumentParser(prog="yolo-revcol accuracy", description=__doc__.split("\n\n")[0])
    p.add_argument("--data", help=f"dataset YAML (default cfg/{DEFAULT_DATA}; --quick: a tiny generated one)")
    p.add_argument(
        "--models",
        nargs="+",
        help=f"model YAMLs; the first is the baseline; NAME{KD_SUFFIX} trains NAME distilled from --teacher (default: "
        f"{' '.join(DEFAULT_MODELS)})",
    )
    p.add_argument(
        "--study",
        nargs="+",
        choices=list(STUDIES),
        help="instead of --models: stock, the shipped RevCol row and the variants of these studies (ablation_<study>"
        ".md/.csv/.png, <!-- ablation-<study> --> blocks)",
    )
    p.add_argument("--variants", nargs="+", help="with --study: only these variants (stock and shipped always)")
    p.add_argument("--scale", default="n", choices=list("nsmlx"), help="with --study: the scale (default n)")
    p.add_argument("--no-train", action="store_true", help="with --study: params and GFLOPs only")
    add_training_arguments(p)
    p.add_argument(
        "--teacher",
        metavar="MODEL",
        help=f"distillation teacher for the {KD_SUFFIX} models (Ultralytics' distill_model): this model trained with "
        "the same settings, seed 0, taken from the ledger when its weights are still there, else trained first",
    )
    p.add_argument("--dis", type=float, default=Settings.dis, help="distillation loss weight (Ultralytics' dis)")
    p.add_argument("--project", type=Path, default=Path("runs/accuracy"), help="Ultralytics project for the runs")
    add_report_arguments(p, "accuracy_<dataset>.* (ablation_<study>.*)", "the accuracy (ablation-<study>) blocks")
    args = p.parse_args(argv)
    fill_training_defaults(p, args)
    if args.study and args.models:
        p.error("--study trains its own models; leave out --models")
    unknown = sorted(set(args.variants or ()) - {v.name for vs in STUDIES.values() for v in vs})
    if unknown or (args.variants and not args.study):
        known = ", ".join(sorted(v.name for vs in STUDIES.values() for v in vs))
        p.error(f"unknown variant(s) {', '.join(unknown)}; known: {known}" if unknown else "--variants needs --study")
    args.models = args.models or list(DEFAULT_MODELS)
    if any(split_kd(m)[1] for m in args.models) != bool(args.teacher):
        p.error(f"--teacher is needed by, and only by, models named with {KD_SUFFIX} (got --models {args.models})")
    for m in (split_kd(m)[0] for m in args.models):
        if "@" in m:
            try:
                parse_scaled_stock(m)
            except ValueError as e:
                p.error(str(e))
    return args


def main(argv: list[str] | None = None) -> int:
    """Train every model alike with every seed, print the tables, write Markdown, CSV and PNG (and the README)."""
    args = parse_args(argv)
    offline()  # before Ultralytics is imported; subprocesses inherit it
    settings = settings_of(args)
    project = args.project.resolve()  # absolute: Ultralytics puts relative projects under runs/<task>/
    if args.study:
        return run_studies(args, settings, project)
    models = [resolve_model(m, project / "yamls") + (KD_SUFFIX if kd else "") for m, kd in map(split_kd, args.models)]
    # What the tables and run folders are named by
    names = [Path(path).stem + (KD_SUFFIX if kd else "") for path, kd in map(split_kd, models)]
    if len(set(names)) != len(names):
        print(f"yolo-revcol accuracy: error: model names (YAML stems) must differ: {names}", file=sys.stderr)
        return 2
    data = resolve_data(args.data, args.quick, project / "data")
    stem = Path(data).stem
    note = (
        f"Measured by `{command_line()}` on {machine()}.\n"
        f"Dataset {stem}; from scratch, identical settings, seeds {', '.join(map(str, args.seeds))}: "
        f"{settings.describe()}. mAP from the final validation of best.pt, mean ± sample standard deviation over "
        f"seeds; verdict against the first model: better or worse only when the difference of means exceeds "
        f"{SIGNIFICANCE:g} standard errors. Params of the inference model (training-only heads apart); train = "
        "`model.train()` wall time, mean over seeds; peak RSS of each run's own process, largest over seeds. "
        f"Finished runs are kept in {args.out / 'runs' / stem} and reused.\n"
    )
    title = f"{stem}: mAP50-95 per epoch, imgsz {settings.imgsz}"

    def report(results: dict[str, list[Result]], echo: bool = False) -> None:
        """Write the tables, CSV and plot (and the README block) from the runs finished so far."""
        tables = markdown_table(SUMMARY_HEADER, summary_rows(results)) + "\n"
        equal = equal_cost_rows(results)
        if equal:
            tables += (
                "\nAt equal cost: every RevCol model against the stock rows (the frontier, read between the two stock "
                "rows around its GFLOPs) and, by the decision rule, against the stock row nearest in GFLOPs "
                f"(frontier plot: accuracy_{stem}_frontier.png).\n\n" + markdown_table(EQUAL_COST_HEADER, equal) + "\n"
            )
            plot_frontier(results, f"{stem}: mAP50-95 against GFLOPs", args.out / f"accuracy_{stem}_frontier.png")
        summary = tables  # the README's: per-model and equal-cost tables, without the per-run rows
        tables += markdown_table(RUN_HEADER, run_rows(results))
        line = accuracy_line(results, settings, args.seeds, stem)
        if args.readme and line:
            replace_blocks(args.readme, {"accuracy-line": line})
        write_result(
            args.out / f"accuracy_{stem}",
            note + "\n" + tables,
            CSV_HEADER,
            csv_rows(results),
            plot=lambda path: plot(results, title, path),
            readme=args.readme,
            block="accuracy",
            echo=echo,
            summary=f"{note}\n{summary}",
        )

    ledger = args.out / "runs" / stem
    teacher = None
    if args.teacher:
        teacher_model = resolve_model(args.teacher, project / "yamls")
        teacher = prepare_teacher(teacher_model, data, project / stem, settings, ledger)
        note += (
            f"Models named {KD_SUFFIX} were trained with Ultralytics' distillation (distill_model, dis "
            f"{settings.dis:g}) from {Path(teacher_model).stem} trained with these settings, seed 0 (run "
            f"{teacher.name}); at equal cost they are set against the stock rows trained the same way.\n"
        )
    results = train_all(models, args.seeds, data, project / stem, settings, args.jobs, report, ledger, teacher)
    report(results, echo=True)
    return 0


def ablation_main(argv: list[str] | None = None) -> int:
    """``yolo-revcol ablation ...``, the former name of ``yolo-revcol accuracy --study ...`` (every study when none is
    named), kept so that the commands recorded in older reports still run."""
    argv = list(sys.argv[1:] if argv is None else argv)
    print("yolo-revcol ablation is now yolo-revcol accuracy --study NAME", file=sys.stderr)
    return main(argv if "--study" in argv else ["--study", *STUDIES, *argv])


if __name__ == "__main__":
    sys.exit(main())
