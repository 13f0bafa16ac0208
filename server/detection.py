"""The model side of the server: one detector and one face finder per worker process.

`Detection` loads the ensemble and the face finder once, picks the GPU where TensorFlow sees
one, and checks pictures faces first (models/inference.py FaceCheck): every face is found,
cropped and scored, the face crops of concurrent requests sharing model calls through the
micro-batcher. It turns the results into response sections (an image's faces and verdict; a
video's frames, aggregate and timeline; heatmaps per face) and combines provenance by the
one rule that it can push a verdict towards `fake`, never towards `real`.
"""
from __future__ import annotations

import logging
import threading

import numpy as np

from models.wording import NO_FACE
from models.provenance import combine
from server.batcher import MicroBatcher
from server.config import Config

log = logging.getLogger("unmask.server")

EXPLAIN_MAX_SIDE = 1024  # heatmap PNGs are drawn at most this large


class ModelUnavailable(Exception):
    """The model could not be loaded; every request that needs it gets this message (503)."""


class Detection:
    def __init__(self, config: Config):
        self.config = config
        self.detector = None
        self.faces = None  # FaceCheck: the face finder in front of the detector
        self.error: str | None = None
        self.device = "unknown"
        self._load_lock = threading.Lock()
        self.batcher = MicroBatcher(self._predict_batch, config.batch_max, config.batch_wait_ms / 1000.0, config.batching)

    # --- loading ------------------------------------------------------------------------
    def load(self) -> "Detection":
        """Load the detector and the face finder, or remember why not (health and every
        check report it)."""
        from models.detector import Detector, ModelNotFound
        from models.faces import FaceFinder
        from models.inference import FaceCheck

        with self._load_lock:
            if self.detector is not None:
                return self
            self.device = _pick_device()
            try:
                detector = Detector.load(self.config.model)
                finder = FaceFinder()
                # One call of each now, so that the first request does not pay for tracing.
                size = detector.spec.input_size
                detector.raw_scores(np.zeros((1, size, size, 3), np.float32))
                finder.find(np.zeros((size, size, 3), np.uint8))
                self.faces = FaceCheck(detector, finder, score=lambda batch: self.batcher.run(list(batch)))
                self.detector, self.error = detector, None
                log.info("loaded %s version %s and the face finder on %s", detector.name, detector.version, self.device)
            except (ModelNotFound, FileNotFoundError, ValueError, KeyError) as e:
                self.error = str(e)
                log.error("model unavailable: %s", e)
        return self

    def require(self):
        if self.detector is None:
            raise ModelUnavailable(self.error or "the model is not loaded")
        return self.detector

    def model_info(self) -> dict:
        from models.faces import face_contract
        from models.preprocessing import contract

        d = self.require()
        cal = d.calibration
        fc = face_contract()
        return {
            "name": d.name,
            "version": d.version,
            "architecture": d.architecture,
            "members": d.member_names,
            "input_size": d.spec.input_size,
            "parameters": d.info.get("parameters"),
            "calibration": {
                "temperature": cal.temperature,
                "fake_threshold": cal.fake_threshold,
                "real_threshold": cal.real_threshold,
                "target_precision": cal.target_precision,
                "max_false_alarm": cal.max_false_alarm,
            },
            # Tracks of a video's faces (models/video.py); null: videos use the image calibration.
            "video_calibration": None if d.video_calibration is None else {
                k: getattr(d.video_calibration, k) for k in ("temperature", "fake_threshold", "real_threshold",
                                                             "target_precision", "max_false_alarm")},
            "faces": {"detector": contract()["faces"]["detector"]["name"], "min_face_side": fc.min_face_side,
                      "max_faces": fc.max_faces, "crop_margin": fc.crop_margin},
            "device": self.device,
        }

    # --- checking -----------------------------------------------------------------------
    def _predict_batch(self, batch: np.ndarray):
        return self.require().predict_prepared(batch)

    def check_image(self, image: np.ndarray) -> dict:
        """Faces, per-face verdicts and the picture's verdict (models/inference.py)."""
        self.require()
        return self.faces.check_image(image)

    def image_result(self, result: dict, provenance: dict) -> dict:
        """The verdict section of /check: the picture's verdict from its faces, unless
        provenance shows a generator made the file, which makes it `fake` (never the other
        way). The faces keep what the models said of each."""
        faces = result["faces"]
        top = max(faces, key=lambda f: f["p_fake"]) if faces else {}
        out = combine(result, provenance)
        out.update(faces=faces, faces_too_small=result["faces_too_small"], faces_over_limit=result["faces_over_limit"],
                   members=top.get("members") or {})
        return out

    def check_video(self, frames, provenance: dict) -> dict:
        """Every sampled frame checked like an image (all faces, the frame's verdict by the
        image rule); faces tracked and the video judged (models/video.py judge_video); a
        timeline of equal verdicts."""
        self.require()
        out = self.video_result(self.faces.check_video(frames), provenance)
        out["video"] = {k: out["video"][k] for k in ("duration_s", "frame_count", "truncated")}
        out["video"]["container"] = getattr(frames, "container", None)
        return out

    def check_frames(self, images: list[np.ndarray], times: list[float]) -> dict:
        """Frames a client took from a playing video (the extension's second opinion), judged
        by the same rule as an uploaded video's."""
        self.require()
        return self.video_result(self.faces.check_frames(images, times), {})

    def video_result(self, result: dict, provenance: dict) -> dict:
        rows = result["frames"]
        out = combine(result, provenance)
        info = result["video"]
        out.update(frames_sampled=len(rows), frames_with_face=info["frames_with_face"], aggregate=info["aggregate"],
                   calibration=info["calibration"], calibrated_on_videos=info["calibrated_on_videos"], tracks=result["tracks"],
                   frames=rows, timeline=timeline(rows),
                   video=info)
        return out

    def explain_png(self, image: np.ndarray, target: str, draw: str = "picture",
                    result: dict | None = None) -> tuple[bytes, list[str]]:
        """A PNG of the image with each face's Grad-CAM heat laid over it and the boxes drawn
        (`draw` "picture"), or of the heat alone (`draw` "heat": RGBA, transparent outside the
        faces' crops and where the heat is cold, for a page that draws its own boxes over it),
        and the target of each face's heat (none: no face). `target` "verdict" takes each
        face's own verdict (evidence for real on a real face, for fake otherwise). `result`:
        check_image's on this image, when known (the result cache), else checked here."""
        from models.explain import heat_layer, overlay, png_bytes
        from models.inference import draw_faces, face_target

        self.require()
        result = result or self.faces.check_image(image)
        faces = result["faces"]
        if not faces:
            return b"", []
        forced = None if target == "verdict" else target
        heat = self.faces.heat(image, result, "gradcam", target=forced)
        targets = [forced or face_target(f["verdict"]) for f in faces]
        image, heat, scale = _shrink(image, heat, EXPLAIN_MAX_SIDE)
        if draw == "heat":
            return png_bytes(heat_layer(heat)), targets
        shown = [{**f, "box": [v * scale for v in f["box"]]} for f in faces]
        return png_bytes(draw_faces(overlay(image, heat, outline=False), shown)), targets

    def health(self) -> dict:
        return {
            "status": "ok" if self.detector is not None else "error",
            "model": None if self.detector is None else {"name": self.detector.name, "version": self.detector.version},
            "error": self.error,
            "device": self.device,
            "batching": self.batcher.stats(),
        }


