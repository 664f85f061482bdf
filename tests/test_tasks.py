"""Every Ultralytics task and YOLO11 with a RevCol backbone: segment, pose, obb, classify and yolo11-revcol.

End to end at tiny size (a few 64 px images, one epoch): for each model YAML one fresh process runs ``yolo <task>
train``, ``val``, ``predict`` and ``export format=onnx`` through Ultralytics' CLI entry point (the function the
``yolo`` command calls; one process instead of four keeps the file within a few minutes on 2 cores), then the ONNX
file is checked numerically against the PyTorch model. In-process: every YAML builds at all five scales with the
sizes its summary comments state, its RevCol row is the one of cfg/yolov8-revcol.yaml, and bad rows fail clearly.
"""

from __future__ import annotations

import contextlib
import copy
import json
import re
import sys
import textwrap
from pathlib import Path

import pytest
import torch
import yaml
from conftest import CFG, ROOT, run
from model_yamls import DERIVED, OWN_ROW, REFERENCE, out_of_step, scaled_path

from yolo_revcol.data.synthetic import CLASS_NAMES, generate_dataset

IMGSZ = 64
SCALES = "nsmlx"
# name -> (model YAML at scale n, relative to the repository as in the README, Ultralytics task, dataset)
CASES = {
    "segment": ("cfg/yolov8n-revcol-seg.yaml", "segment", "segment"),
    "pose": ("cfg/yolov8n-revcol-pose.yaml", "pose", "pose"),
    "obb": ("cfg/yolov8n-revcol-obb.yaml", "obb", "obb"),
    "classify": ("cfg/yolov8n-revcol-cls.yaml", "classify", "classify"),
    "yolo11": ("cfg/yolo11n-revcol.yaml", "detect", "detect"),
}
TASK_OF = dict(zip(DERIVED + OWN_ROW, ("segment", "pose", "obb", "classify", "detect")))
DATASET_YAMLS = {
    t: CFG / "datasets" / f"revcol-shapes{s}.yaml"
    for t, s in (("detect", ""), ("segment", "-seg"), ("pose", "-pose"), ("obb", "-obb"))
}

# Runs each list of CLI arguments in sys.argv[1] (JSON) as `yolo <args>` does, one after the other in this process.
CLI_STEPS = textwrap.dedent(
    """
    import json, sys
    from ultralytics.cfg import entrypoint
    for args in json.loads(sys.argv[1]):
        assert not any(" " in a for a in args), args  # entrypoint(debug=...) splits on spaces
        print(f"$ yolo {' '.join(args)}", flush=True)
        entrypoint(debug=" ".join(["yolo", *args]))
    """
)


@pytest.fixture(scope="session")
def task_data(tmp_path_factory) -> dict[str, Path]:
    """Tiny datasets for every task and the ``data=`` argument of each: a dataset YAML, or a folder for classify.

    The YAMLs are the shipped ones (names, kpt_shape, flip_idx, kpt_names) pointed at the tiny data.
    """
    root = tmp_path_factory.mktemp("task_data")
    data = {}
    for task in ("detect", "segment", "pose", "obb"):
        folder = generate_dataset(root / task, task=task, train=8, val=4, imgsz=IMGSZ, seed=0)
        cfg = yaml.safe_load(DATASET_YAMLS[task].read_text())
        cfg.update(path=str(folder), download=None)
        data[task] = root / f"{task}.yaml"
        data[task].write_text(yaml.safe_dump(cfg, sort_keys=False))
    data["classify"] = generate_dataset(root / "classify", task="classify", train=16, val=8, imgsz=IMGSZ, seed=0)
    return data


def first_image(data: Path) -> Path:
    """First validation image of a tiny dataset given as its YAML or (classify) its folder."""
    folder = data if data.is_dir() else Path(yaml.safe_load(data.read_text())["path"]) / "images"
    return sorted((folder / "val").rglob("*.*g"))[0]


