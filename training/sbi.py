"""Self-blended images (Shiohara & Yamasaki, CVPR 2022): fakes made from real faces, afresh
every epoch, each next to the real it came from.

A real face crop gets a slightly changed copy of itself (colour, brightness, sharpness, scale,
a small shift) blended back in through a mask drawn from its 468 face-mesh landmarks, with a
soft, randomly shaped edge: the whole face (like a swap) or one part (eyes, nose, mouth, like
a composite). Identity, pose, lighting and collection are those of the real it sits beside in
the batch, so only the seam and the mismatch tell them apart, which every swap and paste
leaves behind.

Landmarks come from MediaPipe's face mesh (models/blazeface.py build_face_mesh), run once per
real crop and cached on disk like the face crops (training/facecrops.py).

  `unmask train --sbi add`   collection fakes + each real's blended copy
  `unmask train --sbi only`  reals and their blended copies only (no collection fakes)
"""
from __future__ import annotations

import hashlib
from pathlib import Path

import numpy as np

MODES = ("off", "add", "only")
MESH_SIZE = 192  # the face mesh's input side
MESH_BATCH = 32
MIN_FACE_SCORE = 0.0  # the mesh's raw face-presence logit: below, the crop gets no blended copy

# MediaPipe face-mesh indices of each region (canonical 468-point topology).
FACE_OVAL = [10, 338, 297, 332, 284, 251, 389, 356, 454, 323, 361, 288, 397, 365, 379, 378, 400, 377, 152, 148,
             176, 149, 150, 136, 172, 58, 132, 93, 234, 127, 162, 21, 54, 103, 67, 109]
RIGHT_EYE = [33, 7, 163, 144, 145, 153, 154, 155, 133, 246, 161, 160, 159, 158, 157, 173,
             46, 53, 52, 65, 55, 70, 63, 105, 66, 107]  # with the brow
LEFT_EYE = [263, 249, 390, 373, 374, 380, 381, 382, 362, 466, 388, 387, 386, 385, 384, 398,
            276, 283, 282, 295, 285, 300, 293, 334, 296, 336]
NOSE = [168, 6, 197, 195, 5, 4, 1, 19, 94, 2, 98, 327, 129, 358, 49, 279, 48, 278, 64, 294, 115, 344]
MOUTH = [61, 146, 91, 181, 84, 17, 314, 405, 321, 375, 291, 185, 40, 39, 37, 0, 267, 269, 270, 409]
# (region, how much the hull grows about its centre, weight of the choice). Half are whole
# faces (swaps), half single parts (composites).
REGIONS = [
    ("face", list(range(468)), 1.0, 0.35),
    ("face-oval", FACE_OVAL, 0.95, 0.15),
    ("eyes", RIGHT_EYE + LEFT_EYE, 1.25, 0.15),
    ("one-eye", None, 1.35, 0.1),  # left or right, chosen per image
    ("nose", NOSE, 1.3, 0.1),
    ("mouth", MOUTH, 1.3, 0.15),
]
BLEND_RATIOS = (0.25, 0.5, 0.75, 1.0, 1.0, 1.0)  # as in the paper: mostly a full blend


# --- landmarks ------------------------------------------------------------------------------
def cache_file() -> Path:
    """Beside the face crops' cache, keyed by the face contract (through that cache's name) and
    the mesh's input side."""
    from training.facecrops import cache_file as crops_cache

    crops = crops_cache()
    digest = hashlib.sha256((crops.name + str(MESH_SIZE) + "face_landmark.tflite").encode()).hexdigest()[:16]
    return crops.parent.parent / "landmarks" / f"mesh-{digest}.npz"


def _key(path: str, crop) -> str:
    """The file as the crops' cache knows it (path, size, modification time), and the crop."""
    from training.facecrops import file_key

    return f"{file_key(path)}|{tuple(crop) if crop else None}"