def timeline(rows: list[dict]) -> list[dict]:
    """Consecutive sampled frames with the same verdict, as [start_s, end_s] segments."""
    segments: list[dict] = []
    for r in rows:
        v = r["verdict"] or NO_FACE
        if segments and segments[-1]["verdict"] == v:
            segments[-1]["end_s"] = r["time_s"]
            segments[-1]["frames"] += 1
            if r["p_fake"] is not None:
                segments[-1]["max_p_fake"] = max(segments[-1]["max_p_fake"] or 0.0, r["p_fake"])
        else:
            segments.append({"start_s": r["time_s"], "end_s": r["time_s"], "verdict": v, "frames": 1, "max_p_fake": r["p_fake"]})
    return segments


def _shrink(image: np.ndarray, heat: np.ndarray, max_side: int):
    """Image and heat at most max_side large, and the scale applied."""
    from PIL import Image

    h, w = image.shape[:2]
    scale = max_side / max(h, w)
    if scale >= 1:
        return image, heat, 1.0
    size = (max(1, round(w * scale)), max(1, round(h * scale)))
    small = np.asarray(Image.fromarray(image).resize(size, Image.BILINEAR))
    small_heat = np.asarray(Image.fromarray(heat.astype(np.float32)).resize(size, Image.BILINEAR))
    return small, np.clip(small_heat, 0, 1), size[0] / w


def _pick_device() -> str:
    """The device TensorFlow will run on. GPUs grow their memory as needed, so that several
    gunicorn workers can share one."""
    from models.tensorflow_import import import_tensorflow

    tf = import_tensorflow()

    gpus = tf.config.list_physical_devices("GPU")
    if not gpus:
        return "CPU"
    for g in gpus:
        try:
            tf.config.experimental.set_memory_growth(g, True)
        except RuntimeError:  # already initialised in this process
            pass
    try:
        name = tf.config.experimental.get_device_details(gpus[0]).get("device_name", "")
    except Exception:
        name = ""
    return f"GPU:0 ({name})" if name else "GPU:0"
