"""Videos for the extension's video tests, made here (never downloaded):

    python -m tests.video.media OUT [HEIGHT] [--bad]    # OUT/face.webm, OUT/noface.webm, OUT/index.json (360 px tall by default)

face.webm: one synthetic face (tests.synthetic.face_image) drifting across a plain background
and back (the loop does not jump), chosen so that the face finder sees it clearly in every frame; noface.webm: a chart
whose bars move. VP8 in WebM, which every Chromium plays.

With --bad, also the videos of the bad-input tests: face4k.webm, the same face at 3840x2160 (every
fifth frame scaled up 6x, at 2 frames a second: a few frames keep a 4K encode quick), and
face-cenc.mp4, the face video encrypted with Clear Key (ISO common encryption, cenc-aes-ctr, VP9 in
fragmented MP4, which Media Source Extensions take), whose key and key ID go in index.json.
"""
from __future__ import annotations

import json
import sys
from pathlib import Path

import numpy as np

SIZE = (360, 640)  # height, width, unless asked for another height (16:9)
FPS = 10
SECONDS = 6
FACE_SIDE = 220  # at 360 px; scaled with the height
MIN_SCORE_MARGIN = 0.08  # as tests/extension/fixtures.py: clearly over the finder's threshold


def face_frames(seed: int, size=SIZE):
    from tests.synthetic import face_image

    h, w = size
    k = h / SIZE[0]
    side = round(FACE_SIDE * k)
    face = face_image("real", side, seed)
    out = []
    for i in range(FPS * SECONDS):
        frame = np.full((h, w, 3), 70, np.uint8)
        # There and back, so that the loop does not jump: one face stays one track.
        x = round(k * (120 + 160 * (1 - abs(1 - 2 * i / (FPS * SECONDS)))))
        frame[(h - side) // 2:(h - side) // 2 + side, x:x + side] = face
        out.append(frame)
    return out


def clear_face_frames(size=SIZE):
    """Frames of the first seed whose face the finder sees clearly in every tenth frame."""
    from models.faces import FaceFinder

    finder = FaceFinder()
    for seed in range(1, 40):
        frames = face_frames(seed, size)
        found = finder.find_batch(frames[::10])
        if all(len(f.faces) == 1 and f.faces[0].score >= finder.contract.min_score + MIN_SCORE_MARGIN for f in found):
            return seed, frames
    raise RuntimeError("no synthetic face is found clearly in every frame; the face finder changed")


def chart_frames(size=SIZE):
    from tests.synthetic import chart

    base = chart((size[1], size[0]))  # PIL's (width, height)
    return [np.ascontiguousarray(np.roll(base, 5 * i, axis=1)) for i in range(FPS * SECONDS)]


def write_video(path: Path, frames, codec="libvpx", rate=FPS, codec_options=None, **container) -> Path:
    """frames (RGB arrays) encoded with `codec`; `container`: av.open's format= and options=."""
    import av

    h, w = frames[0].shape[:2]
    with av.open(str(path), "w", **container) as c:
        s = c.add_stream(codec, rate=rate, options=codec_options or {"crf": "8", "b:v": "3M"})
        s.width, s.height, s.pix_fmt = w, h, "yuv420p"
        for f in frames:
            for p in s.encode(av.VideoFrame.from_ndarray(f, format="rgb24")):
                c.mux(p)
        for p in s.encode():
            c.mux(p)
    return path


FAST = {"deadline": "realtime", "cpu-used": "8"}  # libvpx's quickest settings: the bad-input videos only need to play


def write_4k(path: Path, frames) -> Path:
    big = [np.repeat(np.repeat(f, 6, axis=0), 6, axis=1) for f in frames[::5]]  # 360x640 -> 2160x3840
    return write_video(path, big, rate=FPS // 5, codec_options={**FAST, "b:v": "2M"})


# A fixed test key: the page hands it to Chromium's Clear Key CDM (org.w3.clearkey).
CLEARKEY = {"key": "00112233445566778899aabbccddeeff", "kid": "0123456789abcdef0123456789abcdef"}


def write_cenc_mp4(path: Path, frames) -> Path:
    """Encrypted, fragmented MP4 (no pssh box: the page asks for the key by its ID, 'keyids')."""
    muxer = {"movflags": "frag_keyframe+empty_moov+default_base_moof", "encryption_scheme": "cenc-aes-ctr",
             "encryption_key": CLEARKEY["key"], "encryption_kid": CLEARKEY["kid"]}
    return write_video(path, frames, "libvpx-vp9", codec_options={**FAST, "b:v": "1M"}, format="mp4", options=muxer)


def main(out: Path, height: int = SIZE[0], bad: bool = False) -> None:
    size = (height, round(height * 16 / 9))
    out.mkdir(parents=True, exist_ok=True)
    seed, frames = clear_face_frames(size)
    write_video(out / "face.webm", frames)
    write_video(out / "noface.webm", chart_frames(size))
    index = {"face": {"seed": seed, "seconds": SECONDS, "fps": FPS, "size": size},
             "noface": {"seconds": SECONDS, "fps": FPS, "size": size}}
    if bad:
        write_4k(out / "face4k.webm", frames)
        write_cenc_mp4(out / "face-cenc.mp4", frames)
        index["face4k"] = {"size": [size[0] * 6, size[1] * 6]}
        index["face-cenc"] = {"codecs": 'video/mp4; codecs="vp09.00.10.08"', **CLEARKEY}
    (out / "index.json").write_text(json.dumps(index))


if __name__ == "__main__":
    args = [a for a in sys.argv[1:] if a != "--bad"]
    main(Path(args[0]), int(args[1]) if len(args) > 1 else SIZE[0], bad="--bad" in sys.argv)
