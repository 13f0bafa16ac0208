"""Give the verdict on image and video files.

    unmask check photo.jpg clip.mp4 [--model tiny|ensemble|PATH] [--json] [--frames 16]

Each file is recognised by its content (not its name): JPEG, PNG, WebP, GIF or BMP images,
MP4, WebM or MOV videos. Unmask checks faces: every face found is listed with its box,
verdict (fake / real / uncertain), calibrated confidence and p(fake), then the picture's
verdict (fake when any face is, real when every face is, otherwise uncertain), or `no_face`
when there is no face to judge (models/inference.py).

A video is sampled at --frames evenly spaced frames, each checked like an image; its verdict
comes from the mean logit of the face frames' top raw scores, calibrated like an image.

A file that cannot be read gets an error line (reason and message); the other files are
still checked. Exit status: 0 when every file was checked, 1 when any failed, 2 when the
model is missing.
"""
from __future__ import annotations

import json
import sys
from pathlib import Path


IMAGE_MAGIC = (b"\xff\xd8\xff", b"\x89PNG\r\n\x1a\n", b"GIF87a", b"GIF89a", b"BM")


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
    from models.video import looks_like_video

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


def check_video(check, path, n_frames: int) -> dict:
    from models.video import sample_frames

    return {"kind": "video", **check.check_video(sample_frames(path, n_frames=n_frames))}


def check_file(check, path, n_frames: int = 16) -> dict:
    """The verdict on one file as a dict; raises CheckError (with a reason) when it cannot be read."""
    from models.preprocessing import ImageError, load_image
    from models.video import VideoError

    path = Path(path)
    kind = sniff(path)
    try:
        if kind == "video":
            return check_video(check, path, n_frames)
        try:
            image = load_image(path)
            return {"kind": "image", **_with_provenance(check.check_image(image), path, image)}
        except ImageError as e:
            if kind == "image" or e.reason not in ("not_an_image", "unsupported"):
                raise
            not_an_image = e  # says what the file is (text?) and what Unmask reads, as the server does
        try:  # neither known magic nor an image Pillow reads: a video FFmpeg knows?
            return check_video(check, path, n_frames)
        except VideoError as e:
            if e.reason != "not_a_video":
                raise
        raise CheckError(not_an_image.reason, str(not_an_image))
    except (ImageError, VideoError) as e:
        raise CheckError(e.reason, str(e)) from e


def _with_provenance(result: dict, path: Path, image) -> dict:
    from models.provenance import judged
    from server.uploads import sniff as kind_of

    data = path.read_bytes()
    return judged(result, data, kind_of(data) or "unknown", image)


def _provenance_lines(r: dict, indent: str) -> str:
    p = r.get("provenance") or {}
    text = ""
    if p.get("statement"):
        text += f"\n{indent}provenance ({p['tier']}): {p['statement']}"
        who = [f"{k.replace('_', ' ')} {p[k]}" for k in ("signer", "claim_generator") if p.get(k)]
        if who:
            text += f" [{', '.join(who)}]"
    if p.get("changed"):
        text += f"\n{indent}provenance: {p['changed']}"
    if p.get("validation_codes"):
        text += f"\n{indent}content credentials: {p['validation_state']} ({', '.join(p['validation_codes'])})"
    return text


def _faces_lines(r: dict, indent: str) -> str:
    text = ""
    for i, f in enumerate(r["faces"], start=1):
        x0, y0, x1, y1 = (round(v) for v in f["box"])
        text += (f"\n{indent}face {i} at ({x0}, {y0})-({x1}, {y1}): {f['verdict']} (confidence {f['confidence']:.2f}, "
                 f"p(fake) {f['p_fake']:.3f})")
        if f.get("members"):
            text += " [members: " + ", ".join(f"{k} {v:.3f}" for k, v in f["members"].items()) + " raw]"
    skipped = []
    if r.get("faces_too_small"):
        skipped.append(f"{r['faces_too_small']} too small to judge")
    if r.get("faces_over_limit"):
        skipped.append(f"{r['faces_over_limit']} over the limit of faces per image")
    if skipped:
        text += f"\n{indent}also seen: " + ", ".join(skipped)
    return text


def _line(name: str, r: dict) -> str:
    from models.wording import wording

    if r["verdict"] == "no_face" or r.get("confidence") is None:
        text = f"{name}: {r['verdict']}: {r['summary']}"
    else:
        text = f"{name}: {r['verdict']} (confidence {r['confidence']:.2f}, p(fake) {r['p_fake']:.3f})"
    if r["kind"] == "video":
        v = r["video"]
        text += (f" [video, {v['duration_s']:.1f} s: {v['frames_sampled']} frames sampled, "
                 f"{v['frames_with_face']} with a face]")
        if v["truncated"]:
            text += "\n    note: the video ends before its stated duration (cut off?)"
        for t in r["tracks"]:
            judged = f"{t['verdict']:<9} p(fake) {t['p_fake']:.3f}" if t["judged"] else "too brief to judge"
            text += (f"\n    face track {t['track'] + 1}: {len(t['frames'])} frame(s), {t['start_s']:.2f}-{t['end_s']:.2f} s  "
                     f"{judged}")
        text += f"\n    tracks judged by the {v['calibration']} calibration"
        if r["verdict"] != "no_face" and not v["calibrated_on_videos"]:
            text += f"\n    {wording()['video']['calibration_single_frame']}"
        for f in r["frames"]:
            verdict = f["verdict"] if f["verdict"] == "no_face" else f"{f['verdict']:<9} p(fake) {f['p_fake']:.3f}"
            tracks = ",".join(str(face["track"] + 1) for face in f["faces"])
            text += f"\n    {f['time_s']:7.2f} s  frame {f['frame_index']:<6} {len(f['faces'])} face(s)  {verdict}" + \
                (f"  track {tracks}" if tracks else "")
    else:
        text += _faces_lines(r, "    ") + _provenance_lines(r, "    ")
    return text


def run(args) -> int:
    from models.detector import Detector
    from models.inference import FaceCheck

    if args.frames < 1:
        raise ValueError("--frames must be at least 1")
    detector = Detector.load(args.model)  # ModelNotFound says how to build the bundled ones
    check = FaceCheck(detector)
    results, failed = [], 0
    for name in args.files:
        try:
            r = {"file": name, "ok": True, **check_file(check, name, args.frames), "error": None}
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
            "faces": {k: v for k, v in vars(check.finder.contract).items()},
            "results": results,
            "checked": len(results) - failed,
            "failed": failed,
        }
        print(json.dumps(doc, indent=2))
    elif failed:
        print(f"{failed} of {len(results)} file(s) could not be checked", file=sys.stderr)
    return 1 if failed else 0
