"""Frames from a video: decode with PyAV and sample frames evenly.

    frames = sample_frames("clip.mp4", n_frames=16)
    for f in frames:
        f.time_s, f.frame_index, f.image   # the whole RGB uint8 frame

Faces are found in the frames by the same finder and crops as in images
(models/inference.py FaceCheck.check_video), then `judge_video` links them into tracks and
gives the video its verdict. judge_video is the one rule for a video, whoever took the frames:
the server's file upload and frames endpoint, `unmask check`, and the extension's twin
(extension/src/videotracks.js), all reading the numbers in models/video.json.

    result = judge_video(rows, image_calibration, video_calibration)
    result["verdict"], result["tracks"]   # fake | real | uncertain | no_face; one entry per track

Bad input raises VideoError (a ValueError) with `.reason`: not_a_video, no_video_stream,
corrupt, empty or too_long, and a message saying what to do.
"""
from __future__ import annotations

import io
import json
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path

import numpy as np

# Containers we read. FFmpeg also opens single images (jpeg_pipe, png_pipe...), which
# are not videos and must go through the image path instead.
VIDEO_CONTAINERS = ("mov,mp4,m4a,3gp,3g2,mj2", "matroska,webm", "avi")
MAX_DURATION_S = 30 * 60          # longer videos are refused before anything is decoded
MAX_FRAMES_SCANNED = 2000         # decode budget; beyond it we seek instead of reading through


class VideoError(ValueError):
    """A file that cannot be used as a video. `reason` is a short machine-readable code."""

    def __init__(self, reason: str, message: str):
        super().__init__(message)
        self.reason = reason


@dataclass
class Frame:
    time_s: float                   # seconds from the start of the video stream
    frame_index: int                # position of the frame in presentation order
    image: np.ndarray = field(repr=False)  # the whole RGB uint8 frame


class Frames(list):
    """The sampled Frames, plus what we learnt about the video while reading it."""

    def __init__(self, frames, *, container: str, duration_s: float, frame_count: int, truncated: bool):
        super().__init__(frames)
        self.container = container
        self.duration_s = duration_s
        self.frame_count = frame_count
        # The container promised more than the stream held (a cut-off download, say).
        self.truncated = truncated


def looks_like_video(head: bytes) -> bool:
    """True for the magic bytes of MP4/MOV (ISO BMFF), WebM/Matroska (EBML) and AVI.
    HEIC/AVIF images are ISO BMFF too, so their brands are excluded."""
    if len(head) >= 12 and head[4:8] == b"ftyp":
        return head[8:12] not in (b"heic", b"heix", b"avif", b"avis", b"mif1", b"msf1")
    if head[:4] == b"\x1a\x45\xdf\xa3":
        return True
    return head[:4] == b"RIFF" and head[8:12] == b"AVI "


# --- decoding ---------------------------------------------------------------------------
def _open(source):
    import av

    if isinstance(source, (bytes, bytearray)):
        if not source:
            raise VideoError("empty", "the video file is empty (0 bytes)")
        head, fp = bytes(source[:16]), io.BytesIO(source)
    else:
        path = Path(source)
        try:
            size = path.stat().st_size
            with open(path, "rb") as f:
                head = f.read(16)
        except OSError as e:
            raise VideoError("unreadable", f"cannot open {source}: {e.strerror or e}") from e
        if size == 0:
            raise VideoError("empty", f"{path.name} is empty (0 bytes)")
        fp = str(path)
    try:
        container = av.open(fp, metadata_errors="ignore")
    except av.error.FFmpegError as e:
        if looks_like_video(head):
            raise VideoError("corrupt", f"the video is damaged or cut off and cannot be opened ({e.strerror or e}); "
                             "download or export it again") from e
        raise VideoError("not_a_video", "not a video file: use MP4, WebM or MOV") from e
    if container.format.name not in VIDEO_CONTAINERS:
        container.close()
        raise VideoError("not_a_video", f"not a video file ({container.format.name}): use MP4, WebM or MOV")
    return container


def _stream_duration(container, stream) -> float | None:
    if stream.duration is not None and stream.time_base is not None:
        return float(stream.duration * stream.time_base)
    if container.duration is not None:
        return container.duration / 1_000_000  # av.time_base: microseconds
    return None


def _to_rgb(frame) -> np.ndarray:
    return frame.to_ndarray(format="rgb24")


