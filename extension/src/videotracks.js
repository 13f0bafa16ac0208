// The video rule, the JS twin of models/video.py judge_video: faces of the sampled frames
// linked into tracks by box overlap, each track judged from its frames (mean logit of its raw
// p(fake), by the video calibration), and the video called fake when any judged track is,
// real when every judged track is, uncertain otherwise, no_face when no frame has a face.
// The numbers come from models/video.json, which the build bundles (as wording.json).
//
//   const result = judgeVideo(frames, metadata.calibration, metadata.video_calibration);
//   // frames: [{time_s, faces: [{box, p_fake_raw, ...}]}] in time order
//
// Plain numbers only (no TensorFlow.js, no DOM): tests/extension/videotracks.unit.test.mjs
// checks it against Python on the same frames.
import RULES from '../../models/video.json' with {type: 'json'};
import {iou} from './geometry.js';
import {verdict} from './verdict.js';
import {describe, wording} from './wording.js';

export const VIDEO_RULES = RULES;
const EPS = 1e-6; // models.calibration.EPS

// models.video.track_faces: tracks in order of birth, each a list of [frame, face] pairs.
export function trackFaces(frames, minIou) {
  const tracks = [];
  frames.forEach((frame, k) => {
    const faces = frame.faces || [];
    const pairs = [];
    tracks.forEach((track, t) => {
      const [lastK, lastI] = track[track.length - 1];
      const last = frames[lastK].faces[lastI].box;
      faces.forEach((face, i) => {
        const o = iou(last, face.box);
        if (o >= minIou) pairs.push([-o, t, i]);
      });
    });
    // As Python sorts tuples: best overlap first, then the older track, then the earlier face.
    pairs.sort((a, b) => a[0] - b[0] || a[1] - b[1] || a[2] - b[2]);
    const usedT = new Set();
    const usedI = new Set();
    for (const [, t, i] of pairs) {
      if (usedT.has(t) || usedI.has(i)) continue;
      tracks[t].push([k, i]);
      usedT.add(t);
      usedI.add(i);
    }
    faces.forEach((_, i) => {
      if (!usedI.has(i)) tracks.push([[k, i]]);
    });
  });
  return tracks;
}

// models.video.mean_logit: sigmoid of the mean logit of the raw p(fake).
export function meanLogit(pRaw) {
  let sum = 0;
  for (const p of pRaw) {
    const q = Math.min(Math.max(p, EPS), 1 - EPS);
    sum += Math.log(q) - Math.log1p(-q);
  }
  return 1 / (1 + Math.exp(-(sum / pRaw.length)));
}

// models.video.calibrated_on_videos: fitted on videos of several frames (fitted_on.frames_per_video: min, mean, max); null: none.
export function calibratedOnVideos(videoCalibration) {
  const per = (videoCalibration && videoCalibration.fitted_on && videoCalibration.fitted_on.frames_per_video) || [];
  return per.length > 0 && Math.max(...per) > 1;
}

// models.video.judge_video (see the top of this file).
export function judgeVideo(frames, calibration, videoCalibration = null, rules = RULES) {
  const cal = videoCalibration || calibration;
  const which = videoCalibration ? 'video' : 'image';
  const spans = trackFaces(frames, rules.tracking.min_iou);
  const rows = frames.map((f) => ({...f, faces: (f.faces || []).map((face) => ({...face}))}));
  const longest = spans.reduce((m, s) => Math.max(m, s.length), 0);
  const need = Math.min(rules.tracking.min_track_frames, longest);
  const tracks = spans.map((span, n) => {
    for (const [k, i] of span) rows[k].faces[i].track = n;
    const pRaw = meanLogit(span.map(([k, i]) => frames[k].faces[i].p_fake_raw));
    return {
      track: n, frames: span.map(([k]) => k), judged: span.length >= need,
      boxes: span.map(([k, i]) => frames[k].faces[i].box),
      start_s: frames[span[0][0]].time_s ?? null, end_s: frames[span[span.length - 1][0]].time_s ?? null,
      ...verdict(pRaw, cal),
    };
  });
  const info = {
    frames_sampled: frames.length, frames_with_face: frames.filter((f) => (f.faces || []).length).length,
    calibration: which, calibrated_on_videos: calibratedOnVideos(videoCalibration),
    aggregate: rules.aggregate, min_track_frames: need,
  };
  const judged = tracks.filter((t) => t.judged);
  if (!judged.length) {
    return {verdict: 'no_face', confidence: null, p_fake: null, p_fake_raw: null, summary: wording.no_face, tracks, frames: rows, ...info};
  }
  const top = judged.reduce((best, t) => (t.p_fake > best.p_fake ? t : best)); // the first highest, as Python's max
  const verdicts = new Set(judged.map((t) => t.verdict));
  const v = verdicts.has('fake') ? 'fake' : verdicts.size === 1 && verdicts.has('real') ? 'real' : 'uncertain';
  return {verdict: v, confidence: top.confidence, p_fake: top.p_fake, p_fake_raw: top.p_fake_raw,
    summary: describe(v, top.confidence, top.p_fake), tracks, frames: rows, ...info};
}

// One mark per sampled frame for the timeline strip: the frame's picture verdict (the image
// rule over its faces, as the server's timeline), or no_face.
export function frameMarks(frames) {
  return frames.map((f) => ({time_s: f.time_s ?? null, verdict: f.verdict || 'no_face'}));
}
