"""Deterministic synthetic shapes datasets for every YOLO task: coloured shapes on cluttered backgrounds, made offline.

Every image is drawn from its own random generator, seeded by ``(seed, split, index)``, so a dataset depends only on
the arguments, never on generation order, and the same arguments give byte-identical files. Objects overlap; each
object's silhouette is tracked so that labels describe what is visible: heavily hidden objects are dropped and boxes
cover the visible extent only.

The detection, segmentation, pose and OBB datasets share their images (the same seed draws the same scenes) and
differ only in their labels, all in Ultralytics YOLO format:

* ``detect``: ``cls cx cy w h``, the box of the visible pixels;
* ``segment``: ``cls x1 y1 x2 y2 ...``, one polygon around the visible pixels (several visible parts and holes, such
  as a ring's, are joined by zero-width bridges, as Ultralytics' COCO converter does);
* ``pose``: ``cls cx cy w h`` then ``x y v`` for ``len(KEYPOINT_NAMES)`` keypoints of the whole shape (its centroid
  and its leftmost, topmost, rightmost and bottommost points), v = 2 visible, 1 covered by a later object, 0 outside
  the image (then x = y = 0);
* ``obb``: ``cls x1 y1 x2 y2 x3 y3 x4 y4``, the minimum-area rotated rectangle around the visible pixels.

The ``classify`` dataset has its own images, one roughly centred shape each, in Ultralytics' folder layout
``{train,val}/<class name>/NNNNNN.png``.

Examples:
    >>> from yolo_revcol.data.synthetic import generate_dataset, generate_detection_dataset
    >>> root = generate_detection_dataset("datasets/revcol-shapes", train=400, val=100, imgsz=320, seed=0)
    >>> seg = generate_dataset("datasets/revcol-shapes-seg", task="segment", train=400, val=100, imgsz=320)

    From the command line:
    $ python -m yolo_revcol.data.synthetic --out datasets/revcol-shapes --train 400 --val 100 --imgsz 320 --seed 0
    $ python -m yolo_revcol.data.synthetic --task classify --out datasets/revcol-shapes-cls
"""

from __future__ import annotations

import argparse
import json
import math
import os
import shutil
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np

__all__ = (
    "CLASS_NAMES",
    "FLIP_IDX",
    "KEYPOINT_NAMES",
    "TASKS",
    "Annotation",
    "ShapeInstance",
    "Scene",
    "render_scene",
    "render_classification_image",
    "scene_annotations",
    "scene_labels",
    "generate_dataset",
    "generate_detection_dataset",
)

CLASS_NAMES = ("circle", "rectangle", "triangle", "star", "cross", "ellipse", "ring", "arrow")
TASKS = ("detect", "segment", "pose", "obb", "classify")
LABEL_NOUNS = {
    "detect": "boxes",
    "segment": "polygons",
    "pose": "poses",
    "obb": "oriented boxes",
}  # tasks with label files
KEYPOINT_NAMES = ("centre", "left", "top", "right", "bottom")  # centroid and extreme points of the whole silhouette
FLIP_IDX = (0, 3, 2, 1, 4)  # a left-right flip swaps the leftmost and rightmost points
DATASET_NAMES = {t: "revcol-shapes" + s for t, s in zip(TASKS, ("", "-seg", "-pose", "-obb", "-cls"))}
DEFAULT_SIZES = {  # train, val, imgsz: what the dataset YAMLs in cfg/datasets generate
    **{t: dict(train=400, val=100, imgsz=320) for t in ("detect", "segment", "pose", "obb")},
    "classify": dict(train=800, val=200, imgsz=96),
}
SPLITS = ("train", "val")
MIN_VISIBLE = 0.35  # objects with less of their silhouette visible are not labelled
SIZE_RANGE = (0.04, 0.6)  # longer side of an object as a fraction of the image side (sampled log-uniformly)
MAX_OBJECTS = 8
MARKER = "revcol-shapes.json"  # written last: its presence with matching arguments means the dataset is complete
FORMAT_VERSION = 1  # bump whenever the drawing changes, so that existing datasets are regenerated

_SHIFT = 4  # fractional bits for OpenCV drawing: sub-pixel outlines keep small shapes accurate
_SCALE = 1 << _SHIFT


@dataclass
class ShapeInstance:
    """One drawn object, with what the labels of every task are made from.

    Attributes:
        cls (int): Class index into ``CLASS_NAMES``.
        contours (list[np.ndarray]): Float32 (N, 2) outlines in image pixel coordinates (x right, y down, pixel
            edges at integers): the outer outline first, then holes (the ring's inner circle).
        centre (tuple[float, float]): Shape centre (x, y) in pixels.
        size (tuple[float, float]): Unrotated width and height in pixels.
        angle (float): Rotation in degrees applied to the unrotated shape (clockwise on screen, as y points down).
        mask (np.ndarray): Bool silhouette on a local canvas covering the whole shape, also any part outside the image.
        origin (tuple[int, int]): Image pixel (x, y) of ``mask[0, 0]``; may be negative.
        area (int): Silhouette pixel count, including any part outside the image.
        visible (float): Fraction of ``area`` visible in the final image (inside it and not covered by later objects).
        box (tuple[int, int, int, int] | None): Visible extent (x0, y0, x1, y1) in pixels, end exclusive; None if
            nothing is visible.
    """

    cls: int
    contours: list[np.ndarray]
    centre: tuple[float, float]
    size: tuple[float, float]
    angle: float
    mask: np.ndarray
    origin: tuple[int, int]
    area: int
    visible: float = 0.0
    box: tuple[int, int, int, int] | None = None