def _decode_targets(container, stream, targets: list[int], all_pts: list[int], max_frames_scanned: int, sequential: bool):
    """Decoded frames for the wanted presentation timestamps `targets` (sorted), as
    {pts: frame}. Reads straight through when `sequential`, else seeks to each target."""
    import av

    wanted, got, scanned = set(targets), {}, 0

    def frames_from_here():
        nonlocal scanned
        for packet in container.demux(stream):
            try:
                for frame in packet.decode():
                    scanned += 1
                    yield frame
            except av.error.FFmpegError:
                continue  # one damaged packet loses its frame, not the video

    if sequential:
        for k, frame in enumerate(frames_from_here()):
            t = frame.pts if frame.pts is not None else (all_pts[k] if k < len(all_pts) else None)
            if t in wanted:
                got[t] = frame
                if len(got) == len(wanted):
                    break
        return got, scanned
    for t in targets:
        container.seek(int(t), stream=stream, backward=True, any_frame=False)
        for frame in frames_from_here():
            if frame.pts is not None and frame.pts >= t:
                got[t] = frame
                break
        if scanned > max_frames_scanned:
            raise VideoError("too_long", f"decoding the sampled frames needed over {max_frames_scanned} frames "
                             "(few keyframes in a long video); trim the video to the part you want checked")
    return got, scanned


def sample_frames(source, n_frames: int = 16, max_frames_scanned: int = MAX_FRAMES_SCANNED,
                  max_duration_s: float = MAX_DURATION_S) -> Frames:
    """Sample `n_frames` frames evenly over a video (path or bytes). Frames come back in time
    order; fewer when the video has fewer frames.

    Videos of up to `max_frames_scanned` frames are decoded straight through (exact and
    robust); longer ones are sampled by seeking, and refused as too_long if seeking still
    needs more than `max_frames_scanned` decoded frames. Raises VideoError."""
    import av

    if n_frames < 1:
        raise ValueError("n_frames must be at least 1")
    container = _open(source)
    try:
        if not container.streams.video:
            raise VideoError("no_video_stream", "the file holds no video stream (audio only?)")
        stream = container.streams.video[0]
        stream.thread_type = "AUTO"  # both cores decode
        declared = _stream_duration(container, stream)
        if declared is not None and declared > max_duration_s:
            raise VideoError("too_long", f"the video lasts {declared / 60:.1f} minutes, over the limit of "
                             f"{max_duration_s / 60:.0f}; trim it to the part you want checked")
        # Pass 1: demux only (no decoding) to learn every frame's timestamp.
        try:
            pts = sorted({p.pts for p in container.demux(stream) if p.size and p.pts is not None})
        except av.error.FFmpegError as e:
            raise VideoError("corrupt", f"the video stream is damaged ({e.strerror or e})") from e
        if not pts:
            raise VideoError("empty", "the video holds no frames")
        tb = float(stream.time_base)
        start = pts[0]
        last_s = (pts[-1] - start) * tb
        if last_s > max_duration_s:
            raise VideoError("too_long", f"the video lasts over {max_duration_s / 60:.0f} minutes; trim it")
        n = min(n_frames, len(pts))
        indices = sorted({int((k + 0.5) * len(pts) / n) for k in range(n)})
        targets = [pts[i] for i in indices]
        # Pass 2: decode the sampled frames.
        container.seek(start, stream=stream, backward=True, any_frame=False)
        sequential = len(pts) <= max_frames_scanned
        got, _ = _decode_targets(container, stream, targets, pts, max_frames_scanned, sequential)
        if not got:
            raise VideoError("corrupt", "no frame of the video could be decoded; the file is damaged")
        frames = []
        for i, t in zip(indices, targets):
            if t not in got:
                continue  # that frame was damaged
            frames.append(Frame(time_s=round((t - start) * tb, 4), frame_index=i, image=_to_rgb(got[t])))
        frame_period = (last_s / (len(pts) - 1)) if len(pts) > 1 else 0.0
        truncated = declared is not None and last_s + 2 * frame_period < declared * 0.9
        return Frames(frames, container=container.format.name, duration_s=round(last_s + frame_period, 4),
                          frame_count=len(pts), truncated=truncated)
    finally:
        container.close()


# --- tracks and the video's verdict -------------------------------------------------------
RULES_PATH = Path(__file__).with_name("video.json")


@lru_cache(maxsize=1)
def video_rules() -> dict:
    """models/video.json: tracking, aggregation and sampling numbers (the extension bundles it)."""
    return json.loads(RULES_PATH.read_text())