@pytest.fixture(scope="module", params=list(CASES))
def cli_run(request, task_data, tmp_path_factory) -> dict:
    """Train, validate, predict with and export one model through the CLI in a fresh process; return what it made."""
    model, task, dataset = CASES[request.param]
    project = tmp_path_factory.mktemp(f"runs_{request.param}")
    data, image = task_data[dataset], first_image(task_data[dataset])
    weights = project / "train" / "weights" / "best.pt"
    common = [f"imgsz={IMGSZ}", "batch=4", "workers=0", "device=cpu", "plots=False", f"project={project}"]
    steps = [
        [task, "train", f"model={model}", f"data={data}", "epochs=1", "seed=0", "name=train", *common],
        [task, "val", f"model={weights}", f"data={data}", "name=val", *common],
        [task, "predict", f"model={weights}", f"source={image}", "conf=0.001", "save=True", "name=predict", *common],
        ["export", f"model={weights}", "format=onnx", f"imgsz={IMGSZ}"],
    ]
    proc = run([sys.executable, "-c", CLI_STEPS, json.dumps(steps)], cwd=ROOT)
    return dict(
        name=request.param, task=task, weights=weights, project=project, image=image, log=proc.stdout + proc.stderr
    )


def test_train_val_predict_export_through_the_cli(cli_run):
    """Each step ran and left its files; the checkpoint holds a RevCol model of the right task."""
    weights = cli_run["weights"]
    assert weights.is_file() and weights.with_suffix(".onnx").is_file()
    ckpt = torch.load(weights, weights_only=False)
    assert type(ckpt["model"].model[0]).__name__ == "RevCol"
    assert ckpt["train_args"]["task"] == cli_run["task"]
    val_log = cli_run["log"][cli_run["log"].index(f"$ yolo {cli_run['task']} val") :]
    assert "top1_acc" in val_log if cli_run["task"] == "classify" else re.search(r"^\s+all\s+4\s", val_log, re.M)
    saved = list((cli_run["project"] / "predict").glob(f"{cli_run['image'].stem}.*"))  # a .png is saved as .jpg
    assert len(saved) == 1 and saved[0].stat().st_size > 0