@dataclass
class Scene:
    """A rendered image with its objects.

    Attributes:
        image (np.ndarray): BGR uint8 image (H, W, 3).
        instances (list[ShapeInstance]): Objects in drawing order (later ones cover earlier ones).
        id_map (np.ndarray): Uint8 (H, W) map of the object visible at each pixel: 0 for background, k for
            ``instances[k - 1]``; the visible mask of any object is ``id_map == k``.
    """

    image: np.ndarray
    instances: list[ShapeInstance]
    id_map: np.ndarray


@dataclass
class Annotation:
    """The labels of one sufficiently visible object, in image pixel coordinates (pixel edges at integers).

    Attributes:
        cls (int): Class index into ``CLASS_NAMES``.
        box (tuple[int, int, int, int]): Visible extent (x0, y0, x1, y1), end exclusive.
        polygon (np.ndarray): Float32 (N, 2) outline of the visible pixels through boundary pixel centres, one
            closed polygon (visible parts and holes joined by zero-width bridges); N >= 3.
        keypoints (np.ndarray): Float32 (len(KEYPOINT_NAMES), 3) rows ``x, y, v`` of the whole shape's keypoints;
            v = 2 visible, 1 covered by a later object, 0 outside the image (x = y = 0 then).
        corners (np.ndarray): Float32 (4, 2) corners of the minimum-area rotated rectangle around the visible
            pixels; the visible box instead where that rectangle would reach more than half a pixel out of the
            image.
    """

    cls: int
    box: tuple[int, int, int, int]
    polygon: np.ndarray
    keypoints: np.ndarray
    corners: np.ndarray


def _ellipse(n: int) -> np.ndarray:
    """Return ``n`` points on the circle of diameter 1 centred on the origin."""
    t = np.linspace(0.0, 2.0 * np.pi, n, endpoint=False)
    return 0.5 * np.stack([np.cos(t), np.sin(t)], 1)


def _template(cls: int, rng: np.random.Generator, size: float) -> tuple[list[np.ndarray], float, float, bool]:
    """Sample the unrotated outline of one object.

    Args:
        cls (int): Class index into ``CLASS_NAMES``.
        rng (np.random.Generator): Random generator of the image.
        size (float): Longer side in pixels.

    Returns:
        contours (list[np.ndarray]): Outlines in a unit frame spanning [-0.5, 0.5] on both axes (outer first).
        w (float): Width in pixels the unit frame is scaled to.
        h (float): Height in pixels the unit frame is scaled to.
        rotate (bool): Whether a random rotation changes the shape (not for circles and rings).
    """
    name = CLASS_NAMES[cls]
    n = int(np.clip(size, 16, 96))  # outline points: about one per 3 pixels of perimeter
    if name == "circle":
        return [_ellipse(n)], size, size, False
    if name == "ring":
        return [_ellipse(n), _ellipse(n) * rng.uniform(0.45, 0.7)], size, size, False
    if name == "ellipse":
        return [_ellipse(n)], size, size / rng.uniform(1.6, 3.0), True  # elongated enough to never pass as a circle
    if name == "rectangle":
        square = np.array([[-0.5, -0.5], [0.5, -0.5], [0.5, 0.5], [-0.5, 0.5]])
        return [square], size, size / rng.uniform(1.0, 3.5), True
    if name == "triangle":
        apex = rng.uniform(-0.5, 0.5)  # from right-angled through isosceles to obtuse-looking triangles
        return [np.array([[-0.5, 0.5], [0.5, 0.5], [apex, -0.5]])], size, size / rng.uniform(0.8, 1.8), True
    if name == "star":
        k = 5
        t = np.arange(2 * k) * np.pi / k - np.pi / 2
        r = np.where(np.arange(2 * k) % 2 == 0, 0.5, 0.5 * rng.uniform(0.38, 0.5))
        return [np.stack([r * np.cos(t), r * np.sin(t)], 1)], size, size / rng.uniform(1.0, 1.2), True
    if name == "cross":
        a = rng.uniform(0.11, 0.19)  # half the arm thickness
        pts = [(-a, -0.5), (a, -0.5), (a, -a), (0.5, -a), (0.5, a), (a, a)]
        pts += [(a, 0.5), (-a, 0.5), (-a, a), (-0.5, a), (-0.5, -a), (-a, -a)]
        return [np.array(pts)], size, size / rng.uniform(1.0, 1.4), True
    if name == "arrow":
        s, xh = rng.uniform(0.14, 0.24), 0.5 - rng.uniform(0.3, 0.45)  # shaft half-thickness, where the head starts
        pts = [(-0.5, -s), (xh, -s), (xh, -0.5), (0.5, 0.0), (xh, 0.5), (xh, s), (-0.5, s)]
        return [np.array(pts)], size, size / rng.uniform(1.4, 2.6), True
    raise ValueError(f"no template for class {cls}")


