"""The calibration of a video's verdict: `unmask calibrate RUN_DIR --video`.

A video is judged by its face tracks (models/video.py judge_video): each track's raw p(fake)
is the mean logit of its frames', which is far more confident than one frame's, so the image
calibration does not hold for it. This fits a calibration for that aggregate, on the
validation split only: the validation frames are grouped into videos (frames of one source
video with one label: the manifest's `group`, which for DFDC is the source video, and the
label, since a source video and the fakes made from it share a group), each video's frames
scored on their face crops as `unmask calibrate` scores images, aggregated by the same
mean_logit, then a temperature and two thresholds with the same rules as images
(models/calibration.py): each confident verdict at --target-precision, and `fake` said of at
most --max-false-alarm of every source's real videos.

Stored as "video_calibration" in RUN_DIR/detector.json beside the image calibration (the server
and `unmask check` read it), and, with --metadata, in the extension's metadata.json.
`fitted_on` records the videos, their frames and the per-source false alarms.
"""
from __future__ import annotations

import datetime as dt
import json
import shlex
from collections import defaultdict
from pathlib import Path

import numpy as np


def videos_of(samples, p_raw) -> list[dict]:
    """Scored frames -> videos: {group, label, source, frames, p_raw (mean logit)}, one per
    (group, label), in name order."""
    from models.video import mean_logit

    by = defaultdict(list)
    for s, p in zip(samples, p_raw):
        by[(s.group, s.label, s.source)].append(float(p))
    return [{"group": g, "label": y, "source": src, "frames": len(ps), "p_raw": mean_logit(ps)}
            for (g, y, src), ps in sorted(by.items())]


def per_source(cal, videos) -> dict:
    """What the video calibration does per source on the videos it was fitted on."""
    out = {}
    for src in sorted({v["source"] for v in videos}):
        vs = [v for v in videos if v["source"] == src]
        verdicts = cal.verdicts(np.array([v["p_raw"] for v in vs]))
        y = np.array([v["label"] for v in vs])
        fake = np.array(verdicts) == "fake"
        real = np.array(verdicts) == "real"
        out[src] = {
            "videos": len(vs), "real_videos": int((y == 0).sum()), "fake_videos": int((y == 1).sum()),
            "frames_per_video": [min(v["frames"] for v in vs), max(v["frames"] for v in vs)],
            "reals_called_fake": float(fake[y == 0].mean()) if (y == 0).any() else None,
            "fakes_called_fake": float(fake[y == 1].mean()) if (y == 1).any() else None,
            "precision_fake": float(y[fake].mean()) if fake.any() else None,
            "precision_real": float(1 - y[real].mean()) if real.any() else None,
            "uncertain": float(1 - fake.mean() - real.mean()),
        }
    return out


def fit_video_calibration(detector, val_samples, target_precision: float, max_false_alarm: float, progress: bool = True):
    """(Calibration, videos) fitted on the validation frames grouped into videos."""
    from models.calibration import fit_calibration
    from training.calibrate import scored_samples

    used, p, no_face, errors = scored_samples(detector, val_samples, progress)
    videos = videos_of(used, p)
    if not videos:
        raise ValueError(f"none of the {len(val_samples)} validation frames could be judged "
                         f"({len(no_face)} without a face, {len(errors)} unreadable)")
    cal = fit_calibration(np.array([v["p_raw"] for v in videos]), np.array([v["label"] for v in videos]),
                          target_precision, max_false_alarm, sources=np.array([v["source"] for v in videos]))
    frames = [v["frames"] for v in videos]
    cal.fitted_on.update(unit="video: validation frames of one source video (manifest group) with one label",
                         aggregate="mean logit of the frames' raw p(fake), as a face track's", videos=len(videos),
                         frames=int(sum(frames)), frames_per_video=[int(min(frames)), float(np.median(frames)), int(max(frames))],
                         frames_without_face=len(no_face), per_source=per_source(cal, videos))
    return cal, videos


def describe(cal) -> list[str]:
    s = cal.fitted_on
    fake = f"fake if p >= {cal.fake_threshold:.3f}" if cal.fake_threshold <= 1 else "never fake"
    real = f"real if p <= {cal.real_threshold:.3f}" if cal.real_threshold >= 0 else "never real"
    lines = [f"video calibration on {s['videos']} validation videos ({s['frames']} frames; frames per video: "
             f"min {s['frames_per_video'][0]}, median {s['frames_per_video'][1]:g}, max {s['frames_per_video'][2]}): "
             f"temperature {cal.temperature:.3f}; {fake}, {real}; uncertain share {s['share_uncertain']:.1%}"]
    for src, v in s["per_source"].items():
        rf = "-" if v["reals_called_fake"] is None else f"{v['reals_called_fake']:.1%}"
        ff = "-" if v["fakes_called_fake"] is None else f"{v['fakes_called_fake']:.1%}"
        lines.append(f"  {src}: {v['videos']} videos, real videos called fake {rf}, fake videos called fake {ff}, "
                     f"uncertain {v['uncertain']:.1%}")
    if s["frames_per_video"][2] <= 1:
        lines.append("note: every validation video holds one frame here, so this is the image calibration refitted on "
                     "one frame per video; it does not yet account for the averaging over a track's frames. "
                     "Fit it again on data with several frames per source video.")
    return lines


def run(args) -> int:
    from models.detector import Detector, resolve
    from training.data import load_split

    where = resolve(args.model)
    if not where.is_dir() or not (where / "split.json").is_file():
        raise ValueError(f"{args.model} has no recorded split: the video calibration needs the validation split of the run that trained it")
    splits = load_split(where, args.data)
    if not splits.get("val"):
        raise ValueError(f"the validation split in {where / 'split.json'} is empty: nothing to calibrate on")
    detector = Detector.load(where)
    target = args.target_precision if args.target_precision is not None else detector.calibration.target_precision
    cal, _ = fit_video_calibration(detector, splits["val"], target, args.max_false_alarm, progress=not args.quiet)
    command = ["unmask", "calibrate", str(args.model), "--video"] + (["--data", str(args.data)] if args.data else []) + \
        ["--max-false-alarm", f"{args.max_false_alarm:g}", "--target-precision", f"{target:g}"] + \
        (["--metadata", str(args.metadata)] if args.metadata else [])
    stored = {**cal.to_dict(), "command": shlex.join(command),
              "date": dt.datetime.now(dt.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")}
    detector.info["video_calibration"] = stored
    detector.save_info()
    for line in describe(cal):
        print(line)
    print(f"wrote the video calibration into {where / 'detector.json'}")
    if args.metadata:
        path = Path(args.metadata)
        meta = json.loads(path.read_text())
        if meta.get("name") != detector.name or meta.get("version") != detector.version:
            raise ValueError(f"{path} holds {meta.get('name')} {meta.get('version')}, not {detector.name} {detector.version}: "
                             "give the metadata.json converted from this detector")
        meta["video_calibration"] = stored
        path.write_text(json.dumps(meta, indent=2) + "\n")
        print(f"and into {path}")
    return 0
