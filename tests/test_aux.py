"""Intermediate supervision (RevCol's ``aux`` option) inside Ultralytics: loss, gradients, inference, tasks, reload."""

from __future__ import annotations

import copy
import re
import sys
import textwrap

import pytest
import torch
import yaml
from conftest import BIN, CFG, relative_error, run, train_then_interrupt

from yolo_revcol.integration import register as reg
from yolo_revcol.integration.aux import aux_parameter_count, revcol_of
from yolo_revcol.integration.yaml_args import ModelYAMLError

AUX = 0.5


def with_aux(name: str, value=AUX) -> dict:
    """A shipped model YAML with ``aux`` added to its RevCol options."""
    d = yaml.safe_load((CFG / name).read_text())
    d["backbone"][0][3][3]["aux"] = value
    return d


@pytest.fixture(scope="module")
def aux_yaml(tmp_path_factory):
    """cfg/yolov8-revcol.yaml with aux 0.5, written as a scale-n file (yolov8n-revcol-aux.yaml)."""
    path = tmp_path_factory.mktemp("aux") / "yolov8n-revcol-aux.yaml"
    path.write_text(yaml.safe_dump(with_aux("yolov8-revcol.yaml"), sort_keys=False))
    return path


def build(d: dict, cls_name: str = "DetectionModel", nc: int = 8):
    """Build an Ultralytics model of class ``cls_name`` at scale n from a model dictionary."""
    from ultralytics.nn import tasks

    reg.register()
    return getattr(tasks, cls_name)(dict(copy.deepcopy(d), scale="n"), nc=nc, verbose=False)


def fake_batch(n: int = 2, size: int = 64, dtype=torch.float32) -> dict:
    """Images and a few boxes in Ultralytics' batch layout."""
    g = torch.Generator().manual_seed(0)
    return {
        "img": torch.rand(n, 3, size, size, generator=g, dtype=dtype),
        "batch_idx": torch.tensor([0.0, 0.0, 1.0]),
        "cls": torch.tensor([[1.0], [3.0], [5.0]]),
        "bboxes": torch.tensor([[0.3, 0.3, 0.2, 0.3], [0.7, 0.6, 0.3, 0.2], [0.5, 0.5, 0.6, 0.5]]),
    }


def with_hyp(model):
    """Attach Ultralytics' default hyperparameters, which the loss reads."""
    from ultralytics.cfg import get_cfg

    model.args = get_cfg()
    return model


def test_training_loss_is_main_plus_weighted_aux_and_heads_learn():
    # Seeded: at some random inits the assigner gives the aux head's stride-32 box branch no anchor of this 64 px
    # batch (about 1 seed in 10), and that branch then rightly gets no gradient.
    torch.manual_seed(0)
    model = with_hyp(build(with_aux("yolov8-revcol.yaml"))).train()
    revcol = revcol_of(model)
    assert revcol.supervised_columns == [0] and revcol.aux_weights == [AUX] and len(revcol.aux_heads) == 1
    assert revcol.aux_heads[0].nc == model.model[-1].nc == 8
    batch = fake_batch()
    total, items = model.loss(batch)
    total.sum().backward()
    assert all(p.grad is not None and p.grad.abs().sum() > 0 for p in revcol.aux_heads.parameters() if p.requires_grad)

    # The same forward, split by hand: the model's own criterion on the main and the auxiliary predictions.
    preds = model(batch["img"])
    ((aux_weight, aux_preds),) = revcol.pop_aux_outputs()
    main, main_items = model.criterion(preds, batch)
    aux, _ = model.criterion(aux_preds, batch)
    torch.testing.assert_close(total, main + aux_weight * aux)
    assert aux.sum() > 0 and set(items) == set(main_items)  # logged items stay the main head's box/cls/dfl
    model.eval()
    with torch.no_grad():
        model(batch["img"])
    assert revcol.pop_aux_outputs() == []  # eval runs no auxiliary head


def test_detection_model_gradients_reversible_equal_plain_fp64():
    torch.manual_seed(0)
    model = with_hyp(build(with_aux("yolov8-revcol.yaml"))).double().train()
    batch = fake_batch(dtype=torch.float64)

    def grads():
        model.zero_grad(set_to_none=True)
        model.loss(batch)[0].sum().backward()
        return [p.grad if p.grad is not None else torch.zeros_like(p) for p in model.parameters()]

    reversible = grads()
    revcol_of(model).reversible = False
    plain = grads()
    assert relative_error(plain, reversible) < 1e-9


