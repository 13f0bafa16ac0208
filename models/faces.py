"""Find the faces in an image, and the square crop of each that a detector judges.

Everything here follows the "faces" section of models/preprocessing.json, which the extension
reads too (extension/src/faces.js mirrors this module step for step):

1. Letterbox: the whole image, scaled to fit the face model's square input and centred on
   black. Decode every anchor (MediaPipe's SSD anchors, fixed size) into a box in image
   pixels, keep those scoring at least `min_score`, and merge overlapping boxes with
   MediaPipe's weighted non-maximum suppression.
2. Where that finds no face, look again with the image shrunk onto a canvas `tight_crop_pad`
   larger on every side: a face that fills the picture (a tight crop, as in faces-v1) is too
   big for the model otherwise. There, only boxes at least `tight_crop_min_side` of the
   image's short side count: a whole scene shrunk that far shows false faces.
3. Where neither view finds a face in a picture larger than `tile_side`, look again tile by
   tile (`tiles`): in the whole view a small face of a large picture shrinks below what the
   model finds; a tile keeps it large enough. The tiles' boxes are merged as one view.
4. A face is judged when its box side is at least `min_face_side` pixels; the largest
   `max_faces` are kept. Its crop is a square `crop_margin` times the box side, centred on the
   box, moved to lie inside the image, and never larger than the image's short side.
"""
from __future__ import annotations

import math
import os
from dataclasses import dataclass
from functools import lru_cache

import numpy as np

from models.preprocessing import contract


@dataclass(frozen=True)
class FaceContract:
    model_file: str
    input_size: int
    strides: tuple
    anchors_per_cell: tuple
    score_clip: float
    min_score: float
    nms_iou: float
    tight_crop_pad: float
    tight_crop_min_side: float
    tile_side: int
    tile_overlap: float
    tiles_per_side: int
    tile_edge: float
    tile_found_side: int
    crop_margin: float
    min_face_side: int
    max_faces: int


@lru_cache(maxsize=1)
def face_contract() -> FaceContract:
    f = contract()["faces"]
    d = f["detector"]
    return FaceContract(
        model_file=d["model_file"], input_size=int(d["input_size"]), strides=tuple(d["anchor_strides"]),
        anchors_per_cell=tuple(d["anchors_per_cell"]), score_clip=float(d["score_clip"]),
        min_score=float(d["min_score"]), nms_iou=float(d["nms_iou"]), tight_crop_pad=float(d["tight_crop_pad"]),
        tight_crop_min_side=float(d["tight_crop_min_side"]), tile_side=int(d["tile_side"]),
        tile_overlap=float(d["tile_overlap"]), tiles_per_side=int(d["tiles_per_side"]), tile_edge=float(d["tile_edge"]),
        tile_found_side=int(d["tile_found_side"]),
        crop_margin=float(f["crop"]["margin"]), min_face_side=int(f["min_face_side"]), max_faces=int(f["max_faces"]),
    )


def round_half_up(v: float) -> int:
    """floor(v + 0.5): JavaScript's Math.round, so both sides round alike."""
    return int(math.floor(v + 0.5))


@dataclass(frozen=True)
class Face:
    """One face: its box in image pixels (x0, y0, x1, y1), the detector's score, its six
    keypoints (eyes, nose tip, mouth, ear tragions) in pixels, and the square crop judged."""

    box: tuple
    score: float
    keypoints: tuple
    crop: tuple  # (x, y, side): integer pixels, inside the image

    @property
    def side(self) -> float:
        return max(self.box[2] - self.box[0], self.box[3] - self.box[1])

    def as_dict(self) -> dict:
        return {
            "box": [round(float(v), 1) for v in self.box],
            "detector_score": round(float(self.score), 4),
            "crop": list(self.crop),
            "keypoints": [[round(float(x), 1), round(float(y), 1)] for x, y in self.keypoints],
        }