def _rasterise(contours: list[np.ndarray]) -> tuple[np.ndarray, tuple[int, int]]:
    """Fill outlines (the first one filled, the others cut out as holes) on a canvas just large enough.

    Args:
        contours (list[np.ndarray]): Outlines in image pixel coordinates.

    Returns:
        mask (np.ndarray): Bool silhouette.
        origin (tuple[int, int]): Image pixel (x, y) of ``mask[0, 0]``.
    """
    centres = contours[0] - 0.5  # OpenCV puts pixel centres on integers
    x0, y0 = np.floor(centres.min(0)).astype(int)
    x1, y1 = np.ceil(centres.max(0)).astype(int)
    mask = np.zeros((y1 - y0 + 1, x1 - x0 + 1), np.uint8)
    for i, c in enumerate(contours):
        pts = np.round((c - 0.5 - (x0, y0)) * _SCALE).astype(np.int32)
        cv2.fillPoly(mask, [pts], 0 if i else 1, cv2.LINE_8, _SHIFT)
    return mask.astype(bool), (int(x0), int(y0))


def _sample_instance(rng: np.random.Generator, imgsz: int) -> ShapeInstance:
    """Sample the class, size, aspect ratio, rotation and position of one object, and rasterise it."""
    cls = int(rng.integers(len(CLASS_NAMES)))
    lo, hi = SIZE_RANGE
    size = max(imgsz * math.exp(rng.uniform(math.log(lo), math.log(hi))), 3.0)  # log-uniform: many small objects
    return _make_instance(rng, imgsz, cls, size)


def _make_instance(
    rng: np.random.Generator, imgsz: int, cls: int, size: float, centre: tuple[float, float] | None = None
) -> ShapeInstance:
    """Sample the aspect ratio, rotation and (unless given) position of an object of a given class and size.

    Args:
        rng (np.random.Generator): Random generator of the image.
        imgsz (int): Image side in pixels.
        cls (int): Class index into ``CLASS_NAMES``.
        size (float): Longer side in pixels.
        centre (tuple[float, float] | None): Centre (x, y) in pixels; None places the object at random, up to a
            quarter of its extent beyond the border.

    Returns:
        (ShapeInstance): The rasterised object (``visible`` and ``box`` not measured yet).
    """
    unit, w, h, rotate = _template(cls, rng, size)
    angle = float(rng.uniform(0.0, 360.0)) if rotate else 0.0
    c, s = math.cos(math.radians(angle)), math.sin(math.radians(angle))
    rot = np.array([[c, s], [-s, c]])  # row vectors times rot: rotation by ``angle``
    shapes = [(u * (w, h)) @ rot for u in unit]
    if centre is None:
        # Allow a quarter of the extent beyond the border on each side: truncated objects occur in real images too
        lo_xy, hi_xy = shapes[0].min(0), shapes[0].max(0)
        slack = 0.25 * (hi_xy - lo_xy)
        cmin, cmax = -lo_xy - slack, imgsz - hi_xy + slack
        centre = np.where(cmin < cmax, rng.uniform(np.minimum(cmin, cmax), np.maximum(cmin, cmax)), imgsz / 2)
    centre = np.asarray(centre, dtype=float)
    contours = [(p + centre).astype(np.float32) for p in shapes]
    mask, origin = _rasterise(contours)
    centre_xy = (float(centre[0]), float(centre[1]))
    return ShapeInstance(cls, contours, centre_xy, (w, h), angle, mask, origin, int(mask.sum()))


def _contrasting_colour(rng: np.random.Generator, under: np.ndarray) -> np.ndarray:
    """Pick a random colour that stands out from the pixels an object will cover.

    Args:
        rng (np.random.Generator): Random generator of the image.
        under (np.ndarray): (N, 3) pixels the object covers.

    Returns:
        (np.ndarray): Float32 BGR colour.
    """
    bg = under.reshape(-1, 3).mean(0) if under.size else np.full(3, 127.0)
    for _ in range(16):
        colour = rng.uniform(0, 255, 3)
        if np.linalg.norm(colour - bg) > 110 and abs(colour.mean() - bg.mean()) > 25:
            return colour.astype(np.float32)
    # Rarely reached: fall back to a colour near the opposite end of each channel
    return np.where(bg > 127, rng.uniform(0, 50, 3), rng.uniform(205, 255, 3)).astype(np.float32)


