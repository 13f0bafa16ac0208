"""Give the verdict on image and video files.

    unmask check photo.jpg clip.mp4 [--model tiny|ensemble|PATH] [--json] [--frames 16]

Each file is recognised by its content (not its name): JPEG, PNG, WebP, GIF or BMP images,
MP4, WebM or MOV videos. For each: the verdict (fake / real / uncertain), the calibrated
confidence in it, and the calibrated p(fake).

A video is sampled at --frames evenly spaced frames; the largest face of each is cropped
(OpenCV's Haar cascade) and scored. The video's verdict comes from the mean logit of the
face frames' raw scores (a geometric vote: one wild frame cannot swing it as a mean of
probabilities would), calibrated like an image. When no frame has a face, every frame is
scored on its centre square instead, and the output says so.

A file that cannot be read gets an error line (reason and message); the other files are
still checked. Exit status: 0 when every file was checked, 1 when any failed, 2 when the
model is missing.
"""
from __future__ import annotations

import json
import sys
from pathlib import Path

import numpy as np

IMAGE_MAGIC = (b"\xff\xd8\xff", b"\x89PNG\r\n\x1a\n", b"GIF87a", b"GIF89a", b"BM")
AGGREGATE_FACES = "mean_logit_over_face_frames"
AGGREGATE_FRAMES = "mean_logit_over_centre_crops"


def add_arguments(p):
    p.add_argument("files", nargs="+", metavar="FILE", help="images and videos to check")
    p.add_argument("--model", default="ensemble", help="tiny, ensemble, a run folder or a .keras file (default: ensemble)")
    p.add_argument("--json", action="store_true", help="print one JSON document for machines")
    p.add_argument("--frames", type=int, default=16, help="frames sampled from each video (default: 16)")


class CheckError(Exception):
    def __init__(self, reason: str, message: str):
        super().__init__(message)
        self.reason = reason


def sniff(path: Path) -> str:
    """"image", "video" or "unknown" from the first bytes of the file."""
    from training.video import looks_like_video

    try:
        with open(path, "rb") as f:
            head = f.read(32)
    except FileNotFoundError as e:
        raise CheckError("missing", f"no such file: {path}") from e
    except IsADirectoryError as e:
        raise CheckError("unreadable", f"{path} is a folder; use `unmask predict --model M {path} --out preds.csv`") from e
    except OSError as e:
        raise CheckError("unreadable", f"cannot open {path}: {e.strerror or e}") from e
    if not head:
        raise CheckError("empty", "the file is empty (0 bytes)")
    if head.startswith(IMAGE_MAGIC) or (head[:4] == b"RIFF" and head[8:12] == b"WEBP"):
        return "image"
    if looks_like_video(head):
        return "video"
    return "unknown"


def check_image(detector, image) -> dict:
    return {"kind": "image", **detector.predict_images([image])[0].as_dict()}


def check_video(detector, path, n_frames: int) -> dict:
    from models.calibration import logit, sigmoid
    from training.video import extract_faces

    frames = extract_faces(path, n_frames=n_frames)
    with_face = [f for f in frames if f.face is not None]
    # No face anywhere: score whole frames (the contract's centre square) and say so.
    preds = detector.predict_images([f.face if f.face is not None else f.frame for f in frames])
    used = [p for f, p in zip(frames, preds) if f.face is not None] if with_face else preds
    p_agg = float(sigmoid(np.mean(logit([p.p_fake_raw for p in used]))))
    result = {"kind": "video", **detector.calibration.verdict(p_agg)}
    result["video"] = {
        "duration_s": frames.duration_s,
        "frame_count": frames.frame_count,
        "frames_scored": len(frames),
        "frames_with_face": len(with_face),
        "aggregate": AGGREGATE_FACES if with_face else AGGREGATE_FRAMES,
        "truncated": frames.truncated,
        "note": None if with_face else "no face found in any sampled frame: scored the centre of each whole frame",
    }
    if frames.truncated:
        result["video"]["note"] = ((result["video"]["note"] + "; ") if result["video"]["note"] else "") + \
            "the video ends before its stated duration (cut off?)"
    result["frames"] = [
        {"time_s": f.time_s, "frame_index": f.frame_index, "face_found": f.face is not None,
         "box": list(f.box) if f.box else None, **p.as_dict()}
        for f, p in zip(frames, preds)
    ]
    return result