def test_onnx_export_matches_pytorch(cli_run):
    """ONNX Runtime and the fused float32 PyTorch model give the same outputs (every output: predictions, protos).

    Tolerance: 1e-4 relative plus 1e-6 absolute. Boxes and keypoints are in pixels (0..64), so that is well under
    0.01 px; scores of a one-epoch model are tiny (class-bias prior, ~1e-5), where 1e-6 still compares their digits.
    """
    ort = pytest.importorskip("onnxruntime")
    from ultralytics import YOLO

    model = YOLO(str(cli_run["weights"])).model.float().fuse().eval()
    x = torch.rand(1, 3, IMGSZ, IMGSZ, generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        expected = model(x)[0]
    expected = list(expected) if isinstance(expected, (list, tuple)) else [expected]
    session = ort.InferenceSession(str(cli_run["weights"].with_suffix(".onnx")), providers=["CPUExecutionProvider"])
    got = session.run(None, {session.get_inputs()[0].name: x.numpy()})
    assert len(got) == len(expected)
    for g, e in zip(got, expected):
        torch.testing.assert_close(torch.from_numpy(g), e, rtol=1e-4, atol=1e-6)


def revcol_rows(path: Path) -> tuple[list, list]:
    """The RevCol row and the Index rows' (channels, index) pairs of a model YAML."""
    d = yaml.safe_load(path.read_text())
    return d["backbone"][0], sorted(tuple(r[3]) for r in d["backbone"] if r[2] == "Index")


@pytest.mark.parametrize("name", DERIVED)
def test_revcol_row_is_the_detection_yamls(name):
    """Every task YAML uses cfg/yolov8-revcol.yaml's RevCol row and Index rows verbatim (sync: model_yamls --sync)."""
    row, index = revcol_rows(CFG / name)
    ref_row, ref_index = revcol_rows(CFG / REFERENCE)
    assert row == ref_row and set(index) <= set(ref_index)
    assert not out_of_step(CFG / name, CFG / REFERENCE)


@pytest.mark.parametrize("name", OWN_ROW)
def test_own_row_yamls_share_every_option_but_the_widths(name):
    """yolo11-revcol is narrower (YOLO11's backbone is lighter) but built from the same blocks, columns and options."""
    row, index = revcol_rows(CFG / name)
    ref_row, _ = revcol_rows(CFG / REFERENCE)
    assert row[3][1:] == ref_row[3][1:] and row[3][0] != ref_row[3][0]
    assert [c for c, _ in index] == row[3][0][1:]  # each Index row names its level's (unscaled) channels


@contextlib.contextmanager
def no_weight_init():
    """Skip random weight initialisation: sizes do not depend on it, and it is most of the build time at scale x.

    Only for counting: the weights stay uninitialised memory, whose denormals would make a forward pass crawl.
    """
    with pytest.MonkeyPatch.context() as mp:
        for fn in (
            "kaiming_uniform_",
            "kaiming_normal_",
            "trunc_normal_",
            "normal_",
            "uniform_",
            "constant_",
            "zeros_",
            "ones_",
        ):
            mp.setattr(torch.nn.init, fn, lambda tensor, *args, **kwargs: tensor)
        yield


@pytest.mark.parametrize("name", DERIVED + OWN_ROW)
def test_every_scale_builds_with_the_sizes_its_summary_states(name):
    """All five scales build, for the task Ultralytics reads from the YAML (and, for -seg/-pose/-obb/-cls, from the
    file name alone), with the layers, parameters and gradients their summary comments state. The comments' GFLOPs
    need whole models (a stride pass each): ``python tests/model_yamls.py --check`` covers them."""
    from ultralytics.nn import tasks

    from yolo_revcol.integration.register import register

    register()
    path = CFG / name
    summaries = dict(re.findall(r"^  ([nslmx]): \[.*\] # .* summary: (.*)$", path.read_text(), re.M))
    assert sorted(summaries) == sorted(SCALES)
    for scale in SCALES:
        scaled = scaled_path(path, scale)
        assert tasks.guess_model_scale(scaled) == scale
        d = tasks.yaml_model_load(scaled)
        assert d["scale"] == scale and tasks.guess_model_task(d) == TASK_OF[name]
        if TASK_OF[name] != "detect":
            assert tasks.guess_model_task(str(scaled)) == TASK_OF[name]
        with no_weight_init():
            layers, _ = tasks.parse_model(copy.deepcopy(d), ch=3, verbose=False)  # no stride pass
        n_layers = sum(1 for m in layers.modules() if not m._modules)
        params = sum(p.numel() for p in layers.parameters())
        grads = sum(p.numel() for p in layers.parameters() if p.requires_grad)
        assert summaries[scale].startswith(f"{n_layers} layers, {params} parameters, {grads} gradients"), (
            scale,
            summaries[scale],
        )


@pytest.mark.parametrize(
    "name, layer, row, match",
    [
        (
            "yolov8-revcol-cls.yaml",
            1,
            [0, 1, "Classify", ["nc"]],
            r"layer 1 \(Classify\): takes RevCol layer 0's list of maps directly; "
            r"select one map first with an Index row",
        ),
        (
            "yolov8-revcol-seg.yaml",
            3,
            [0, 1, "Index", [256, 3]],
            r"layer 3 \(Index\): channels 256 do not match RevCol level 3, which has 512",
        ),
    ],
)
def test_bad_rows_fail_with_the_layer_named(name, layer, row, match):
    """A head row fed the RevCol list directly, or an Index row with the wrong channels, names layer and value."""
    from ultralytics.nn import tasks

    from yolo_revcol.integration.register import register
    from yolo_revcol.integration.yaml_args import ModelYAMLError

    register()
    d = tasks.yaml_model_load(scaled_path(CFG / name, "n"))
    (d["backbone"] + d["head"])[layer][:] = row
    model_class = tasks.ClassificationModel if TASK_OF[name] == "classify" else tasks.SegmentationModel
    with pytest.raises(ModelYAMLError, match=match):
        model_class(d, verbose=False)


def test_classify_dataset_folder_is_what_ultralytics_expects(task_data):
    """check_cls_dataset takes the generated folder and numbers classes as cfg/datasets/revcol-shapes-cls.yaml says."""
    from ultralytics.data.utils import check_cls_dataset

    data = check_cls_dataset(task_data["classify"])
    cls_yaml = yaml.safe_load((CFG / "datasets" / "revcol-shapes-cls.yaml").read_text())
    assert data["names"] == cls_yaml["names"] == dict(enumerate(sorted(CLASS_NAMES)))
    assert Path(data["train"]) == task_data["classify"] / "train" and Path(data["val"]) == task_data["classify"] / "val"
