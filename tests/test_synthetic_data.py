"""Tests for the synthetic shapes dataset: determinism, label validity, reuse, CLI, and Ultralytics' download hook."""

from __future__ import annotations

import shutil
import sys
from pathlib import Path

import numpy as np
import pytest
import yaml

from conftest import CFG, ROOT, run
from yolo_revcol.data import synthetic
from yolo_revcol.data.synthetic import CLASS_NAMES, MIN_VISIBLE, generate_detection_dataset, render_scene

TINY = dict(train=8, val=4, imgsz=64)
DATA_YAML = CFG / "datasets" / "revcol-shapes.yaml"


def files(root: Path) -> dict[str, bytes]:
    """Return every image and label file under a dataset root, by relative path."""
    return {str(p.relative_to(root)): p.read_bytes() for p in sorted(root.rglob("*")) if p.suffix in {".jpg", ".txt"}}


def read_labels(root: Path, split: str) -> list[list[float]]:
    """Return all label rows of a split."""
    label_files = (root / "labels" / split).glob("*.txt")
    return [list(map(float, line.split())) for f in label_files for line in f.read_text().splitlines()]


def test_yaml_names_match_class_names():
    """The dataset YAML lists exactly CLASS_NAMES, in order, and generates into the resolved ``path``."""
    cfg = yaml.safe_load(DATA_YAML.read_text())
    assert cfg["names"] == dict(enumerate(CLASS_NAMES))
    assert cfg["path"] == "revcol-shapes" and cfg["train"] == "images/train" and cfg["val"] == "images/val"
    assert "generate_detection_dataset(yaml[\"path\"]" in cfg["download"]


def test_deterministic_and_order_independent(tmp_path):
    """Same arguments give byte-identical files; an image does not depend on how many others are generated."""
    a = generate_detection_dataset(tmp_path / "a", **TINY, seed=3)
    b = generate_detection_dataset(tmp_path / "b", **TINY, seed=3)
    fa, fb = files(a), files(b)
    assert len(fa) == 2 * (TINY["train"] + TINY["val"])
    assert fa == fb
    c = generate_detection_dataset(tmp_path / "c", train=3, val=1, imgsz=64, seed=3)
    assert files(c) == {k: v for k, v in fa.items() if k in files(c)} and len(files(c)) == 8
    d = generate_detection_dataset(tmp_path / "d", **TINY, seed=4)
    assert files(d) != fa


def test_labels_valid(tmp_path):
    """Labels are YOLO rows with valid class ids and boxes inside the image; one image and label file per sample."""
    root = generate_detection_dataset(tmp_path / "shapes", **TINY)
    assert root == tmp_path / "shapes" and root.is_absolute()
    boxes = 0
    for split in ("train", "val"):
        images = sorted(p.stem for p in (root / "images" / split).glob("*.jpg"))
        labels = sorted(p.stem for p in (root / "labels" / split).glob("*.txt"))
        assert images == labels and len(images) == TINY[split]
        for c, cx, cy, w, h in read_labels(root, split):
            assert c == int(c) and 0 <= c < len(CLASS_NAMES)
            assert 0 < w <= 1 and 0 < h <= 1 and 0 < cx < 1 and 0 < cy < 1
            assert cx - w / 2 >= -1e-6 and cy - h / 2 >= -1e-6 and cx + w / 2 <= 1 + 1e-6 and cy + h / 2 <= 1 + 1e-6
            boxes += 1
    assert boxes >= TINY["train"] + TINY["val"]  # 1-8 objects per image, rarely all hidden
    assert [p.name for p in tmp_path.iterdir()] == ["shapes"]  # no temporary folders left behind


def test_scene_visibility():
    """Labels follow the visible pixels: hidden objects are dropped, boxes are the visible extent."""
    rng = np.random.default_rng(0)
    dropped = 0
    for _ in range(20):
        scene = render_scene(rng, 96)
        assert scene.image.shape == (96, 96, 3) and scene.image.dtype == np.uint8
        lines = synthetic.scene_labels(scene)
        labelled = [inst for inst in scene.instances if inst.box and inst.visible >= MIN_VISIBLE]
        dropped += len(scene.instances) - len(lines)
        assert len(lines) <= len(labelled)
        for k, inst in enumerate(scene.instances, 1):
            assert inst.area == inst.mask.sum() > 0 and 0 <= inst.visible <= 1
            visible = scene.id_map == k
            assert visible.sum() == round(inst.visible * inst.area)
            if inst.box:
                ys, xs = np.nonzero(visible)
                assert inst.box == (xs.min(), ys.min(), xs.max() + 1, ys.max() + 1)
    assert dropped > 0  # occlusion happens at these densities


