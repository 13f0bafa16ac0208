"""Running a detector on a picture, faces first: find the faces, crop, score, calibrate, combine.

    check = FaceCheck(Detector.load("ensemble"))
    result = check.check_image(image)          # an RGB uint8 array of any size
    result["verdict"]                          # fake | real | uncertain | no_face

Each face found (models/faces.py: the contract in preprocessing.json) is cropped and judged
by the detector with its own calibration. The picture is `fake` when any face is called
fake, `real` when every face is called real, otherwise `uncertain`; its p(fake) is the
highest face p(fake), so its verdict is that face's verdict. Without a face of the smallest
judged size the picture is `no_face` and gets no score. The CLI, the server, the converter's
parity check and the benchmarks all call this module; extension/src/ mirrors it.
"""
from __future__ import annotations

from typing import Callable

import numpy as np

from models.faces import Face, FaceFinder, Found, crop_image, face_contract, smallest_face_found, tiles
from models.preprocessing import ImageError
from models.wording import describe, no_face, pct, tag, wording


def require_size(image: np.ndarray):
    """Every consumer refuses, alike, an image too small to hold a face it would judge."""
    side = face_contract().min_face_side
    h, w = image.shape[:2]
    if min(h, w) < side:
        raise ImageError("too_small", f"The image is {w}x{h} px. " + wording()["too_small"].format(min_face_side=side))


# Members of an ensemble whose p(fake) for one face lie this far apart or more disagree widely
# (issue 20: 89% against 6% on one real face). The verdict stays the calibrated one, which
# already weighs the members; the disagreement is said beside it as a reason to be unsure.
MEMBERS_DISAGREE = 0.5


def face_result(face: Face, prediction) -> dict:
    out = {**face.as_dict(), **prediction.as_dict(),
           "summary": describe(prediction.verdict, prediction.confidence, prediction.p_fake)}
    scores = list((prediction.members or {}).values())
    if len(scores) > 1 and max(scores) - min(scores) >= MEMBERS_DISAGREE:
        low, high = min(scores), max(scores)
        out["disagreement"] = {"low": low, "high": high,
                               "reason": wording()["members_disagree"].format(low=pct(low), high=pct(high))}
    return out


def may_miss(height: int, width: int) -> str | None:
    """For a large picture without a face: which faces the search may have missed (small ones,
    turned ones), with the smallest side it finds there (models.faces.smallest_face_found)."""
    if not tiles(height, width, face_contract()):
        return None
    return wording()["may_miss"].format(side=smallest_face_found(height, width))


def combine(faces: list[dict], found: Found) -> dict:
    """The picture's verdict from its judged faces (see the module doc)."""
    counts = {"faces_too_small": found.too_small, "faces_over_limit": found.over_limit,
              "width": found.width, "height": found.height}
    if not faces:
        return no_face(may_miss(found.height, found.width), faces=[], **counts)
    top = max(faces, key=lambda f: f["p_fake"])
    verdicts = {f["verdict"] for f in faces}
    verdict = "fake" if "fake" in verdicts else "real" if verdicts == {"real"} else "uncertain"
    return {"verdict": verdict, "confidence": top["confidence"], "p_fake": top["p_fake"],
            "p_fake_raw": top["p_fake_raw"], "summary": describe(verdict, top["confidence"], top["p_fake"]),
            "faces": faces, **counts}