def _paint(rng: np.random.Generator, image: np.ndarray, id_map: np.ndarray, inst: ShapeInstance, k: int) -> None:
    """Draw an object over the image with a shaded fill and an optional outline, and mark its pixels ``k``."""
    imgsz = image.shape[0]
    ox, oy = inst.origin
    mh, mw = inst.mask.shape
    x0, y0, x1, y1 = max(ox, 0), max(oy, 0), min(ox + mw, imgsz), min(oy + mh, imgsz)
    if x1 <= x0 or y1 <= y0:
        return
    mask = inst.mask[y0 - oy : y1 - oy, x0 - ox : x1 - ox]
    region = image[y0:y1, x0:x1]
    colour = _contrasting_colour(rng, region[mask])
    # Linear shading across the object: flat fills would make the task a colour lookup
    shade = np.clip(colour + rng.uniform(-50, 50, 3), 0, 255).astype(np.float32)
    theta = rng.uniform(0, 2 * np.pi)
    yy, xx = np.mgrid[y0:y1, x0:x1].astype(np.float32)
    t = (xx - inst.centre[0]) * math.cos(theta) + (yy - inst.centre[1]) * math.sin(theta)
    t = np.clip(t / max(inst.size) + 0.5, 0, 1)[..., None]
    fill = colour + (shade - colour) * t
    if rng.random() < 0.3:  # an outline drawn inside the silhouette, so the mask stays exact
        edge = np.clip(colour * rng.uniform(0.2, 0.6), 0, 255).tolist()
        pts = [np.round((c - 0.5 - (x0, y0)) * _SCALE).astype(np.int32) for c in inst.contours]
        cv2.polylines(fill, pts, True, edge, int(rng.integers(1, 3)), cv2.LINE_AA, _SHIFT)
    region[mask] = fill[mask].astype(np.uint8)
    id_map[y0:y1, x0:x1][mask] = k


def _background(rng: np.random.Generator, imgsz: int) -> np.ndarray:
    """Draw a textured, cluttered background: gradient, low-frequency colour noise, stripes, lines, scribbles, blobs.

    The clutter is deliberately unlike the classes (straight or wandering lines, ragged splats) and is blended in
    partially, so a detector has to learn shapes rather than "anything that differs from the background".
    """
    s = imgsz
    yy, xx = np.mgrid[0:s, 0:s].astype(np.float32) / s
    c0, c1 = rng.uniform(0, 255, (2, 3)).astype(np.float32)
    theta = rng.uniform(0, 2 * np.pi)
    t = np.clip((xx - 0.5) * math.cos(theta) + (yy - 0.5) * math.sin(theta) + 0.5, 0, 1)[..., None]
    img = c0 + (c1 - c0) * t
    k = int(rng.integers(2, 9))
    blotches = cv2.resize(rng.uniform(-1, 1, (k, k, 3)).astype(np.float32), (s, s), interpolation=cv2.INTER_CUBIC)
    img += blotches * rng.uniform(10, 60)
    if rng.random() < 0.3:
        phi, period = rng.uniform(0, np.pi), rng.uniform(0.02, 0.15)
        stripes = np.sin(2 * np.pi * (xx * math.cos(phi) + yy * math.sin(phi)) / period)
        img += (stripes * rng.uniform(8, 30))[..., None]
    img = np.clip(img, 0, 255).astype(np.uint8)

    def lines(layer: np.ndarray) -> None:
        for _ in range(int(rng.integers(0, 10))):
            p, q = rng.uniform(-0.2 * s, 1.2 * s, (2, 2)).astype(int)
            colour, thickness = rng.uniform(0, 255, 3).tolist(), int(rng.integers(1, 4))
            cv2.line(layer, tuple(p.tolist()), tuple(q.tolist()), colour, thickness, cv2.LINE_AA)

    def scribbles(layer: np.ndarray) -> None:
        for _ in range(int(rng.integers(0, 4))):
            steps = rng.normal(0, 0.08 * s, (int(rng.integers(6, 16)), 2))
            pts = (rng.uniform(0, s, 2) + np.cumsum(steps, 0)).astype(np.int32)
            cv2.polylines(layer, [pts], False, rng.uniform(0, 255, 3).tolist(), int(rng.integers(1, 4)), cv2.LINE_AA)

    def blobs(layer: np.ndarray) -> None:
        for _ in range(int(rng.integers(0, 5))):
            m = int(rng.integers(9, 16))
            a = np.sort(rng.uniform(0, 2 * np.pi, m))
            r = s * rng.uniform(0.02, 0.12) * rng.uniform(0.35, 1.0, m)  # ragged radii: never a clean class shape
            pts = (rng.uniform(0, s, 2) + np.stack([r * np.cos(a), r * np.sin(a)], 1)).astype(np.int32)
            cv2.fillPoly(layer, [pts], rng.uniform(0, 255, 3).tolist(), cv2.LINE_AA)

    for draw in (lines, scribbles, blobs):  # each drawn on a copy and mixed back in: semi-transparent clutter
        layer = img.copy()
        draw(layer)
        alpha = rng.uniform(0.3, 0.8)
        img = cv2.addWeighted(layer, alpha, img, 1.0 - alpha, 0.0)
    return img


def render_scene(rng: np.random.Generator, imgsz: int) -> Scene:
    """Render one image with 1 to ``MAX_OBJECTS`` overlapping shapes and measure what remains visible of each.

    Args:
        rng (np.random.Generator): Random generator; the scene depends on nothing else.
        imgsz (int): Image side in pixels (images are square).

    Returns:
        (Scene): The image, its objects in drawing order and the map of which object each pixel shows.
    """
    image = _background(rng, imgsz)
    id_map = np.zeros((imgsz, imgsz), np.uint8)
    instances = []
    for _ in range(int(rng.integers(1, MAX_OBJECTS + 1))):
        inst = _sample_instance(rng, imgsz)
        if inst.area == 0:  # a sliver too thin to cover a pixel centre
            continue
        instances.append(inst)
        _paint(rng, image, id_map, inst, len(instances))

    _measure_visibility(instances, id_map)
    return Scene(_camera_finish(rng, image), instances, id_map)