def test_reuse_regenerate_and_refuse(tmp_path):
    """A complete dataset is reused; other arguments or overwrite regenerate it; a foreign folder is left alone."""
    root = generate_detection_dataset(tmp_path / "shapes", **TINY)
    sentinel = root / "sentinel"
    sentinel.touch()
    assert generate_detection_dataset(root, **TINY) == root and sentinel.exists()  # reused, not regenerated

    generate_detection_dataset(root, **{**TINY, "val": 2})  # other arguments: regenerated cleanly
    assert not sentinel.exists() and len(list((root / "images" / "val").glob("*.jpg"))) == 2

    sentinel.touch()
    generate_detection_dataset(root, **{**TINY, "val": 2}, overwrite=True)
    assert not sentinel.exists()

    (root / "images" / "val" / "000000.jpg").unlink()  # damaged after generation: not complete any more
    generate_detection_dataset(root, **{**TINY, "val": 2})
    assert (root / "images" / "val" / "000000.jpg").exists()

    foreign = tmp_path / "mine"
    foreign.mkdir()
    (foreign / "keep.txt").write_text("not a dataset")
    with pytest.raises(FileExistsError):
        generate_detection_dataset(foreign, **TINY)
    assert (foreign / "keep.txt").exists()
    with pytest.raises(ValueError):
        generate_detection_dataset(tmp_path / "bad", train=1, val=1, imgsz=8)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["mine", "shapes"]


def test_cli(tmp_path):
    """``python -m yolo_revcol.data.synthetic`` generates, prints a summary, and reuses a complete dataset."""
    out = tmp_path / "cli"
    cmd = [sys.executable, "-m", "yolo_revcol.data.synthetic", "--out", str(out), "--train", "3", "--val", "2"]
    cmd += ["--imgsz", "64", "--seed", "1"]
    proc = run(cmd, cwd=ROOT, env={"PYTHONPATH": str(ROOT)})
    assert "train 3 images" in proc.stdout and "val 2 images" in proc.stdout and "generated in" in proc.stdout
    assert "RuntimeWarning" not in proc.stderr  # the package does not import the module before runpy runs it
    assert files(out) == files(generate_detection_dataset(tmp_path / "api", train=3, val=2, imgsz=64, seed=1))
    assert "reused" in run(cmd, cwd=ROOT, env={"PYTHONPATH": str(ROOT)}).stdout


def test_check_det_dataset_runs_download_script(tmp_path, monkeypatch):
    """Ultralytics' check_det_dataset runs the YAML's download script into its datasets dir, offline.

    The datasets dir is pointed at tmp_path, and the generator is wrapped to make a tiny dataset, so the test never
    touches the user's real datasets dir and stays fast.
    """
    import ultralytics.data.utils as du
    from ultralytics.data import YOLODataset

    calls = []

    def tiny(root, **kwargs):
        calls.append((root, kwargs))
        return generate(root, **TINY)

    generate = synthetic.generate_detection_dataset
    monkeypatch.setattr(synthetic, "generate_detection_dataset", tiny)  # the script imports it from the module
    monkeypatch.setattr(du, "DATASETS_DIR", tmp_path / "datasets")
    monkeypatch.setattr(du, "check_font", lambda *a, **k: None)  # would try to download Arial.ttf
    (tmp_path / "cwd").mkdir()
    monkeypatch.chdir(tmp_path / "cwd")  # a relative 'path' that exists in the working directory would win
    data_yaml = shutil.copy(DATA_YAML, tmp_path / "revcol-shapes.yaml")

    data = du.check_det_dataset(data_yaml)
    root = tmp_path / "datasets" / "revcol-shapes"
    assert len(calls) == 1 and Path(calls[0][0]) == root and calls[0][1] == dict(train=400, val=100, imgsz=320, seed=0)
    assert data["nc"] == len(CLASS_NAMES) and data["names"] == dict(enumerate(CLASS_NAMES))
    assert Path(data["train"]) == root / "images" / "train" and Path(data["val"]) == root / "images" / "val"

    dataset = YOLODataset(img_path=data["val"], data=data, imgsz=64, augment=False)
    assert len(dataset) == TINY["val"]
    assert sum(len(label["cls"]) for label in dataset.labels) == len(read_labels(root, "val"))

    du.check_det_dataset(data_yaml)  # now present: the script is not run again
    assert len(calls) == 1
