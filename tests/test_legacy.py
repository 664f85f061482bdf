"""Checkpoints from earlier releases load with today's defaults: ``checkpoint_every`` 0 that no YAML chose -> auto."""

from __future__ import annotations

import copy

import pytest
import torch
import yaml
from conftest import CFG


def _model(options: dict):
    """yolov8n-revcol (8 classes) with ``options`` merged into its RevCol row, as Ultralytics builds it."""
    from ultralytics.nn.tasks import DetectionModel

    import yolo_revcol

    yolo_revcol.register()
    d = yaml.safe_load((CFG / "yolov8-revcol.yaml").read_text())
    d["backbone"][0][3][3].update(options)
    return DetectionModel(dict(d, scale="n"), nc=8, verbose=False)


def _save_and_load(model, tmp_path, saved_value):
    """Save ``model`` as a checkpoint from before the "auto" default (RevCol holding ``saved_value``) and load it."""
    from ultralytics.nn.tasks import load_checkpoint

    old = copy.deepcopy(model)
    old.model[0].checkpoint_every = saved_value
    path = tmp_path / "old.pt"
    torch.save({"model": old, "ema": copy.deepcopy(old), "epoch": 3}, path)
    loaded, ckpt = load_checkpoint(str(path))
    return loaded.model[0].checkpoint_every, ckpt["ema"].model[0].checkpoint_every


def test_old_default_zero_loads_as_auto(tmp_path):
    model = _model({})
    assert model.model[0].checkpoint_every == "auto"  # today's default
    assert _save_and_load(model, tmp_path, 0) == ("auto", "auto")


@pytest.mark.parametrize("value", [0, 2])
def test_a_value_the_yaml_set_is_kept(tmp_path, value):
    model = _model({"checkpoint_every": value})
    assert _save_and_load(model, tmp_path, value) == (value, value)


def test_an_explicit_nonzero_pickled_value_is_kept_even_without_yaml_option(tmp_path):
    assert _save_and_load(_model({}), tmp_path, 3) == (3, 3)