def face_landmarks(paths: list[str], crops: list, progress: bool = True) -> list:
    """(468, 2) float32 landmarks of each face crop, as shares of the crop's side (0..1), or
    None where the mesh sees no face or the file cannot be read. Cached on disk by file and crop."""
    from models.preprocessing import ImageError, load_image

    from training import diskcache
    from training.facecrops import apply_crop

    keys = []
    for p, c in zip(paths, crops):
        try:
            keys.append(_key(p, c))
        except OSError:
            keys.append(None)
    mesh = []

    def find(indexes) -> dict:
        from PIL import Image

        if not mesh:
            from models.blazeface import build_face_mesh, model_path

            mesh.append(build_face_mesh(model_path("face_landmark.tflite")))
        batch, pixels = [], []
        for i in indexes:
            try:
                face = apply_crop(load_image(paths[i]), crops[i])
            except ImageError:
                continue
            pixels.append(np.asarray(Image.fromarray(face).resize((MESH_SIZE, MESH_SIZE), Image.BILINEAR), np.float32))
            batch.append(i)
        if not batch:
            return {}
        out = mesh[0](np.stack(pixels), training=False)
        points = np.asarray(out["landmarks"]).reshape(len(batch), 468, 3)[..., :2] / MESH_SIZE
        score = np.asarray(out["face"]).reshape(-1)
        return {i: pts.astype(np.float16) if s > MIN_FACE_SCORE else np.full((468, 2), np.nan, np.float16)
                for i, pts, s in zip(batch, points, score)}

    cache = diskcache.fill(cache_file(), keys, find, batch=MESH_BATCH, desc="face landmarks", progress=progress)
    out = []
    for k in keys:
        pts = cache.get(k) if k is not None else None
        out.append(None if pts is None or np.isnan(pts).any() else np.asarray(pts, np.float32))
    return out


# --- one blended image ------------------------------------------------------------------------
def region_mask(points: np.ndarray, size: int, rng: np.random.Generator) -> tuple[np.ndarray, str]:
    """A soft mask (size, size) float32 in 0..1 over one region of the face, with a randomly
    shaped edge: the hull's corners jittered, grown or shrunk, then blurred."""
    import cv2

    weights = np.array([r[3] for r in REGIONS])
    name, indices, grow, _ = REGIONS[rng.choice(len(REGIONS), p=weights / weights.sum())]
    if name == "one-eye":
        indices = RIGHT_EYE if rng.random() < 0.5 else LEFT_EYE
    pts = points[indices] * size
    hull = cv2.convexHull(pts.astype(np.float32)).reshape(-1, 2)
    centre = hull.mean(axis=0)
    extent = max(float(np.ptp(hull[:, 0])), float(np.ptp(hull[:, 1])), 2.0)
    hull = centre + (hull - centre) * grow * rng.uniform(0.9, 1.1, (1, 2))
    hull = hull + rng.normal(0, 0.03 * extent, hull.shape)  # an uneven outline, not a clean polygon
    mask = np.zeros((size, size), np.float32)
    cv2.fillPoly(mask, [np.round(hull).astype(np.int32)], 1.0)
    k = max(1, int(round(extent * rng.uniform(0.02, 0.12))))
    kernel = cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (2 * k + 1, 2 * k + 1))
    mask = cv2.erode(mask, kernel) if rng.random() < 0.5 else cv2.dilate(mask, kernel)
    sigma = extent * rng.uniform(0.02, 0.1)
    mask = cv2.GaussianBlur(mask, (0, 0), sigma)
    if mask.max() > 0:
        mask /= mask.max()
    return mask * rng.choice(BLEND_RATIOS), name