class FaceCheck:
    """A detector (models/detector.py) with the face finder in front of it.

    `score` turns a batch of prepared crops into Predictions; the server passes its
    micro-batcher here. By default the detector scores them directly."""

    def __init__(self, detector, finder: FaceFinder | None = None, score: Callable | None = None):
        self.detector = detector
        self.finder = finder or FaceFinder()
        self.score = score or detector.predict_prepared

    def find(self, images: list[np.ndarray]) -> list[Found]:
        for image in images:
            require_size(image)
        return self.finder.find_batch(images)

    def check_images(self, images: list[np.ndarray]) -> list[dict]:
        """One result per image (see combine); all their faces scored in one batch."""
        found = self.find(images)
        crops = [self.detector.prepare(crop_image(im, face.crop)) for im, f in zip(images, found) for face in f.faces]
        predictions = iter(self.score(np.stack(crops)) if crops else [])
        return [combine([face_result(face, next(predictions)) for face in f.faces], f) for f in found]

    def check_image(self, image: np.ndarray) -> dict:
        return self.check_images([image])[0]

    def check_frames(self, images: list[np.ndarray], times: list[float] | None = None) -> dict:
        """Frames of one video, each checked like a picture, then tracked and judged as a video
        by models/video.py judge_video (the one rule the extension's twin follows). "video"
        says how many frames held a face and which calibration judged the tracks."""
        from models.video import judge_video

        results = self.check_images(images)
        times = times if times is not None else [None] * len(images)
        rows = [{"time_s": t, **r} for t, r in zip(times, results)]
        out = judge_video(rows, self.detector.calibration, self.detector.video_calibration)
        out["video"] = {k: out.pop(k) for k in ("frames_sampled", "frames_with_face", "calibration", "calibrated_on_videos",
                                                  "aggregate", "min_track_frames")}
        return out

    def check_video(self, frames) -> dict:
        """Every sampled frame (models/video.py Frames) checked like an image, the faces tracked
        and the video judged (check_frames)."""
        out = self.check_frames([f.image for f in frames], [f.time_s for f in frames])
        for row, f in zip(out["frames"], frames):
            row["frame_index"] = f.frame_index
        out["video"].update(duration_s=frames.duration_s, frame_count=frames.frame_count, truncated=frames.truncated)
        return out

    # --- what it looked at ------------------------------------------------------------
    def heat(self, image: np.ndarray, result: dict, method: str = "gradcam", target: str | None = None,
             layer_name: str | None = None, samples: int = 500) -> np.ndarray:
        """A heat map (H, W) in 0..1 over the whole image: each face's map, computed on its crop
        for `target` (default: that face's own verdict, fake when unsure) and put back where
        the crop was. Zero away from the faces."""
        from models.explain import gradcam, lime_explain

        heat = np.zeros(image.shape[:2], np.float32)
        for face in result["faces"]:
            x, y, side = face["crop"]
            crop = crop_image(image, face["crop"])
            t = target or face_target(face["verdict"])
            if method == "gradcam":
                h = gradcam(self.detector, crop, target=t, layer_name=layer_name)
            else:
                h = lime_explain(self.detector, crop, num_samples=samples, target=t).heat
            heat[y:y + side, x:x + side] = np.maximum(heat[y:y + side, x:x + side], h)
        return heat


def face_target(verdict: str) -> str:
    """What a heat map shows for a verdict: evidence for `real` on a real face, else for `fake`."""
    return "real" if verdict == "real" else "fake"


VERDICT_COLOURS = {"fake": (220, 38, 38), "real": (22, 163, 74), "uncertain": (217, 119, 6)}


def draw_faces(image: np.ndarray, faces: list[dict]) -> np.ndarray:
    """The image with each face's box drawn in its verdict's colour and a short label; faces are
    numbered from left to right, as on the server's page."""
    from PIL import Image, ImageDraw

    out = Image.fromarray(np.asarray(image, np.uint8))
    draw = ImageDraw.Draw(out)
    width = max(2, round(max(image.shape[:2]) / 300))
    for i, face in enumerate(sorted(faces, key=lambda f: f["box"][0]), start=1):
        x0, y0, x1, y1 = face["box"]
        colour = VERDICT_COLOURS.get(face["verdict"], (255, 255, 255))
        draw.rectangle([x0, y0, x1, y1], outline=colour, width=width)
        label = f"{i} {tag(face['verdict'], face['confidence'])}"
        tx, ty = x0, max(0, y0 - 12 - width)
        draw.rectangle([tx, ty, tx + 7 * len(label) + 4, ty + 12], fill=colour)
        draw.text((tx + 2, ty), label, fill=(255, 255, 255))
    return np.asarray(out)
