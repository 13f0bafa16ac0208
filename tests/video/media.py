"""Videos for the extension's video tests, made here (never downloaded):

    python -m tests.video.media OUT     # OUT/face.webm, OUT/noface.webm, OUT/index.json

face.webm: one synthetic face (tests.synthetic.face_image) drifting across a plain background
and back (the loop does not jump), chosen so that the face finder sees it clearly in every frame; noface.webm: a chart
whose bars move. VP8 in WebM, which every Chromium plays.
"""
from __future__ import annotations

import json
import sys
from pathlib import Path

import numpy as np

SIZE = (360, 640)  # height, width
FPS = 10
SECONDS = 6
FACE_SIDE = 220
MIN_SCORE_MARGIN = 0.08  # as tests/extension/fixtures.py: clearly over the finder's threshold


def face_frames(seed: int):
    from tests.synthetic import face_image

    face = face_image("real", FACE_SIDE, seed)
    h, w = SIZE
    out = []
    for i in range(FPS * SECONDS):
        frame = np.full((h, w, 3), 70, np.uint8)
        # There and back, so that the loop does not jump: one face stays one track.
        x = 120 + round(160 * (1 - abs(1 - 2 * i / (FPS * SECONDS))))
        frame[(h - FACE_SIDE) // 2:(h - FACE_SIDE) // 2 + FACE_SIDE, x:x + FACE_SIDE] = face
        out.append(frame)
    return out


def clear_face_frames():
    """Frames of the first seed whose face the finder sees clearly in every tenth frame."""
    from models.faces import FaceFinder

    finder = FaceFinder()
    for seed in range(1, 40):
        frames = face_frames(seed)
        found = finder.find_batch(frames[::10])
        if all(len(f.faces) == 1 and f.faces[0].score >= finder.contract.min_score + MIN_SCORE_MARGIN for f in found):
            return seed, frames
    raise RuntimeError("no synthetic face is found clearly in every frame; the face finder changed")


def chart_frames():
    from tests.server.files import chart

    base = chart(SIZE)
    return [np.ascontiguousarray(np.roll(base, 5 * i, axis=1)) for i in range(FPS * SECONDS)]


def write_webm(path: Path, frames) -> Path:
    import av

    h, w = frames[0].shape[:2]
    with av.open(str(path), "w") as c:
        s = c.add_stream("libvpx", rate=FPS, options={"crf": "8", "b:v": "3M"})
        s.width, s.height, s.pix_fmt = w, h, "yuv420p"
        for f in frames:
            for p in s.encode(av.VideoFrame.from_ndarray(f, format="rgb24")):
                c.mux(p)
        for p in s.encode():
            c.mux(p)
    return path


def main(out: Path) -> None:
    out.mkdir(parents=True, exist_ok=True)
    seed, frames = clear_face_frames()
    write_webm(out / "face.webm", frames)
    write_webm(out / "noface.webm", chart_frames())
    (out / "index.json").write_text(json.dumps({"face": {"seed": seed, "seconds": SECONDS, "fps": FPS, "size": SIZE},
                                                "noface": {"seconds": SECONDS, "fps": FPS, "size": SIZE}}))


if __name__ == "__main__":
    main(Path(sys.argv[1]))
