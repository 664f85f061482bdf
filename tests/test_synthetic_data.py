"""Tests for the synthetic shapes dataset: determinism, label validity, reuse, CLI, and Ultralytics' download hook."""

from __future__ import annotations

import dataclasses
import shutil
import sys
from pathlib import Path

import cv2
import numpy as np
import pytest
import yaml
from conftest import CFG, ROOT, run

from yolo_revcol.data import synthetic
from yolo_revcol.data.synthetic import (
    CLASS_NAMES,
    MIN_VISIBLE,
    generate_dataset,
    generate_detection_dataset,
    render_scene,
)

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
    assert 'generate_detection_dataset(yaml["path"]' in cfg["download"]


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


# Segment, pose, OBB and classification labels ------------------------------------------------------------------------


def labelled_ids(scene: synthetic.Scene) -> list[int]:
    """``id_map`` values of the objects that get labels, in drawing order (as scene_annotations returns them)."""
    return [k for k, inst in enumerate(scene.instances, 1) if synthetic._is_labelled(inst, MIN_VISIBLE)]


def mirrored(scene: synthetic.Scene) -> synthetic.Scene:
    """The scene flipped left-right, objects and their masks included."""
    w = scene.id_map.shape[1]
    instances = [
        dataclasses.replace(
            inst,
            mask=inst.mask[:, ::-1],
            origin=(w - inst.origin[0] - inst.mask.shape[1], inst.origin[1]),
            box=None if inst.box is None else (w - inst.box[2], inst.box[1], w - inst.box[0], inst.box[3]),
        )
        for inst in scene.instances
    ]
    return synthetic.Scene(scene.image[:, ::-1], instances, scene.id_map[:, ::-1])


def test_scene_annotations_follow_the_visible_pixels():
    """Polygons, keypoints and oriented boxes describe each labelled object, consistently with its box."""
    rng = np.random.default_rng(1)
    counts = {"objects": 0, "occluded": 0, "outside": 0, "split": 0}
    for _ in range(30):
        scene = render_scene(rng, 96)
        h, w = scene.id_map.shape
        annotations = synthetic.scene_annotations(scene)
        assert len(annotations) == len(synthetic.scene_labels(scene)) == len(labelled_ids(scene))
        for k, a in zip(labelled_ids(scene), annotations):
            visible = scene.id_map == k
            x0, y0, x1, y1 = a.box
            counts["objects"] += 1
            # Segment: one polygon through boundary pixel centres, inside the image, spanning exactly the box, and
            # filled the way Ultralytics fills polygons (cv2.fillPoly) it gives back the visible pixels, holes too.
            p = a.polygon
            assert p.ndim == 2 and p.shape[1] == 2 and len(p) >= 3
            assert (p >= 0).all() and (p[:, 0] <= w).all() and (p[:, 1] <= h).all()
            np.testing.assert_allclose([*p.min(0), *p.max(0)], [x0 + 0.5, y0 + 0.5, x1 - 0.5, y1 - 0.5], atol=1e-4)
            filled = np.zeros((h, w), np.uint8)
            cv2.fillPoly(filled, [np.floor(p).astype(np.int32)], 1)
            iou = (filled.astype(bool) & visible).sum() / (filled.astype(bool) | visible).sum()
            assert iou > (0.95 if visible.sum() >= 100 else 0.7), (k, iou, visible.sum())
            counts["split"] += cv2.connectedComponents(visible.astype(np.uint8))[0] > 2
            # Pose: 5 keypoints; visible ones on this object's pixels, occluded ones under a later object, and
            # (0, 0, 0) outside the image. The extreme points are the silhouette's extreme pixel centres.
            kp = a.keypoints
            assert kp.shape == (len(synthetic.KEYPOINT_NAMES), 3) and set(kp[:, 2]) <= {0, 1, 2}
            inst = scene.instances[k - 1]
            ys, xs = np.nonzero(inst.mask)
            xs, ys = xs + inst.origin[0] + 0.5, ys + inst.origin[1] + 0.5
            extremes = (xs.min(), ys.min(), xs.max(), ys.max())  # left x, top y, right x, bottom y
            for j, (x, y, v) in enumerate(kp):
                if v == 0:
                    assert x == y == 0
                    counts["outside"] += 1
                    continue
                assert 0 <= x <= w and 0 <= y <= h
                cols, rows = [c for c in synthetic._touching(x) if c < w], [r for r in synthetic._touching(y) if r < h]
                assert (scene.id_map[np.ix_(rows, cols)] > k).all() == (v == 1)
                counts["occluded"] += v == 1
                if j:
                    assert (x if j % 2 else y) == extremes[j - 1]
            # OBB: a rectangle inside the image that contains every visible pixel and is no larger than the box
            c = a.corners
            assert c.shape == (4, 2) and (c >= 0).all() and (c[:, 0] <= w).all() and (c[:, 1] <= h).all()
            ys, xs = np.nonzero(visible)
            inside = [cv2.pointPolygonTest(c, (float(x) + 0.5, float(y) + 0.5), True) for x, y in zip(xs, ys)]
            assert min(inside) >= -1e-3
            assert cv2.contourArea(c) <= (x1 - x0) * (y1 - y0) + 1e-3
            assert cv2.contourArea(c) >= visible.sum() - 1e-3
    # The checks above met every case at least once
    assert min(counts.values()) > 0, counts