def _measure_visibility(instances: list[ShapeInstance], id_map: np.ndarray) -> None:
    """Set each instance's visible fraction and visible box from the map of which object each pixel shows."""
    counts = np.bincount(id_map.ravel(), minlength=len(instances) + 1)
    for k, inst in enumerate(instances, 1):
        inst.visible = float(counts[k] / inst.area)
        if counts[k]:
            ox, oy = max(inst.origin[0], 0), max(inst.origin[1], 0)  # search only the object's own window
            ys, xs = np.nonzero(id_map[oy : oy + inst.mask.shape[0], ox : ox + inst.mask.shape[1]] == k)
            inst.box = (ox + int(xs.min()), oy + int(ys.min()), ox + int(xs.max()) + 1, oy + int(ys.max()) + 1)


def _camera_finish(rng: np.random.Generator, image: np.ndarray) -> np.ndarray:
    """Camera-like finish: slight blur and sensor noise over everything, objects included."""
    if rng.random() < 0.5:
        image = cv2.GaussianBlur(image, (3, 3), 0)
    noise = rng.standard_normal(image.shape, dtype=np.float32) * rng.uniform(2, 10)
    return np.clip(image + noise, 0, 255).astype(np.uint8)


def render_classification_image(rng: np.random.Generator, imgsz: int, cls: int) -> Scene:
    """Render one classification image: a single shape of class ``cls`` near the centre of a cluttered background.

    Args:
        rng (np.random.Generator): Random generator; the image depends only on it, ``imgsz`` and ``cls``.
        imgsz (int): Image side in pixels (images are square).
        cls (int): Class index into ``CLASS_NAMES``.

    Returns:
        (Scene): The image with its one object (``instances[0]``, possibly cut slightly by the border).
    """
    image = _background(rng, imgsz)
    id_map = np.zeros((imgsz, imgsz), np.uint8)
    size = imgsz * rng.uniform(0.35, 0.75)  # large enough to show its shape at small image sizes
    centre = imgsz / 2 + rng.uniform(-0.1, 0.1, 2) * imgsz
    inst = _make_instance(rng, imgsz, cls, size, (float(centre[0]), float(centre[1])))
    _paint(rng, image, id_map, inst, 1)
    _measure_visibility([inst], id_map)
    return Scene(_camera_finish(rng, image), [inst], id_map)


def _is_labelled(inst: ShapeInstance, min_visible: float) -> bool:
    """Whether an object gets a label: enough of it visible, and not just a sliver."""
    if inst.box is None or inst.visible < min_visible:
        return False
    x0, y0, x1, y1 = inst.box
    return x1 - x0 >= 2 and y1 - y0 >= 2  # a visible sliver is not a detectable object


def _join_contours(parts: list[np.ndarray]) -> np.ndarray:
    """Join closed outlines into one polygon by zero-width bridges between their closest points.

    Filling the result with ``cv2.fillPoly`` (as Ultralytics rasterises polygons) gives back every part and keeps
    holes empty, because each bridge is traversed once in each direction.

    Args:
        parts (list[np.ndarray]): (N, 2) outlines; the first is the one the others are attached to.

    Returns:
        (np.ndarray): (M, 2) polygon.
    """
    polygon = parts[0]
    for part in parts[1:]:
        d = ((polygon[:, None] - part[None]) ** 2).sum(-1)
        i, j = np.unravel_index(int(d.argmin()), d.shape)
        part = np.roll(part, -j, 0)
        polygon = np.concatenate([polygon[: i + 1], part, part[:1], polygon[i:]])
    return polygon


def _touching(v: float) -> list[int]:
    """Indices of the pixels whose extent [i, i + 1] contains coordinate ``v`` (v >= 0)."""
    i = math.floor(v)
    return [i - 1, i] if v == i and i > 0 else [i]


def _keypoints(scene: Scene, k: int, inst: ShapeInstance) -> np.ndarray:
    """Centroid and leftmost, topmost, rightmost, bottommost pixel centres of the whole silhouette, with visibility.

    Extreme points shared by several pixels (a straight edge) take their median, so that the mirror image of a shape
    gets the mirrored keypoints (what ``FLIP_IDX`` promises). A point is visible (2) unless later objects cover the
    pixels it falls on (1); outside the image it is (0, 0) with visibility 0.
    """
    h, w = scene.id_map.shape
    ys, xs = np.nonzero(inst.mask)
    points = [
        (xs.mean(), ys.mean()),
        (xs.min(), np.median(ys[xs == xs.min()])),
        (np.median(xs[ys == ys.min()]), ys.min()),
        (xs.max(), np.median(ys[xs == xs.max()])),
        (np.median(xs[ys == ys.max()]), ys.max()),
    ]
    out = np.zeros((len(points), 3), np.float32)
    for row, (x, y) in zip(out, points):
        x, y = x + inst.origin[0] + 0.5, y + inst.origin[1] + 0.5  # pixel centres in image coordinates
        if 0 <= x <= w and 0 <= y <= h:  # closed: a median may fall on the border, and mirror to the other one
            # Every pixel the point touches (two across a pixel edge, where medians of even counts fall): occluded
            # only if all are covered, a rule a mirror image gives the same answer to
            cols, rows = [c for c in _touching(x) if c < w], [r for r in _touching(y) if r < h]
            row[:] = x, y, 1 if (scene.id_map[np.ix_(rows, cols)] > k).all() else 2
    return out


