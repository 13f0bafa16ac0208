"""Small images, folders and videos made on the fly for tests.

"fake" images carry a faint periodic high-frequency pattern (as upsampling generators leave),
"real" ones do not, so a model can learn the difference in a few steps.
"""
from __future__ import annotations

import csv
import io
from pathlib import Path

import numpy as np
from PIL import Image


def face_image(label: str, size: int = 192, seed: int = 0) -> np.ndarray:
    """An RGB uint8 face photograph, `label` "real" or "fake": scikit-image's astronaut
    (a real face the face finder finds at 96 px and up), cropped, tinted and mirrored by
    `seed`. A fake carries a faint checkerboard, as upsampling generators leave."""
    from skimage import data

    rng = np.random.default_rng(seed)
    photo = data.astronaut()  # 512 x 512; her face spans about x 177-272, y 66-161
    side = int(rng.uniform(150, 230))
    x0 = int(np.clip(224 + rng.uniform(-12, 12) - side / 2, 0, 512 - side))
    y0 = int(np.clip(118 + rng.uniform(-12, 12) - side / 2, 0, 512 - side))
    img = photo[y0:y0 + side, x0:x0 + side].astype(np.float32) * rng.uniform(0.8, 1.15, 3) + rng.uniform(-20, 20, 3)
    if rng.random() < 0.5:
        img = img[:, ::-1]
    img = np.asarray(Image.fromarray(np.clip(img, 0, 255).astype(np.uint8)).resize((size, size), Image.BILINEAR))
    out = img.astype(np.float32)
    if label == "fake":
        out += 18 * ((np.indices((size, size)).sum(0) % 2) * 2 - 1)[..., None]
    return np.clip(out, 0, 255).astype(np.uint8)


def paste_scene(faces: list, width: int = 1200, height: int = 800, backdrop: np.ndarray | None = None) -> np.ndarray:
    """A softly shaded backdrop (or `backdrop`, a photo resized to width x height) with each
    (face, x, y, side) resized to side and pasted there (cut off where it runs past the right
    or bottom edge)."""
    if backdrop is not None:
        out = np.asarray(Image.fromarray(backdrop).resize((width, height), Image.BILINEAR)).copy()
    else:
        yy, xx = np.mgrid[0:height, 0:width]
        out = np.stack([90 + 60 * xx / width, 120 + 40 * yy / height, 150 - 50 * xx / width], -1).astype(np.uint8)
    for face, x, y, side in faces:
        patch = np.asarray(Image.fromarray(face).resize((side, side), Image.BILINEAR))
        h, w = out[y:y + side, x:x + side].shape[:2]
        out[y:y + side, x:x + side] = patch[:h, :w]
    return out


