"""Ultralytics' optimiser keeps RevCol's layer scales and alphas out of weight decay, grouped as a norm's weight."""

from __future__ import annotations

import pytest
import torch
from conftest import CFG

from yolo_revcol.nn import ChannelScale, RevCol


@pytest.fixture(scope="module")
def convnext_yaml(tmp_path_factory):
    """yolov8n-revcol with the convnext block, which has layer scales besides the alphas."""
    text = (CFG / "yolov8-revcol.yaml").read_text().replace("block: c2f", "block: convnext")
    path = tmp_path_factory.mktemp("cfg") / "yolov8n-revcol-convnext.yaml"
    path.write_text(text)
    return path


def norm_grouped(model: torch.nn.Module) -> list[torch.Tensor]:
    """The weights Ultralytics' grouping would spare if RevCol's scales were norms, in model order."""
    norms = tuple(v for k, v in torch.nn.__dict__.items() if "Norm" in k)
    return [
        p
        for name, m in model.named_modules()
        for pname, p in m.named_parameters(recurse=False)
        if "bias" not in f"{name}.{pname}" and isinstance(m, norms + (ChannelScale,))
    ]


@pytest.mark.parametrize("block", ["c2f", "convnext"])
@pytest.mark.parametrize("name", ["SGD", "AdamW", "MuSGD"])
def test_trainer_optimizer_leaves_scales_undecayed(tiny_data, convnext_yaml, tmp_path, block, name):
    from ultralytics.models.yolo.detect import DetectionTrainer

    cfg = CFG / "yolov8n-revcol.yaml" if block == "c2f" else convnext_yaml
    overrides = dict(model=str(cfg), data=str(tiny_data), device="cpu", plots=False, project=str(tmp_path))
    trainer = DetectionTrainer(overrides=overrides)
    model = trainer.get_model(cfg=str(cfg), verbose=False)
    revcol = model.model[0]
    scales = [m.weight for m in revcol.modules() if isinstance(m, ChannelScale)]
    alphas = 4 * (len(revcol.columns) - 1)
    assert len(scales) == alphas if block == "c2f" else len(scales) > alphas  # convnext adds layer scales
    assert not any(isinstance(m, torch.nn.LayerNorm) for m in revcol.modules() if isinstance(m, ChannelScale))

    optimizer = trainer.build_optimizer(model, name=name, lr=0.01, decay=5e-4)
    spared = {id(p) for p in scales}
    for group in optimizer.param_groups:
        if {id(p) for p in group["params"]} & spared:
            assert group["weight_decay"] == 0.0 and group["param_group"] == "bn"
    # Exactly the groups Ultralytics would build with the scales counted as norms, in the same order (so optimiser
    # states saved when ChannelScale was an nn.LayerNorm subclass resume into the same places).
    undecayed = [p for g in optimizer.param_groups if g["param_group"] == "bn" for p in g["params"]]
    expected = norm_grouped(model)
    assert sorted(map(id, undecayed)) == sorted(map(id, expected))
    for group in optimizer.param_groups:
        if group["param_group"] == "bn":
            order = [i for i, p in enumerate(expected) if any(p is q for q in group["params"])]
            assert order == sorted(order)
    assert sum(len(g["params"]) for g in optimizer.param_groups) == len(list(model.parameters()))


def test_no_weight_decay_names_every_scale_and_nothing_else():
    model = RevCol(3, [8, 16, 24, 32], [1, 1, 2, 1], columns=3, mlp_ratio=2)
    names = model.no_weight_decay()
    # Column 0: 5 layer scales; columns 1 and 2: 5 layer scales and 4 alphas each.
    assert len(names) == 5 + 2 * 9
    assert all(name.endswith("gamma.weight") or ".alphas." in name for name in names)
    model.fuse()  # folded layer scales are no parameters any more
    assert all(".alphas." in name for name in model.no_weight_decay())


class LegacyChannelScale(torch.nn.LayerNorm):
    """ChannelScale as it was defined when it derived from nn.LayerNorm (what older checkpoints pickled)."""

    __module__, __qualname__ = "yolo_revcol.nn.layers", "ChannelScale"  # the names pickle records

    def __init__(self, channels: int, init_value: float = 1.0):
        super().__init__(channels, bias=False)
        torch.nn.init.constant_(self.weight, init_value)
        self.init_value = init_value


class LegacyReversibleScale(LegacyChannelScale):
    __module__, __qualname__ = "yolo_revcol.nn.layers", "ReversibleScale"

    def __init__(self, channels: int, init_value: float = 0.5, min_abs: float = 1e-3):
        super().__init__(channels, init_value)
        self.min_abs = min_abs


def test_modules_pickled_as_layernorm_subclasses_still_load(monkeypatch, tmp_path):
    from yolo_revcol.nn import layers

    model = RevCol(3, [8, 16, 24, 32], [1, 1, 2, 1], columns=3, mlp_ratio=2).eval()
    with torch.no_grad():
        for p in model.no_weight_decay():
            model.get_parameter(p).uniform_(0.3, 1.0)
    x = torch.randn(1, 3, 64, 64)
    expected, keys = model(x), list(model.state_dict())
    # Swap every scale for its legacy form, pickled under the names the classes have in the package.
    monkeypatch.setattr(layers, "ChannelScale", LegacyChannelScale)
    monkeypatch.setattr(layers, "ReversibleScale", LegacyReversibleScale)
    for name, m in list(model.named_modules()):
        if isinstance(m, ChannelScale):
            kind = LegacyReversibleScale if hasattr(m, "min_abs") else LegacyChannelScale
            old = kind(m.weight.numel(), m.init_value)
            old.weight.data.copy_(m.weight)
            parent, _, child = name.rpartition(".")
            setattr(model.get_submodule(parent), child, old)
    torch.save(model, tmp_path / "legacy.pt")
    monkeypatch.undo()

    loaded = torch.load(tmp_path / "legacy.pt", weights_only=False)
    scales = [m for m in loaded.modules() if type(m).__name__ in ("ChannelScale", "ReversibleScale")]
    assert scales and all(type(m) in (layers.ChannelScale, layers.ReversibleScale) for m in scales)
    assert all(hasattr(m, "normalized_shape") for m in scales)  # they were pickled as LayerNorms
    assert list(loaded.state_dict()) == keys
    assert all(torch.equal(a, b) for a, b in zip(loaded(x), expected))
    loaded.load_state_dict(model.state_dict())  # and state dicts of either layout load into the other