@dataclass(frozen=True)
class Found:
    """What the face search gave for one image: the faces judged (largest first) and how many
    smaller faces were seen but left out as too small or over the limit."""

    faces: list
    too_small: int
    over_limit: int
    width: int
    height: int


def anchors(c: FaceContract | None = None) -> np.ndarray:
    """Anchor centres (n, 2) in 0..1, in the model's output order (MediaPipe's SSD anchors with
    fixed size: one row per cell per anchor, layers in order of their stride)."""
    c = c or face_contract()
    out = []
    for stride, per_cell in zip(c.strides, c.anchors_per_cell):
        n = c.input_size // stride
        for y in range(n):
            for x in range(n):
                out.extend([((x + 0.5) / n, (y + 0.5) / n)] * per_cell)
    return np.asarray(out, np.float32)


@dataclass(frozen=True)
class Letterbox:
    """Where the image lies on the model's canvas: canvas px = offset + image px * scale."""

    offset_x: int
    offset_y: int
    scale_x: float
    scale_y: float


def letterbox_geometry(h: int, w: int, size: int, pad: float):
    """Resized size (rh, rw), box-average factor k, and the Letterbox of an h x w image."""
    side = max(h, w) * (1 + 2 * pad)
    rh, rw = max(1, round_half_up(h * size / side)), max(1, round_half_up(w * size / side))
    k = max(1, min(h // rh, w // rw))
    used_h, used_w = (h // k) * k, (w // k) * k  # the box average drops the last h % k rows
    oy, ox = (size - rh) // 2, (size - rw) // 2
    return (rh, rw), k, Letterbox(ox, oy, rw / used_w, rh / used_h)


def letterbox(image: np.ndarray, size: int, pad: float):
    """The image on a black size x size canvas (float32, 0..255) and its Letterbox."""
    from models.preprocessing import box_then_bilinear

    h, w = image.shape[:2]
    (rh, rw), k, geo = letterbox_geometry(h, w, size, pad)
    canvas = np.zeros((size, size, 3), np.float32)
    canvas[geo.offset_y:geo.offset_y + rh, geo.offset_x:geo.offset_x + rw] = box_then_bilinear(image, k, rh, rw)
    return canvas, geo


def decode(raw_boxes: np.ndarray, raw_scores: np.ndarray, geo: Letterbox, c: FaceContract) -> tuple:
    """One view's model outputs -> (scores (n,), boxes (n, 4), keypoints (n, 6, 2)) in image
    pixels, for the anchors that score at least min_score."""
    z = np.clip(raw_scores.reshape(-1).astype(np.float64), -c.score_clip, c.score_clip)
    scores = 1 / (1 + np.exp(-z))
    keep = scores >= c.min_score
    if not keep.any():
        return np.zeros(0), np.zeros((0, 4)), np.zeros((0, 6, 2))
    a = anchors(c)[keep].astype(np.float64) * c.input_size  # anchor centres, canvas px
    r = raw_boxes.reshape(-1, 16)[keep].astype(np.float64)
    cx, cy = a[:, 0] + r[:, 0], a[:, 1] + r[:, 1]
    half_w, half_h = r[:, 2] / 2, r[:, 3] / 2
    boxes = np.stack([cx - half_w, cy - half_h, cx + half_w, cy + half_h], axis=1)
    kps = a[:, None, :] + r[:, 4:].reshape(-1, 6, 2)
    scale = np.array([geo.scale_x, geo.scale_y])
    offset = np.array([geo.offset_x, geo.offset_y])
    boxes = ((boxes.reshape(-1, 2, 2) - offset) / scale).reshape(-1, 4)
    kps = (kps - offset) / scale
    return scores[keep], boxes, kps


def iou(a, b) -> float:
    w = min(a[2], b[2]) - max(a[0], b[0])
    h = min(a[3], b[3]) - max(a[1], b[1])
    if w <= 0 or h <= 0:
        return 0.0
    inter = w * h
    union = (a[2] - a[0]) * (a[3] - a[1]) + (b[2] - b[0]) * (b[3] - b[1]) - inter
    return inter / union if union > 0 else 0.0


def weighted_nms(scores, boxes, keypoints, iou_threshold: float) -> list:
    """MediaPipe's weighted non-maximum suppression: the best remaining box takes every box that
    overlaps it by more than iou_threshold, and becomes their score-weighted average; its score
    stays the best one's. Returns (score, box, keypoints) tuples, best first. Ties keep index order."""
    order = sorted(range(len(scores)), key=lambda i: -scores[i])
    out = []
    while order:
        top = order[0]
        group = [i for i in order if iou(boxes[top], boxes[i]) > iou_threshold or i == top]
        weights = np.array([scores[i] for i in group])
        box = (weights[:, None] * boxes[group]).sum(0) / weights.sum()
        kps = (weights[:, None, None] * keypoints[group]).sum(0) / weights.sum()
        out.append((float(scores[top]), box, kps))
        taken = set(group)
        order = [i for i in order if i not in taken]
    return out


def tiles(height: int, width: int, c: FaceContract) -> list:
    """The square tiles (x, y, side) of the third look, row by row; none for a picture no
    larger than tile_side (the whole view already shows its faces large enough)."""
    long, short = max(height, width), min(height, width)
    if c.tile_side <= 0 or long <= c.tile_side:
        return []
    step = 1 - c.tile_overlap
    side = min(max(c.tile_side, math.ceil(long / (1 + (c.tiles_per_side - 1) * step))), short)

    def starts(length: int) -> list:
        if length <= side:
            return [0]
        n = math.ceil((length - side) / (side * step)) + 1
        return [round_half_up(i * (length - side) / (n - 1)) for i in range(n)]

    return [(x, y, side) for y in starts(height) for x in starts(width)]


def smallest_face_found(height: int, width: int, c: FaceContract | None = None) -> int:
    """About the smallest face box side (px) the search finds reliably in a picture this
    large: the measured tile_found_side at tile_side, growing with a larger picture's tiles."""
    c = c or face_contract()
    t = tiles(height, width, c)
    side = t[0][2] if t else c.tile_side
    return max(c.min_face_side, math.ceil(c.tile_found_side * side / c.tile_side))


def inside_tile(boxes: np.ndarray, tile: tuple, height: int, width: int, edge: float) -> np.ndarray:
    """Which boxes (in tile px) stay clear of the tile's sides that lie inside the picture:
    a face cut there is seen whole in the neighbouring tile."""
    x, y, side = tile
    keep = np.ones(len(boxes), bool)
    if x > 0:
        keep &= boxes[:, 0] >= edge
    if y > 0:
        keep &= boxes[:, 1] >= edge
    if x + side < width:
        keep &= boxes[:, 2] <= side - edge
    if y + side < height:
        keep &= boxes[:, 3] <= side - edge
    return keep


def crop_square(box, height: int, width: int, margin: float) -> tuple:
    """(x, y, side) of the square crop judged for a face box: margin x the box's longer side,
    centred on the box, moved inside the image, at most the image's short side."""
    x0, y0, x1, y1 = box
    side = min(round_half_up(margin * max(x1 - x0, y1 - y0)), height, width)
    side = max(side, 1)
    x = min(max(round_half_up((x0 + x1) / 2 - side / 2), 0), width - side)
    y = min(max(round_half_up((y0 + y1) / 2 - side / 2), 0), height - side)
    return (x, y, side)


def select(candidates: list, height: int, width: int, c: FaceContract) -> Found:
    """Merged boxes -> the faces judged: clipped to the image, large enough, largest first."""
    faces, too_small = [], 0
    for score, box, kps in candidates:
        box = (max(box[0], 0.0), max(box[1], 0.0), min(box[2], float(width)), min(box[3], float(height)))
        if box[2] <= box[0] or box[3] <= box[1]:
            continue
        face = Face(tuple(float(v) for v in box), score, tuple(map(tuple, kps.tolist())),
                    crop_square(box, height, width, c.crop_margin))
        if face.side < c.min_face_side:
            too_small += 1
        else:
            faces.append(face)
    faces.sort(key=lambda f: (-f.side, f.box[0], f.box[1]))
    return Found(faces[: c.max_faces], too_small, max(0, len(faces) - c.max_faces), width, height)


def face_threads() -> int:
    """Threads per face search: UNMASK_FACE_THREADS, 1 by default (one core per picture)."""
    value = os.environ.get("UNMASK_FACE_THREADS", "1")
    try:
        threads = int(value)
    except ValueError:
        threads = 0
    if threads < 1:
        raise ValueError(f"UNMASK_FACE_THREADS={value!r}: give a whole number of threads, at least 1")
    return threads


class FaceFinder:
    """The face model plus the contract's decoding: `find(image)` for one RGB uint8 image.

    The model is BlazeFace on LiteRT by default (models/blazeface.py BlazeFaceLite); any
    callable with the Keras port's inputs and outputs will do (build_blazeface's model)."""

    def __init__(self, model=None, c: FaceContract | None = None, threads: int | None = None):
        self.contract = c or face_contract()
        if model is None:
            from models.tensorflow_import import import_tensorflow

            import_tensorflow()  # quietly, before models.blazeface imports Keras
            from models.blazeface import BlazeFaceLite, model_path

            model = BlazeFaceLite(model_path(self.contract.model_file), threads or face_threads())
        self.model = model

    def find(self, image: np.ndarray) -> Found:
        return self.find_batch([image])[0]

    def _decoded(self, images: list, pad: float) -> list:
        """(scores, boxes, keypoints) before merging, for each image seen on a canvas with `pad`."""
        c = self.contract
        views = [letterbox(image, c.input_size, pad) for image in images]
        out = self.model(np.stack([v[0] for v in views]), training=False)
        raw_boxes, raw_scores = np.asarray(out["boxes"]), np.asarray(out["scores"])
        return [decode(raw_boxes[i], raw_scores[i], geo, c) for i, (_, geo) in enumerate(views)]

    def _candidates(self, images: list, pad: float) -> list:
        """Merged (score, box, keypoints) for each image, seen on a canvas with `pad`."""
        return [weighted_nms(*d, self.contract.nms_iou) for d in self._decoded(images, pad)]

    def _tiled(self, image: np.ndarray) -> list:
        """Merged (score, box, keypoints) of the picture seen tile by tile (`tiles`)."""
        c = self.contract
        h, w = image.shape[:2]
        parts = tiles(h, w, c)
        if not parts:
            return []
        scores, boxes, kps = [], [], []
        for tile, (s, b, k) in zip(parts, self._decoded([crop_image(image, t) for t in parts], 0.0)):
            keep = inside_tile(b, tile, h, w, c.tile_edge)
            offset = np.array([tile[0], tile[1]], np.float64)
            scores.append(s[keep])
            boxes.append(b[keep] + np.tile(offset, 2))
            kps.append(k[keep] + offset)
        return weighted_nms(np.concatenate(scores), np.concatenate(boxes), np.concatenate(kps), c.nms_iou)

    def find_batch(self, images: list) -> list:
        if not images:
            return []
        c = self.contract
        merged = self._candidates(images, 0.0)
        again = [i for i, m in enumerate(merged) if not m]
        if again:
            for i, m in zip(again, self._candidates([images[i] for i in again], c.tight_crop_pad)):
                short = min(images[i].shape[:2])
                merged[i] = [(s, b, k) for s, b, k in m
                             if max(b[2] - b[0], b[3] - b[1]) >= c.tight_crop_min_side * short]
        for i in [i for i, m in enumerate(merged) if not m]:
            merged[i] = self._tiled(images[i])
        return [select(m, im.shape[0], im.shape[1], c) for m, im in zip(merged, images)]


def crop_image(image: np.ndarray, crop) -> np.ndarray:
    """The square (x, y, side) of a face's crop, cut out of the image (a view, not a copy)."""
    x, y, side = crop
    return image[y:y + side, x:x + side]