def test_inference_model_has_no_aux_head(aux_yaml, tmp_path, monkeypatch):
    from ultralytics import YOLO
    from ultralytics.utils.torch_utils import get_flops

    aux_model, plain_model = build(with_aux("yolov8-revcol.yaml")), build(with_aux("yolov8-revcol.yaml", 0.0))
    assert aux_parameter_count(aux_model) > 0 and aux_parameter_count(plain_model) == 0
    count = lambda m: sum(p.numel() for p in m.parameters())  # noqa: E731
    assert count(aux_model) == count(plain_model) + aux_parameter_count(aux_model)
    aux_model.eval().fuse(verbose=False)
    plain_model.eval().fuse(verbose=False)
    assert count(aux_model) == count(plain_model) and aux_parameter_count(aux_model) == 0
    assert get_flops(aux_model, 640) == get_flops(plain_model, 640)

    from yolo_revcol.tools.compare import summarize

    with_heads, without = summarize(aux_yaml, "aux", 640), summarize(CFG / "yolov8n-revcol.yaml", "plain", 640)
    assert (with_heads.params, with_heads.gflops) == (without.params, without.gflops) and with_heads.train_only > 0

    # The exported graph is the inference model's: as many weights as the same model without aux.
    import onnx

    monkeypatch.chdir(tmp_path)  # exports of YAML-built models land in the working directory
    sizes = []
    for yaml_path in (aux_yaml, CFG / "yolov8n-revcol.yaml"):
        path = YOLO(str(yaml_path)).export(format="onnx", imgsz=64, simplify=False, verbose=False)
        sizes.append(sum(int(torch.tensor(t.dims).prod()) for t in onnx.load(path).graph.initializer))
    assert sizes[0] == sizes[1]


@pytest.mark.parametrize(
    "name, cls_name, task",
    [
        ("yolov8-revcol-seg.yaml", "SegmentationModel", "segment"),
        ("yolov8-revcol-pose.yaml", "PoseModel", "pose"),
        ("yolov8-revcol-obb.yaml", "OBBModel", "obb"),
        ("yolov8-revcol-cls.yaml", "ClassificationModel", "classify"),
    ],
)
def test_other_tasks_refuse_aux_naming_the_task(name, cls_name, task):
    d = with_aux(name)
    if cls_name == "ClassificationModel":
        from ultralytics.nn.tasks import ClassificationModel

        reg.register()
        with pytest.raises(
            ModelYAMLError, match=rf"layer 0 \(RevCol\): option 'aux' \(0.5\).*not with the {task} task"
        ):
            ClassificationModel(dict(d, scale="n"), nc=8, verbose=False)
        return
    with pytest.raises(ModelYAMLError, match=rf"layer 0 \(RevCol\): option 'aux' \(0.5\).*not with the {task} task"):
        build(d, cls_name)


@pytest.mark.parametrize("value, match", [(-1, "'aux' must be a number >= 0.*got -1"), ("on", "got 'on'")])
def test_bad_aux_in_yaml_names_layer_and_value(value, match):
    with pytest.raises(ModelYAMLError, match=rf"layer 0 \(RevCol\).*{match}"):
        build(with_aux("yolov8-revcol.yaml", value))


@pytest.mark.slow
def test_cli_train_interrupt_resume_and_safe_reload(aux_yaml, tiny_data, tmp_path):
    """`yolo train` with the option in the YAML only; the checkpoint resumes and reloads in fresh processes."""
    last = train_then_interrupt(aux_yaml, tiny_data, tmp_path, "aux")
    run([str(BIN / "yolo"), "train", "resume", f"model={last}"])
    assert len((tmp_path / "aux" / "results.csv").read_text().strip().splitlines()) == 1 + 2

    check = textwrap.dedent(
        """
        import copy, sys
        from ultralytics import YOLO
        from yolo_revcol.integration.aux import aux_parameter_count
        model = YOLO(sys.argv[1])
        print("aux params", aux_parameter_count(model.model))  # kept in the checkpoint, for resume
        inference = copy.deepcopy(model.model).fuse(verbose=False)
        print("inference params", sum(p.numel() for p in inference.parameters()))
        model.val(data=sys.argv[2], imgsz=64, batch=4, workers=0, plots=False)
        """
    )
    for env in ({}, {"ULTRALYTICS_SAFE_LOAD": "1"}):
        out = run([sys.executable, "-c", check, str(last), str(tiny_data)], env=env)
        text = out.stdout + out.stderr
        assert int(re.search(r"aux params (\d+)", text).group(1)) > 0
        inference = int(re.search(r"inference params (\d+)", text).group(1))
        validated = int(
            re.search(r"summary \(fused\): [\d,]+ layers, ([\d,]+) parameters", text).group(1).replace(",", "")
        )
        assert validated == inference  # val ran the inference model, without the auxiliary heads