def scene_annotations(scene: Scene, min_visible: float = MIN_VISIBLE) -> list[Annotation]:
    """Return the segment, keypoint and oriented-box labels of the sufficiently visible objects.

    The same objects as ``scene_labels`` labels for detection, in drawing order.

    Args:
        scene (Scene): A rendered scene.
        min_visible (float): Smallest visible fraction of an object's silhouette that still gets a label.

    Returns:
        (list[Annotation]): One annotation per labelled object, in pixels.
    """
    h, w = scene.id_map.shape
    corner_offsets = np.array([[0, 0], [1, 0], [0, 1], [1, 1]], np.float32)
    annotations = []
    for k, inst in enumerate(scene.instances, 1):
        if not _is_labelled(inst, min_visible):
            continue
        x0, y0, x1, y1 = inst.box
        visible = (scene.id_map[y0:y1, x0:x1] == k).astype(np.uint8)
        # Outer outlines and holes of the visible pixels, as pixel indices (CHAIN_APPROX_SIMPLE is lossless)
        contours, _ = cv2.findContours(visible, cv2.RETR_CCOMP, cv2.CHAIN_APPROX_SIMPLE)
        pixels = [c.reshape(-1, 2).astype(np.float32) + (x0, y0) for c in contours]
        parts = sorted(pixels, key=len, reverse=True)  # attach the smaller parts to the largest outline
        polygon = _join_contours([p + 0.5 for p in parts])
        if len(polygon) < 3:  # a one- or two-pixel outline: use the rectangle through the extreme pixel centres
            polygon = np.array([[x0, y0], [x1 - 1, y0], [x1 - 1, y1 - 1], [x0, y1 - 1]], np.float32) + 0.5
        # The rotated rectangle around the boundary pixels' corners covers the visible pixels' squares exactly
        edge = (np.concatenate(pixels)[:, None] + corner_offsets).reshape(-1, 2).astype(np.float32)
        corners = cv2.boxPoints(cv2.minAreaRect(edge))
        if (corners < -0.5).any() or (corners > (w + 0.5, h + 0.5)).any():
            # It sticks out of the image (an object cut by the border): the visible box fits and covers as well
            corners = np.array([[x0, y0], [x1, y0], [x1, y1], [x0, y1]], np.float32)
        # Clipping by at most half a pixel keeps every visible pixel centre inside (each lies 0.5 from the edges)
        corners = np.clip(corners, 0, (w, h)).astype(np.float32)
        annotations.append(
            Annotation(inst.cls, inst.box, polygon.astype(np.float32), _keypoints(scene, k, inst), corners)
        )
    return annotations


def scene_labels(scene: Scene, min_visible: float = MIN_VISIBLE, task: str = "detect") -> list[str]:
    """Return YOLO label lines (normalised coordinates) for the sufficiently visible objects.

    Args:
        scene (Scene): A rendered scene.
        min_visible (float): Smallest visible fraction of an object's silhouette that still gets a label.
        task (str): Label format: ``detect`` (``cls cx cy w h``), ``segment`` (``cls x1 y1 x2 y2 ...``), ``pose``
            (``cls cx cy w h`` then ``x y v`` per keypoint) or ``obb`` (``cls x1 y1 x2 y2 x3 y3 x4 y4``).

    Returns:
        (list[str]): One line per labelled object, in drawing order.

    Raises:
        ValueError: For a task without per-image label files.
    """
    if task not in LABEL_NOUNS:
        raise ValueError(f"task must be one of {', '.join(LABEL_NOUNS)} for label files, got {task!r}")
    h, w = scene.image.shape[:2]

    def xy(points: np.ndarray) -> str:
        return " ".join(f"{x / w:.6f} {y / h:.6f}" for x, y in points)

    def box(b: tuple[int, int, int, int]) -> str:
        x0, y0, x1, y1 = b
        cx, cy, bw, bh = (x0 + x1) / 2 / w, (y0 + y1) / 2 / h, (x1 - x0) / w, (y1 - y0) / h
        return f"{cx:.6f} {cy:.6f} {bw:.6f} {bh:.6f}"

    if task == "detect":
        return [f"{inst.cls} {box(inst.box)}" for inst in scene.instances if _is_labelled(inst, min_visible)]
    lines = []
    for a in scene_annotations(scene, min_visible):
        if task == "segment":
            lines.append(f"{a.cls} {xy(a.polygon)}")
        elif task == "pose":
            kpts = " ".join(f"{x / w:.6f} {y / h:.6f} {int(v)}" for x, y, v in a.keypoints)
            lines.append(f"{a.cls} {box(a.box)} {kpts}")
        else:
            lines.append(f"{a.cls} {xy(a.corners)}")
    return lines


