"""A checkpoint saved before ``checkpoint_every`` was removed loads, computes what it computed then, and trains.

The fixture (made by tests/fixtures/make_revcol_pre_checkpoint_every_removal.py at commit 842b4a0) is a tiny
yolov8-revcol in Ultralytics' best.pt format whose pickled RevCol holds ``checkpoint_every=2`` and whose model YAML
names the option, as the paper's YAMLs did; its sibling ``*_io.pt`` holds a fixed input and the outputs of then.
"""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from conftest import relative_error

import yolo_revcol
from yolo_revcol import RevCol

FIXTURES = Path(__file__).resolve().parent / "fixtures"
CKPT = FIXTURES / "revcol_pre_checkpoint_every_removal.pt"


@pytest.fixture(scope="module")
def then() -> dict:
    """The input and what the model computed from it before the change (eval output, training-mode backbone)."""
    return torch.load(FIXTURES / "revcol_pre_checkpoint_every_removal_io.pt", weights_only=True)


def load():
    """The fixture through Ultralytics' ``load_checkpoint``: (model, checkpoint dict)."""
    from ultralytics.nn.tasks import load_checkpoint

    yolo_revcol.register()
    return load_checkpoint(str(CKPT))


def test_torch_safe_load_unpickles_it_without_the_removed_attribute():
    from ultralytics.nn.tasks import torch_safe_load

    yolo_revcol.register()
    ckpt, _ = torch_safe_load(str(CKPT))
    layer = ckpt["model"].model[0]
    assert isinstance(layer, RevCol) and "checkpoint_every" not in vars(layer)  # dropped on unpickling
    assert ckpt["model"].yaml["backbone"][0][3][-1]["checkpoint_every"] == 2  # the YAML it was built from names it


def test_load_checkpoint_and_yolo_compute_what_they_computed_before(then):
    from ultralytics import YOLO

    model, _ = load()
    yolo = YOLO(str(CKPT)).model
    with torch.no_grad():
        for m in (model, yolo):
            torch.testing.assert_close(m.eval()(then["input"])[0], then["output"], rtol=1e-5, atol=1e-6)
        maps = model.model[0].train()(then["input"])  # training mode: BatchNorms on batch statistics
    for a, b in zip(maps, then["train_maps"]):
        torch.testing.assert_close(a, b, rtol=1e-5, atol=1e-6)


def test_reversible_training_step_on_it_equals_plain_backprop(then):
    model, _ = load()
    model = model.double().train().requires_grad_(True)
    x = then["input"].double()
    g = torch.Generator().manual_seed(0)

    def step(reversible: bool) -> list[torch.Tensor]:
        model.model[0].reversible = reversible
        model.zero_grad(set_to_none=True)
        out = model(x)
        assert (type(model.model[0](x)[0].grad_fn).__name__ == "ReversibleColumnsBackward") == reversible
        g.manual_seed(0)
        loss = sum((t * torch.randn(t.shape, generator=g, dtype=t.dtype)).sum() for t in (out["boxes"], out["scores"]))
        loss.backward()
        assert all(p.grad is not None for p in model.model[0].parameters())
        return [torch.zeros_like(p) if p.grad is None else p.grad for p in model.parameters()]

    reversible, plain = step(True), step(False)
    assert float(model.model[0].reconstruction_error) == 0.0
    assert relative_error(plain, reversible) <= 1e-9


def test_rebuilding_from_its_yaml_warns_about_the_removed_option_and_takes_every_tensor():
    """Fine-tuning from a checkpoint rebuilds the model from its YAML, which still names ``checkpoint_every``."""
    from ultralytics.nn.tasks import DetectionModel

    model, _ = load()
    with pytest.warns(FutureWarning, match=r"layer 0 \(RevCol\): argument 'checkpoint_every' \(2\) is ignored"):
        fresh = DetectionModel(model.yaml, nc=2, verbose=False)
    fresh.load_state_dict(model.state_dict())  # strict: the same architecture, tensor for tensor