def track_faces(frames: list[dict], min_iou: float) -> list[list[tuple[int, int]]]:
    """Faces of consecutive frames linked by box overlap. `frames`: in time order, each with
    "faces" (each with a "box" [x0, y0, x1, y1]). Returns tracks in order of birth, each a list
    of (frame position, face index). In each frame, pairs of (open track, face) are taken best
    overlap first (ties: older track, then earlier face); a face left over starts a track."""
    from models.faces import iou

    tracks: list[list[tuple[int, int]]] = []
    for k, frame in enumerate(frames):
        faces = frame.get("faces") or []
        pairs = []
        for t, track in enumerate(tracks):
            last_k, last_i = track[-1]
            last = frames[last_k]["faces"][last_i]["box"]
            for i, face in enumerate(faces):
                o = iou(last, face["box"])
                if o >= min_iou:
                    pairs.append((-o, t, i))
        pairs.sort()
        used_t, used_i = set(), set()
        for _, t, i in pairs:
            if t in used_t or i in used_i:
                continue
            tracks[t].append((k, i))
            used_t.add(t)
            used_i.add(i)
        tracks.extend([[(k, i)] for i in range(len(faces)) if i not in used_i])
    return tracks


def mean_logit(p_raw) -> float:
    """The aggregate of a track: sigmoid of the mean logit of its raw p(fake) (a geometric vote:
    one wild frame cannot swing it)."""
    from models.calibration import logit, sigmoid

    return float(sigmoid(np.mean(logit(list(p_raw)))))


def calibrated_on_videos(video_calibration) -> bool:
    """Whether a video calibration (None: there is none) was fitted on videos of several frames
    (its fitted_on's frames_per_video: min, mean, max). faces-v1 has one frame per video, so a calibration fitted
    there is the image calibration again, and a video's confidence must say so."""
    per = ((getattr(video_calibration, "fitted_on", None) or {}).get("frames_per_video")) or []
    return bool(per) and max(per) > 1


def judge_video(frames: list[dict], calibration, video_calibration=None, rules: dict | None = None) -> dict:
    """The video's verdict from its sampled frames, each judged like a picture (models/inference.py
    check_images: "faces" with "box" and "p_fake_raw"; "time_s"). Faces are tracked
    (track_faces); each track's mean-logit p(fake) is judged by `video_calibration` (the image
    `calibration` when the detector has none yet, said in "calibration"; "calibrated_on_videos"
    is false unless it was fitted on videos of several frames); the video is fake
    when any judged track is, real when every judged track is, else uncertain, and no_face
    when no frame holds a face. Its confidence and p(fake) are the most suspicious judged
    track's. Each face in the returned frames gets its "track" number."""
    from models.wording import describe, no_face

    rules = rules or video_rules()
    cal = video_calibration or calibration
    which = "video" if video_calibration is not None else "image"
    tracking = rules["tracking"]
    spans = track_faces(frames, float(tracking["min_iou"]))
    rows = [{**f, "faces": [dict(face) for face in (f.get("faces") or [])]} for f in frames]
    longest = max((len(s) for s in spans), default=0)
    need = min(int(tracking["min_track_frames"]), longest)
    tracks = []
    for n, span in enumerate(spans):
        for k, i in span:
            rows[k]["faces"][i]["track"] = n
        p_raw = mean_logit([frames[k]["faces"][i]["p_fake_raw"] for k, i in span])
        track = {"track": n, "frames": [k for k, _ in span], "judged": len(span) >= need,
                 "boxes": [frames[k]["faces"][i]["box"] for k, i in span],
                 "start_s": frames[span[0][0]].get("time_s"), "end_s": frames[span[-1][0]].get("time_s")}
        track.update(cal.verdict(p_raw))
        tracks.append(track)
    with_face = sum(1 for f in frames if f.get("faces"))
    info = {"frames_sampled": len(frames), "frames_with_face": with_face, "calibration": which,
            "calibrated_on_videos": calibrated_on_videos(video_calibration),
            "aggregate": rules["aggregate"], "min_track_frames": need}
    judged = [t for t in tracks if t["judged"]]
    if not judged:
        return no_face(tracks=tracks, frames=rows, **info)
    top = max(judged, key=lambda t: t["p_fake"])  # the first highest, as the JS twin
    verdicts = {t["verdict"] for t in judged}
    verdict = "fake" if "fake" in verdicts else "real" if verdicts == {"real"} else "uncertain"
    return {"verdict": verdict, "confidence": top["confidence"], "p_fake": top["p_fake"], "p_fake_raw": top["p_fake_raw"],
            "summary": describe(verdict, top["confidence"], top["p_fake"]), "tracks": tracks, "frames": rows, **info}