def _metadata(train: int, val: int, imgsz: int, seed: int, task: str = "detect") -> dict:
    """Return what a dataset depends on; a dataset on disk is reused only if its marker holds exactly this."""
    meta = {
        "generator": "yolo_revcol.data.synthetic",
        "format_version": FORMAT_VERSION,
        "train": train,
        "val": val,
        "imgsz": imgsz,
        "seed": seed,
        "names": list(CLASS_NAMES),
    }
    if task != "detect":  # detection markers keep their original form, so existing datasets stay valid
        meta["task"] = task
    return meta


def _read_marker(root: Path) -> dict | None:
    """Return the marker of a generated dataset, or None if there is none or it is unreadable."""
    try:
        return json.loads((root / MARKER).read_text())
    except (OSError, ValueError):
        return None


def _is_complete(root: Path, meta: dict) -> bool:
    """Return whether ``root`` holds a complete dataset generated with ``meta``."""
    if _read_marker(root) != meta:
        return False
    for split in SPLITS:
        n = meta[split]
        if meta.get("task") == "classify":
            if not (root / split).is_dir() or sum(1 for _ in (root / split).glob("*/*.png")) != n:
                return False
            continue
        images, labels = root / "images" / split, root / "labels" / split
        if not (images.is_dir() and labels.is_dir()):
            return False
        if sum(1 for _ in images.glob("*.jpg")) != n or sum(1 for _ in labels.glob("*.txt")) != n:
            return False
    return True


def _write_classification_splits(root: Path, meta: dict) -> None:
    """Render and write every image of the classification dataset described by ``meta``, one folder per class."""
    for split_index, split in enumerate(SPLITS):
        for name in CLASS_NAMES:
            (root / split / name).mkdir(parents=True)
        for i in range(meta[split]):
            cls = i % len(CLASS_NAMES)  # balanced classes
            # Its own seed sequence: not the backgrounds of the detection images with the same index
            rng = np.random.default_rng((meta["seed"], split_index, i, TASKS.index("classify")))
            image = render_classification_image(rng, meta["imgsz"], cls).image
            path = root / split / CLASS_NAMES[cls] / f"{i:06d}.png"
            if not cv2.imwrite(str(path), image):
                raise OSError(f"could not write {path}")


def _write_splits(root: Path, meta: dict) -> None:
    """Render and write every image and label file of the dataset described by ``meta`` under ``root``."""
    task = meta.get("task", "detect")
    if task == "classify":
        return _write_classification_splits(root, meta)
    for split_index, split in enumerate(SPLITS):
        images, labels = root / "images" / split, root / "labels" / split
        images.mkdir(parents=True)
        labels.mkdir(parents=True)
        for i in range(meta[split]):
            # One generator per image: the result does not depend on which images were generated before it
            scene = render_scene(np.random.default_rng((meta["seed"], split_index, i)), meta["imgsz"])
            stem = f"{i:06d}"
            if not cv2.imwrite(str(images / f"{stem}.jpg"), scene.image, [cv2.IMWRITE_JPEG_QUALITY, 92]):
                raise OSError(f"could not write {images / stem}.jpg")
            lines = scene_labels(scene, task=task)
            (labels / f"{stem}.txt").write_text("".join(f"{line}\n" for line in lines))


def _swap_in(new: Path, root: Path) -> None:
    """Move the finished dataset ``new`` to ``root``, replacing whatever is there with as short a gap as possible."""
    trash = None
    if root.exists() or root.is_symlink():
        trash = Path(tempfile.mkdtemp(prefix=f".{root.name}.old-", dir=root.parent))
        os.replace(root, trash / root.name)
    os.replace(new, root)
    if trash is not None:
        shutil.rmtree(trash, ignore_errors=True)


def generate_dataset(
    root: str | Path,
    task: str = "detect",
    train: int = 400,
    val: int = 100,
    imgsz: int = 320,
    seed: int = 0,
    overwrite: bool = False,
) -> Path:
    """Generate a synthetic shapes dataset for one Ultralytics task, or reuse it if already complete.

    ``detect``, ``segment``, ``pose`` and ``obb`` write ``root/images/{train,val}/NNNNNN.jpg`` and
    ``root/labels/{train,val}/NNNNNN.txt`` in that task's YOLO label format (see the module docstring); the same
    ``seed`` and ``imgsz`` draw the same images for all four. ``classify`` writes
    ``root/{train,val}/<class>/NNNNNN.png``,
    one roughly centred shape per image, classes balanced. Last comes a marker file holding the arguments. The
    dataset is built in a temporary sibling folder and renamed into place, so an interrupted run never leaves a
    partial dataset at ``root``. A folder at ``root`` that this generator did not write is never deleted unless
    ``overwrite`` is set.

    Args:
        root (str | Path): Dataset folder to create.
        task (str): One of ``TASKS``.
        train (int): Number of training images.
        val (int): Number of validation images.
        imgsz (int): Image side in pixels (images are square).
        seed (int): Non-negative random seed; image ``i`` of a split depends only on ``(seed, split, i)``.
        overwrite (bool): Regenerate even if a complete dataset with the same arguments exists.

    Returns:
        (Path): The absolute dataset root.

    Raises:
        ValueError: If an argument is out of range.
        FileExistsError: If ``root`` exists, is not empty and was not written by this generator, and ``overwrite``
            is not set.
    """
    if task not in TASKS:
        raise ValueError(f"task must be one of {', '.join(TASKS)}, got {task!r}")
    if min(train, val) < 0 or train + val == 0:
        raise ValueError(f"need a non-negative number of train and val images, and at least one, got {train}, {val}")
    if imgsz < 32:
        raise ValueError(f"imgsz must be at least 32, got {imgsz}")
    if seed < 0:
        raise ValueError(f"seed must be non-negative, got {seed}")
    root = Path(os.path.abspath(Path(root).expanduser()))
    meta = _metadata(int(train), int(val), int(imgsz), int(seed), task)
    if not overwrite and _is_complete(root, meta):
        return root
    foreign = root.exists() and _read_marker(root) is None and not (root.is_dir() and not any(root.iterdir()))
    if foreign and not overwrite:
        raise FileExistsError(f"'{root}' exists and was not written by {meta['generator']}; use overwrite=True")

    root.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{root.name}.tmp-", dir=root.parent))
    try:
        _write_splits(tmp, meta)
        (tmp / MARKER).write_text(json.dumps(meta, indent=2) + "\n")  # last: the dataset is complete from here on
        if overwrite or not _is_complete(root, meta):  # a concurrent run may have finished the same dataset meanwhile
            _swap_in(tmp, root)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return root