def test_flip_idx_matches_a_left_right_flip():
    """Flipping a scene left-right gives the keypoints of the flipped scene, reordered by FLIP_IDX (as in the YAML)."""
    assert yaml.safe_load((CFG / "datasets" / "revcol-shapes-pose.yaml").read_text())["flip_idx"] == list(
        synthetic.FLIP_IDX
    )
    rng = np.random.default_rng(2)
    for _ in range(10):
        scene = render_scene(rng, 96)
        w = scene.id_map.shape[1]
        for a, b in zip(synthetic.scene_annotations(scene), synthetic.scene_annotations(mirrored(scene))):
            flipped = a.keypoints.copy()
            flipped[:, 0] = np.where(flipped[:, 2] > 0, w - flipped[:, 0], 0)
            np.testing.assert_allclose(b.keypoints[list(synthetic.FLIP_IDX)], flipped, atol=1e-4)


@pytest.mark.parametrize("task, columns", [("segment", None), ("pose", 5 + 5 * 3), ("obb", 9)])
def test_label_files_of_each_task(tmp_path, task, columns):
    """Same images as the detection dataset; one label line per detection box; normalised values in range."""
    det = files(generate_detection_dataset(tmp_path / "det", **TINY))
    root = generate_dataset(tmp_path / task, task=task, **TINY)
    out = files(root)
    assert {k: v for k, v in out.items() if k.endswith(".jpg")} == {k: v for k, v in det.items() if k.endswith(".jpg")}
    for split in ("train", "val"):
        rows, boxes = read_labels(root, split), read_labels(tmp_path / "det", split)
        assert len(rows) == len(boxes)
        for row, box in zip(sorted(rows), sorted(boxes)):
            assert row[0] == box[0] and (columns is None or len(row) == columns)
            values = np.array(row[1:])
            if task == "pose":
                assert row[1:5] == box[1:5]
                kpts = values[4:].reshape(5, 3)
                assert set(kpts[:, 2]) <= {0, 1, 2}
                values = kpts[:, :2]
            elif task == "segment":
                assert len(values) % 2 == 0 and len(values) >= 6
            assert (values >= 0).all() and (values <= 1).all()


def test_classification_layout(tmp_path):
    """train/<class>/*.png and val/<class>/*.png, classes balanced, one large shape per image, deterministic."""
    root = generate_dataset(tmp_path / "cls", task="classify", train=16, val=8, imgsz=64, seed=0)
    for split, n in (("train", 16), ("val", 8)):
        assert sorted(p.name for p in (root / split).iterdir()) == sorted(CLASS_NAMES)
        for name in CLASS_NAMES:
            images = sorted((root / split / name).glob("*.png"))
            assert len(images) == n // len(CLASS_NAMES)
            assert cv2.imread(str(images[0])).shape == (64, 64, 3)
    assert not (root / "images").exists() and not (root / "labels").exists()
    again = generate_dataset(tmp_path / "again", task="classify", train=16, val=8, imgsz=64, seed=0)
    pngs = lambda r: {str(p.relative_to(r)): p.read_bytes() for p in sorted(r.rglob("*.png"))}  # noqa: E731
    assert pngs(root) == pngs(again) and len(pngs(root)) == 24
    scene = synthetic.render_classification_image(np.random.default_rng(0), 64, cls=3)
    (inst,) = scene.instances
    assert inst.cls == 3 and inst.visible > 0.9 and inst.area > 0.05 * 64 * 64