def changed_copy(image: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """A slightly different copy of a face (float32 0..255): colour, brightness and contrast,
    sharpness or blur, a down-and-up scaling, and a small scale and shift."""
    import cv2

    x = image.astype(np.float32)
    size = x.shape[0]
    if rng.random() < 0.8:  # colour and light
        x = x * rng.uniform(0.9, 1.1) + rng.uniform(-15, 15)  # contrast, brightness
        x = x + rng.uniform(-12, 12, (1, 1, 3))  # a colour cast
        if rng.random() < 0.3:
            hsv = cv2.cvtColor(np.clip(x, 0, 255).astype(np.uint8), cv2.COLOR_RGB2HSV).astype(np.float32)
            hsv[..., 0] = (hsv[..., 0] + rng.uniform(-5, 5)) % 180
            hsv[..., 1] = hsv[..., 1] * rng.uniform(0.85, 1.15)
            x = cv2.cvtColor(np.clip(hsv, 0, 255).astype(np.uint8), cv2.COLOR_HSV2RGB).astype(np.float32)
    r = rng.random()
    if r < 0.3:  # sharper
        blurred = cv2.GaussianBlur(x, (0, 0), rng.uniform(0.8, 1.5))
        x = x + rng.uniform(0.3, 1.0) * (x - blurred)
    elif r < 0.6:  # softer
        x = cv2.GaussianBlur(x, (0, 0), rng.uniform(0.5, 1.5))
    if rng.random() < 0.3:  # a lower-resolution source
        small = max(8, int(size * rng.uniform(0.4, 0.8)))
        x = cv2.resize(cv2.resize(x, (small, small), interpolation=cv2.INTER_AREA), (size, size), interpolation=cv2.INTER_LINEAR)
    # A small scale and shift, as when a face is pasted from a slightly different pose.
    scale = rng.uniform(0.95, 1.05)
    shift = rng.uniform(-0.03, 0.03, 2) * size
    c = (size - 1) / 2
    matrix = np.array([[scale, 0, c - scale * c + shift[0]], [0, scale, c - scale * c + shift[1]]], np.float32)
    x = cv2.warpAffine(x, matrix, (size, size), flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_REFLECT)
    return np.clip(x, 0, 255)


def self_blend(image: np.ndarray, points: np.ndarray, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray, str]:
    """(blended image float32 0..255, its mask, the region's name) for one real face crop
    (square, float32 0..255) and its landmarks (shares of the side). Which of the two gets
    changed is chosen at random: the pasted part or the rest."""
    image = np.asarray(image, np.float32)
    mask, region = region_mask(points, image.shape[0], rng)
    changed = changed_copy(image, rng)
    source, target = (changed, image) if rng.random() < 0.5 else (image, changed)
    m = mask[..., None]
    return np.clip(source * m + target * (1 - m), 0, 255).astype(np.float32), mask, region


def blend_one(image, points, seed):
    """tf.numpy_function body: (blended image, ok). ok is False where the mask came out empty
    (e.g. landmarks off the crop): the copy is then not a fake and gets no weight."""
    rng = np.random.default_rng(int(seed))
    blended, mask, _ = self_blend(image, points, rng)
    ok = bool(mask.max() > 0.1 and np.abs(blended - image).max() > 1.0)
    return blended, np.bool_(ok)


# --- the training pipeline --------------------------------------------------------------------
def paired_dataset(samples, crops, points, input_size: int, batch_size: int, mode: str, seed: int,
                   class_weight: dict | None, augment_fn=None, fresh: bool = True):
    """Batches of (pixels, labels, weights) where every real with landmarks sits next to its
    own blended copy, made afresh every epoch (fresh=False: the same blends every time, for
    validation). mode "add" keeps the collection fakes (and reals without landmarks) as well;
    "only" keeps reals only. Batches hold whole pairs (batch_size is made even), so a pair is
    never split across two steps."""
    import tensorflow as tf

    from training.pipeline import load_and_resize

    if mode not in ("add", "only"):
        raise ValueError(f"sbi mode must be add or only here, not {mode!r}")
    batch_size += batch_size % 2
    paired = [i for i, s in enumerate(samples) if s.label == 0 and points[i] is not None]
    single = [i for i, s in enumerate(samples) if i not in set(paired) and (mode == "add" or s.label == 0)]
    if not paired:
        raise ValueError("no real face with landmarks to blend: self-blended training needs real faces")
    n_real = len(paired) + sum(samples[i].label == 0 for i in single)
    n_fake = len(paired) + sum(samples[i].label == 1 for i in single)
    n = n_real + n_fake
    cw = class_weight if class_weight is not None else {0: 1.0, 1: 1.0}
    if class_weight is not None:  # recount: every blended copy is a fake
        cw = {0: n / (2 * n_real), 1: n / (2 * n_fake) if n_fake else 0.0}

    def slices(idx):
        boxes = [list(crops[i]) if isinstance(crops[i], tuple) else [0, 0, 0] for i in idx]
        return (tf.constant([samples[i].path for i in idx]), tf.constant(boxes or np.zeros((0, 3), int), tf.int32),
                tf.constant([float(samples[i].label) for i in idx], tf.float32))

    def load(path, box, y):
        x, ok = load_and_resize(path, box, input_size)
        return x, y, tf.cast(ok, tf.float32)

    # Pairs: (2, size, size, 3), the real then its blend.
    pts = tf.constant(np.stack([points[i] for i in paired]), tf.float32)
    pair_ds = tf.data.Dataset.from_tensor_slices((*slices(paired), pts)).shuffle(len(paired), seed=seed, reshuffle_each_iteration=fresh)
    blend_seeds = tf.data.Dataset.random(seed=seed + 1, rerandomize_each_iteration=fresh)

    def make_pair(item, blend_seed):
        path, box, y, p = item
        x, _, ok = load(path, box, y)
        blended, good = tf.numpy_function(blend_one, [x, p, blend_seed], [tf.float32, tf.bool],
                                          stateful=False)
        blended = tf.ensure_shape(blended, [input_size, input_size, 3])
        w_fake = cw[1] * ok * tf.cast(good, tf.float32)
        return tf.stack([x, blended]), tf.constant([[0.0], [1.0]]), tf.stack([cw[0] * ok, w_fake])

    units = [tf.data.Dataset.zip((pair_ds, blend_seeds)).map(make_pair, num_parallel_calls=tf.data.AUTOTUNE)]
    sizes = [len(paired)]
    if single:
        single_ds = tf.data.Dataset.from_tensor_slices(slices(single)).shuffle(len(single), seed=seed + 2,
                                                                               reshuffle_each_iteration=fresh)

        def weigh(path, box, y):
            x, y, ok = load(path, box, y)
            w = tf.where(y > 0.5, cw[1], cw[0]) * ok
            return x, y[None], w

        units.append(single_ds.map(weigh, num_parallel_calls=tf.data.AUTOTUNE).batch(2))
        sizes.append((len(single) + 1) // 2)
    ds = units[0] if len(units) == 1 else tf.data.Dataset.sample_from_datasets(
        units, weights=[s / sum(sizes) for s in sizes], seed=seed + 3, stop_on_empty_dataset=False,
        rerandomize_each_iteration=fresh)
    ds = ds.unbatch()
    if augment_fn is not None:
        aug_seeds = tf.data.Dataset.random(seed=seed, rerandomize_each_iteration=True).batch(2)
        ds = tf.data.Dataset.zip((ds, aug_seeds)).map(lambda xyw, s: (augment_fn(xyw[0], s), xyw[1], xyw[2]),
                                                      num_parallel_calls=tf.data.AUTOTUNE)
    total = 2 * len(paired) + len(single)
    ds = ds.batch(batch_size).apply(tf.data.experimental.assert_cardinality(-(-total // batch_size)))
    return ds.prefetch(tf.data.AUTOTUNE), {"pairs": len(paired), "single": len(single), "class_weight": cw}