def chart(size=(640, 480)) -> np.ndarray:
    """A bar chart: no face in it."""
    from PIL import ImageDraw

    img = Image.new("RGB", size, "white")
    d = ImageDraw.Draw(img)
    w, h = size
    for i, bar in enumerate([0.25, 0.6, 0.4, 0.8, 0.2]):
        x = 60 + i * (w - 100) // 5
        d.rectangle([x, h - 40 - bar * (h - 80), x + (w - 100) // 7, h - 40], fill=(30 + 40 * i, 90, 200 - 30 * i))
    d.line([40, h - 40, w - 20, h - 40], fill="black", width=3)
    d.line([40, 20, 40, h - 40], fill="black", width=3)
    return np.asarray(img)


def encode(img: np.ndarray, fmt: str = "JPEG", **kw) -> bytes:
    buf = io.BytesIO()
    Image.fromarray(img).save(buf, fmt, **({"quality": 95} | kw if fmt == "JPEG" else kw))
    return buf.getvalue()


def write_image(path: Path, img: np.ndarray, fmt: str | None = None) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    fmt = fmt or {"jpg": "JPEG", "jpeg": "JPEG", "png": "PNG", "webp": "WEBP", "bmp": "BMP", "gif": "GIF"}[path.suffix[1:].lower()]
    path.write_bytes(encode(img, fmt))
    return path


def bad_files(folder: Path) -> dict[str, Path]:
    """One file of each kind of bad input, by reason."""
    folder.mkdir(parents=True, exist_ok=True)
    good = encode(face_image("real", 200, 99))
    files = {
        "corrupt": (folder / "corrupt.jpg", b"\xff\xd8\xff\xe0" + bytes(range(256)) * 4),
        "truncated": (folder / "truncated.jpg", good[: len(good) // 2]),
        "not_an_image": (folder / "notes.jpg", b"these are not pixels\n" * 20),
        "empty": (folder / "empty.png", b""),
        "too_small": (folder / "tiny.png", encode(face_image("real", 40, 5), "PNG")),  # under every limit
    }
    for path, data in files.values():
        path.write_bytes(data)
    return {k: p for k, (p, _) in files.items()}


def decompression_bomb(path: Path, side: int = 20000) -> Path:
    """A small PNG that decodes to side x side pixels."""
    img = Image.new("1", (side, side))
    buf = io.BytesIO()
    img.save(buf, "PNG", optimize=True)
    path.write_bytes(buf.getvalue())
    return path


def image_tree(root: Path, n_per_label: int = 12, size: int = 192, sources=("alpha", "beta"), seed: int = 0) -> Path:
    """root/SOURCE/{real,fake}/*.jpg: the "real/ and fake/ at any depth" layout."""
    k = seed
    for source in sources:
        for label in ("real", "fake"):
            for i in range(n_per_label):
                write_image(root / source / label / f"{source}_{label}_{i:03d}.jpg", face_image(label, size, k))
                k += 1
    return root


def manifest_folder(root: Path, n_per_label: int = 12, size: int = 192, sources=("alpha", "beta"), group_size: int = 3, seed: int = 0) -> Path:
    """A faces-v1-like folder with manifest.csv (path,label,source,group); `group_size`
    consecutive images of one source share a group."""
    rows, k = [], seed
    for source in sources:
        for label in ("real", "fake"):
            for i in range(n_per_label):
                rel = f"{source}/{label}/{k:05d}.jpg"
                write_image(root / rel, face_image(label, size, k))
                rows.append({"path": rel, "label": label, "source": source, "group": f"{source}-g{i // group_size}"})
                k += 1
    with open(root / "manifest.csv", "w", newline="") as f:
        w = csv.DictWriter(f, ["path", "label", "source", "group"])
        w.writeheader()
        w.writerows(rows)
    return root


def write_video(path: Path, label: str = "real", seconds: float = 2.0, fps: int = 10, size: int = 256, seed: int = 0, codec: str | None = None) -> Path:
    """A short video of a face drifting across the frame (mp4/webm/mov by suffix)."""
    import av

    path.parent.mkdir(parents=True, exist_ok=True)
    codec = codec or {".webm": "libvpx", ".mov": "mpeg4", ".mp4": "mpeg4"}.get(path.suffix, "mpeg4")
    face = face_image(label, size // 2, seed)
    rng = np.random.default_rng(seed)
    with av.open(str(path), "w") as container:
        stream = container.add_stream(codec, rate=fps)
        stream.width = stream.height = size
        stream.pix_fmt = "yuv420p"
        for i in range(int(seconds * fps)):
            frame = np.full((size, size, 3), rng.integers(30, 90), np.uint8)
            off = (i * 3) % (size // 4)
            frame[size // 4 + off // 2 : size // 4 + off // 2 + size // 2, off : off + size // 2] = face
            for packet in stream.encode(av.VideoFrame.from_ndarray(frame, format="rgb24")):
                container.mux(packet)
        for packet in stream.encode():
            container.mux(packet)
    return path


def small_detector(folder: Path, architecture: str = "tiny", steps: int = 0, seed: int = 0, fake_threshold: float = 0.6, real_threshold: float = 0.4):
    """A detector saved to `folder` as training would leave it, quick to build: the real
    architecture (small variants for tuned-cnn and the ensemble), optionally fitted for a few
    steps on synthetic faces, with a hand-set calibration."""
    import keras

    from models import architectures
    from models.calibration import Calibration
    from models.detector import Detector
    from models.preprocessing import input_spec

    keras.utils.set_random_seed(seed)
    members = None
    if architecture == "ensemble":
        members = [architectures.build_tuned_cnn(filters=(8, 16), dense=16), architectures.build_pretrained(alpha=0.25, weights=None)]
        model = architectures.build_ensemble(members)
    elif architecture == "tuned-cnn":
        model = architectures.build_tuned_cnn(filters=(8, 16), dense=16)
    elif architecture == "pretrained":
        model = architectures.build_pretrained(alpha=0.25, weights=None)
    else:
        model = architectures.build_tiny(weights=None) if architecture == "tiny" else architectures.build_seed_cnn()
    if steps:
        size = input_spec(architecture).input_size
        x = np.stack([face_image(lbl, size, i) for i in range(16) for lbl in ("real", "fake")]).astype("float32")
        y = np.array([0.0, 1.0] * 16, "float32")[:, None]
        model.compile("adam", {"p_fake": "binary_crossentropy"} if members else "binary_crossentropy")
        model.fit(x, {"p_fake": y} if members else y, batch_size=8, epochs=steps, verbose=0)
    settle_batchnorm(model, input_spec(architecture).input_size)
    cal = Calibration(temperature=1.0, fake_threshold=fake_threshold, real_threshold=real_threshold, target_precision=0.9)
    det = Detector(model, architecture, cal, {"name": architecture, "version": "test"})
    if members:
        det.info["members"] = ["tuned-cnn", "pretrained"]
    det.save(folder)
    return det


def settle_batchnorm(model, size: int) -> None:
    """Set batch norm's moving statistics to those of a batch of synthetic faces (one pass at
    momentum 0), as a longer training would; otherwise a briefly fitted model scores every
    image alike, and tests that compare scores could not fail."""
    import keras

    def bn_layers(m):
        for layer in m.layers:
            if isinstance(layer, keras.Model):
                yield from bn_layers(layer)
            elif isinstance(layer, keras.layers.BatchNormalization):
                yield layer

    x = np.stack([face_image(lbl, size, i) for i in range(16) for lbl in ("real", "fake")]).astype("float32")
    found = list(bn_layers(model))
    momenta = [layer.momentum for layer in found]
    for layer in found:
        layer.momentum = 0.0
    model(x, training=True)
    for layer, m in zip(found, momenta):
        layer.momentum = m


def seeded_tiny(folder: Path, seed: int = 0, fake_threshold: float = 0.6, real_threshold: float = 0.4):
    """The tiny architecture with weights that do not depend on the machine that makes them,
    and that float16 stores exactly: the fixture for tests that compare a converted model with
    Keras. A model fitted for a few steps differs with the CPU's numerics, and its float16
    error sat at the parity tolerance (0.0137 on one Xeon, within 0.01 on another).

    Every kernel is drawn from NumPy's seeded generator (He-normal) and rounded to float16.
    Batch norm is set layer by layer from a batch of synthetic faces, so activations stay
    alive and scores spread: each channel's spread is divided by a power of two (so the
    converter's folded kernels stay exact in float16) and its mean moved to 1.5, where most
    of ReLU6 is linear. Centred on 0 instead, the random network is chaotic: float16's
    rounding of the input scale 1/127.5 alone moved p_fake by up to 0.004, against 0.00004 here,
    while a wrong resize still moves it by 0.12 (median). The head spreads the batch's logits
    over about +-1.5; no test image scores within 0.02 of the 0.4 and 0.6 thresholds."""
    import keras

    from models import architectures
    from models.calibration import Calibration
    from models.detector import Detector

    rng = np.random.default_rng(seed)
    half = lambda a: np.asarray(a, np.float16).astype(np.float32)  # noqa: E731  (exact in float16)
    model = architectures.build_tiny(weights=None)
    size = model.input_shape[1]
    x = np.stack([face_image(lbl, size, 100 + i) for i in range(16) for lbl in ("real", "fake")]).astype("float32")

    def leaves(m):
        for layer in m.layers:
            if isinstance(layer, keras.Model):
                yield from leaves(layer)
            elif not isinstance(layer, keras.layers.InputLayer):
                yield layer

    for layer in leaves(model):
        if isinstance(layer, keras.layers.BatchNormalization):
            mean, std = x.mean((0, 1, 2), dtype=np.float64), x.std((0, 1, 2), dtype=np.float64)
            gamma = np.where(std > 1e-6, 2.0 ** np.round(-np.log2(np.maximum(std, 1e-6))), 1.0)
            variance = np.float32(1) - np.float32(layer.epsilon)  # variance + epsilon == 1, so the scale is gamma
            layer.set_weights([half(gamma), np.zeros_like(gamma, np.float32), half(mean - 1.5 / gamma), np.full_like(gamma, variance, np.float32)])
        elif isinstance(layer, keras.layers.Dense):
            w = rng.standard_normal(layer.kernel.shape)
            logits = x @ w
            w *= 2.0 ** np.round(np.log2(1.5 / logits.std()))
            layer.set_weights([half(w), half([-(x @ half(w)).mean()])])
        elif layer.weights:  # convolutions: He-normal kernels, zero biases
            depthwise = isinstance(layer, keras.layers.DepthwiseConv2D)
            weights = []
            for v in layer.weights:
                shape = tuple(v.shape)
                fan_in = np.prod(shape[:2] if depthwise else shape[:-1])
                weights.append(half(rng.standard_normal(shape) * np.sqrt(2 / fan_in)) if len(shape) > 1 else np.zeros(shape, np.float32))
            layer.set_weights(weights)
        x = np.asarray(layer(x, training=False))
    cal = Calibration(temperature=1.0, fake_threshold=fake_threshold, real_threshold=real_threshold, target_precision=0.9)
    det = Detector(model, "tiny", cal, {"name": "tiny", "version": "test"})
    det.save(folder)
    return det