def test_cli_task_option(tmp_path):
    """--task picks the label format; classify makes the folder layout."""
    base = [sys.executable, "-m", "yolo_revcol.data.synthetic", "--imgsz", "64", "--val", "8"]
    proc = run(
        [*base, "--task", "classify", "--out", str(tmp_path / "cls"), "--train", "8"],
        cwd=ROOT,
        env={"PYTHONPATH": str(ROOT)},
    )
    assert "classify, train 8 images, val 8 images" in proc.stdout
    assert len(list((tmp_path / "cls" / "train").glob("*/*.png"))) == 8
    proc = run(
        [*base, "--task", "obb", "--out", str(tmp_path / "obb"), "--train", "2"],
        cwd=ROOT,
        env={"PYTHONPATH": str(ROOT)},
    )
    assert "obb, train 2 images" in proc.stdout and "oriented boxes" in proc.stdout
    assert files(tmp_path / "obb") == files(generate_dataset(tmp_path / "api", task="obb", train=2, val=8, imgsz=64))


@pytest.mark.parametrize("task", ["segment", "pose", "obb", "classify"])
def test_task_yaml_download_generates_what_the_cli_default_does(task):
    """Each task's dataset YAML generates, under its 'path' name, the dataset `yolo-revcol data --task` makes."""
    cfg = yaml.safe_load((CFG / "datasets" / f"{synthetic.DATASET_NAMES[task]}.yaml").read_text())
    assert cfg["path"] == synthetic.DATASET_NAMES[task]
    calls = []
    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(synthetic, "generate_dataset", lambda root, **kwargs: calls.append((root, kwargs)))
        exec(cfg["download"], {"yaml": {"path": "ROOT"}})  # noqa: S102
    assert calls == [("ROOT", dict(task=task, **synthetic.DEFAULT_SIZES[task], seed=0))]


@pytest.mark.parametrize("task", ["segment", "pose", "obb"])
def test_check_det_dataset_runs_each_task_yamls_download(tmp_path, monkeypatch, task):
    """Ultralytics generates each task's dataset from its YAML offline and loads its segments, keypoints or OBBs."""
    import ultralytics.data.utils as du
    from ultralytics.data import YOLODataset

    generate = synthetic.generate_dataset
    monkeypatch.setattr(synthetic, "generate_dataset", lambda root, **kw: generate(root, task=kw["task"], **TINY))
    monkeypatch.setattr(du, "DATASETS_DIR", tmp_path / "datasets")
    monkeypatch.setattr(du, "check_font", lambda *a, **k: None)  # would try to download Arial.ttf
    (tmp_path / "cwd").mkdir()
    monkeypatch.chdir(tmp_path / "cwd")
    name = synthetic.DATASET_NAMES[task]
    data = du.check_det_dataset(shutil.copy(CFG / "datasets" / f"{name}.yaml", tmp_path / f"{name}.yaml"))
    assert Path(data["val"]) == tmp_path / "datasets" / name / "images" / "val"
    dataset = YOLODataset(img_path=data["val"], data=data, task=task, imgsz=64, augment=False)
    labels = [label for label in dataset.labels if len(label["cls"])]
    assert len(labels) > 0
    for label in labels:
        if task == "pose":
            assert label["keypoints"].shape == (len(label["cls"]), 5, 3)
        else:  # segments, or the OBB's 4 corners, which Ultralytics also keeps as segments
            assert len(label["segments"]) == len(label["cls"]) and (
                task != "obb" or label["segments"][0].shape == (4, 2)
            )
