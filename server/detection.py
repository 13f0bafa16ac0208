"""The model side of the server: one detector per worker process, fed by the micro-batcher.

`Detection` loads the ensemble once, picks the GPU where TensorFlow sees one, and turns
model outputs into response sections: a verdict for an image, per-frame scores, an aggregate
and a timeline for a video, and Grad-CAM heatmaps. Provenance is combined here too, by the
one rule that it can push a verdict towards `fake` and never towards `real`.
"""
from __future__ import annotations

import logging
import os
import threading

import numpy as np

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
        self.error: str | None = None
        self.device = "unknown"
        self._load_lock = threading.Lock()
        self.batcher = MicroBatcher(self._predict_batch, config.batch_max, config.batch_wait_ms / 1000.0, config.batching)

    # --- loading ------------------------------------------------------------------------
    def load(self) -> "Detection":
        """Load the detector, or remember why not (health and every check report it)."""
        from models.detector import Detector, ModelNotFound

        with self._load_lock:
            if self.detector is not None:
                return self
            self.device = _pick_device()
            try:
                self.detector = Detector.load(self.config.model)
                self.error = None
                # One call now, so that the first request does not pay for tracing.
                size = self.detector.spec.input_size
                self.detector.raw_scores(np.zeros((1, size, size, 3), np.float32))
                log.info("loaded %s version %s on %s", self.detector.name, self.detector.version, self.device)
            except (ModelNotFound, FileNotFoundError, ValueError, KeyError) as e:
                self.error = str(e)
                log.error("model unavailable: %s", e)
        return self

    def require(self):
        if self.detector is None:
            raise ModelUnavailable(self.error or "the model is not loaded")
        return self.detector

    def model_info(self) -> dict:
        d = self.require()
        cal = d.calibration
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
            "device": self.device,
        }

    # --- scoring ------------------------------------------------------------------------
    def _predict_batch(self, batch: np.ndarray):
        return self.require().predict_prepared(batch)

    def predict(self, images: list[np.ndarray]):
        """Predictions for RGB uint8 images, through the micro-batcher."""
        d = self.require()
        return self.batcher.run([d.prepare(im) for im in images])

    def image_result(self, prediction, provenance: dict) -> dict:
        """The verdict section of /check: the model's calibrated verdict, unless provenance
        shows a generator made the file, which makes it `fake` (never the other way)."""
        model = prediction.as_dict()
        members = model.pop("members", None) or {}
        result = combine(model, provenance)
        result["members"] = members
        return result

    def video_result(self, frames, provenance: dict) -> dict:
        """Per-frame scores (a face crop where a face was found, else the whole frame, and
        saying which), the aggregate verdict and a timeline of runs of equal verdicts."""
        d = self.require()
        faces = [f for f in frames if f.face is not None]
        scored = faces if faces else frames
        inputs = [f.face if f.face is not None else f.frame for f in scored]
        predictions = self.predict(inputs)
        by_frame = {id(f): p for f, p in zip(scored, predictions)}
        rows = []
        for f in frames:
            p = by_frame.get(id(f))
            row = {"time_s": f.time_s, "frame_index": f.frame_index, "face": f.face is not None,
                   "box": list(f.box) if f.box else None}
            if p is not None:
                row.update(verdict=p.verdict, confidence=p.confidence, p_fake=p.p_fake, members=p.members or {})
            else:
                row.update(verdict=None, confidence=None, p_fake=None, members={})
            rows.append(row)
        # The aggregate: the calibration applied to the mean raw score of the scored frames.
        mean_raw = float(np.mean([p.p_fake_raw for p in predictions]))
        aggregate = d.calibration.verdict(mean_raw)
        result = combine(aggregate, provenance)
        result.update(
            scored_on="faces" if faces else "whole_frames",
            frames_sampled=len(frames),
            frames_with_face=len(faces),
            frames=rows,
            timeline=timeline(rows),
        )
        if not faces:
            result["note"] = "no face was found in the sampled frames, so whole frames were scored; the model is trained on faces"
        return result

    def explain_png(self, image: np.ndarray, target: str) -> tuple[bytes, str]:
        """A PNG of the image with the Grad-CAM heat for `target` laid over it."""
        from training.explain import gradcam, overlay, png_bytes

        d = self.require()
        if target == "verdict":
            verdict = self.predict([image])[0].verdict
            target = "real" if verdict == "real" else "fake"
        heat = gradcam(d, image, target=target)
        image, heat = _shrink(image, heat, EXPLAIN_MAX_SIDE)
        return png_bytes(overlay(image, heat)), target

    def health(self) -> dict:
        return {
            "status": "ok" if self.detector is not None else "error",
            "model": None if self.detector is None else {"name": self.detector.name, "version": self.detector.version},
            "error": self.error,
            "device": self.device,
            "worker_pid": os.getpid(),
            "batching": self.batcher.stats(),
        }


def combine(model_verdict: dict, provenance: dict) -> dict:
    """Final verdict from the model's calibrated verdict and the provenance findings."""
    out = {
        "verdict": model_verdict["verdict"],
        "confidence": model_verdict["confidence"],
        "p_fake": model_verdict["p_fake"],
        "p_fake_raw": model_verdict["p_fake_raw"],
        "basis": "model",
        "model_verdict": {"verdict": model_verdict["verdict"], "confidence": model_verdict["confidence"]},
    }
    if provenance.get("generator_evidence"):
        if model_verdict["verdict"] == "fake":
            out["basis"] = "model+provenance"
        else:
            # The model's confidence was about another verdict; there is no calibrated
            # number for one that rests on metadata, so none is given.
            out.update(verdict="fake", confidence=None, basis="provenance")
    return out


def timeline(rows: list[dict]) -> list[dict]:
    """Consecutive sampled frames with the same verdict, as [start_s, end_s] segments."""
    segments: list[dict] = []
    for r in rows:
        v = r["verdict"] or "not_scored"
        if segments and segments[-1]["verdict"] == v:
            segments[-1]["end_s"] = r["time_s"]
            segments[-1]["frames"] += 1
            if r["p_fake"] is not None:
                segments[-1]["max_p_fake"] = max(segments[-1]["max_p_fake"] or 0.0, r["p_fake"])
        else:
            segments.append({"start_s": r["time_s"], "end_s": r["time_s"], "verdict": v, "frames": 1, "max_p_fake": r["p_fake"]})
    return segments


def _shrink(image: np.ndarray, heat: np.ndarray, max_side: int):
    from PIL import Image

    h, w = image.shape[:2]
    scale = max_side / max(h, w)
    if scale >= 1:
        return image, heat
    size = (max(1, round(w * scale)), max(1, round(h * scale)))
    small = np.asarray(Image.fromarray(image).resize(size, Image.BILINEAR))
    small_heat = np.asarray(Image.fromarray(heat.astype(np.float32)).resize(size, Image.BILINEAR))
    return small, np.clip(small_heat, 0, 1)


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