def generate_detection_dataset(
    root: str | Path, train: int = 400, val: int = 100, imgsz: int = 320, seed: int = 0, overwrite: bool = False
) -> Path:
    """Generate the synthetic shapes dataset in Ultralytics YOLO detection format, or reuse it if already complete.

    Writes ``root/images/{train,val}/NNNNNN.jpg`` and ``root/labels/{train,val}/NNNNNN.txt`` (one ``cls cx cy w h``
    line per object, normalised to the image size) and, last, a marker file holding the arguments. This is
    ``generate_dataset(root, "detect", ...)``; see there for the arguments, return value and errors.
    """
    return generate_dataset(root, "detect", train, val, imgsz, seed, overwrite)


def _count_labels(root: Path, split: str) -> int:
    """Return the number of label lines in a split."""
    return sum(len(f.read_text().splitlines()) for f in (root / "labels" / split).glob("*.txt"))


def default_root(task: str) -> Path:
    """Where a task's dataset goes by default: Ultralytics' datasets dir, as its dataset YAML's ``download`` does.

    There ``data=revcol-shapes-cls`` finds the classification dataset by name, as Ultralytics finds its own.
    """
    from ultralytics.utils import DATASETS_DIR  # imported only here: it pulls in torch

    return Path(DATASETS_DIR) / DATASET_NAMES[task]


def main(argv: list[str] | None = None) -> None:
    """Command-line entry point: generate a dataset and print a one-line summary.

    Args:
        argv (list[str] | None): Arguments without the program name; None reads ``sys.argv``.
    """
    parser = argparse.ArgumentParser(
        prog="python -m yolo_revcol.data.synthetic",
        description="Generate a synthetic shapes dataset for an Ultralytics YOLO task (detect, segment, pose, obb, "
        "classify), offline.",
    )
    parser.add_argument("--task", default="detect", choices=TASKS, help="label format and layout (default: detect)")
    parser.add_argument(
        "--out",
        type=Path,
        help="dataset folder to create (default: Ultralytics' datasets_dir/revcol-shapes[-seg|-pose|-obb|-cls])",
    )
    for key, text in (("train", "training images"), ("val", "validation images"), ("imgsz", "image side in pixels")):
        sizes = ", ".join(f"{t} {d[key]}" for t, d in DEFAULT_SIZES.items() if t in ("detect", "classify"))
        parser.add_argument(f"--{key}", type=int, help=f"{text} (default: {sizes}; others as detect)")
    parser.add_argument("--seed", type=int, default=0, help="random seed (default: 0)")
    parser.add_argument("--overwrite", action="store_true", help="regenerate even if the dataset is complete")
    args = parser.parse_args(argv)
    for key, value in DEFAULT_SIZES[args.task].items():
        if getattr(args, key) is None:
            setattr(args, key, value)
    out = args.out.expanduser() if args.out else default_root(args.task)

    t = time.perf_counter()
    meta = _metadata(args.train, args.val, args.imgsz, args.seed, args.task)
    reused = not args.overwrite and _is_complete(Path(os.path.abspath(out)), meta)
    try:
        root = generate_dataset(out, args.task, args.train, args.val, args.imgsz, args.seed, args.overwrite)
    except (ValueError, FileExistsError) as e:
        parser.error(str(e))
    dt = time.perf_counter() - t
    if args.task == "classify":
        splits = ", ".join(f"{s} {meta[s]} images" for s in SPLITS)
    else:
        splits = ", ".join(f"{s} {meta[s]} images {_count_labels(root, s)} {LABEL_NOUNS[args.task]}" for s in SPLITS)
    how = "already complete, reused" if reused else f"generated in {dt:.1f}s"
    print(f"{root}: {args.task}, {splits}, {len(CLASS_NAMES)} classes, {args.imgsz}px, seed {args.seed} ({how})")


if __name__ == "__main__":
    main()