def check_file(detector, path, n_frames: int = 16) -> dict:
    """The verdict on one file as a dict; raises CheckError (with a reason) when it cannot be read."""
    from models.preprocessing import ImageError, load_image
    from training.video import VideoError

    path = Path(path)
    kind = sniff(path)
    try:
        if kind == "video":
            return check_video(detector, path, n_frames)
        try:
            return check_image(detector, load_image(path))
        except ImageError as e:
            if kind == "image" or e.reason not in ("not_an_image", "unsupported"):
                raise
        try:  # neither known magic nor an image Pillow reads: a video FFmpeg knows?
            return check_video(detector, path, n_frames)
        except VideoError as e:
            if e.reason != "not_a_video":
                raise
        raise CheckError("not_an_image", "not an image or a video: use JPEG, PNG, WebP, GIF or BMP images, "
                         "MP4, WebM or MOV videos")
    except (ImageError, VideoError) as e:
        raise CheckError(e.reason, str(e)) from e


def _line(name: str, r: dict) -> str:
    text = f"{name}: {r['verdict']} (confidence {r['confidence']:.2f}, p(fake) {r['p_fake']:.3f})"
    if r["kind"] == "video":
        v = r["video"]
        how = "mean logit of the face frames" if v["aggregate"] == AGGREGATE_FACES else "mean logit of whole frames"
        text += (f" [video, {v['duration_s']:.1f} s: {v['frames_scored']} frames sampled, "
                 f"{v['frames_with_face']} with a face; {how}]")
        if v["note"]:
            text += f"\n    note: {v['note']}"
        for f in r["frames"]:
            text += (f"\n    {f['time_s']:7.2f} s  frame {f['frame_index']:<6} {'face   ' if f['face_found'] else 'no face'}"
                     f"  {f['verdict']:<9} p(fake) {f['p_fake']:.3f}")
    elif r.get("members"):
        text += " [members: " + ", ".join(f"{k} {v:.3f}" for k, v in r["members"].items()) + " raw]"
    return text


def run(args) -> int:
    from models.detector import Detector

    if args.frames < 1:
        raise ValueError("--frames must be at least 1")
    detector = Detector.load(args.model)  # ModelNotFound says how to build the bundled ones
    results, failed = [], 0
    for name in args.files:
        try:
            r = {"file": name, "ok": True, **check_file(detector, name, args.frames), "error": None}
        except CheckError as e:
            failed += 1
            r = {"file": name, "ok": False, "kind": None, "error": {"reason": e.reason, "message": str(e)}}
        results.append(r)
        if not args.json:
            if r["ok"]:
                print(_line(name, r), flush=True)
            else:
                print(f"{name}: error ({r['error']['reason']}): {r['error']['message']}", file=sys.stderr, flush=True)
    if args.json:
        cal = detector.calibration
        doc = {
            "model": {"name": detector.name, "architecture": detector.architecture, "version": detector.version,
                      "path": str(detector.path) if detector.path else None},
            "calibration": {"temperature": cal.temperature, "fake_threshold": cal.fake_threshold,
                            "real_threshold": cal.real_threshold, "target_precision": cal.target_precision,
                            "max_false_alarm": cal.max_false_alarm},
            "results": results,
            "checked": len(results) - failed,
            "failed": failed,
        }
        print(json.dumps(doc, indent=2))
    elif failed:
        print(f"{failed} of {len(results)} file(s) could not be checked", file=sys.stderr)
    return 1 if failed else 0
