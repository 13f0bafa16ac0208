// Faces first, the JS twin of models/inference.py: find the faces, crop, score, calibrate,
// combine. The picture is `fake` when any face is called fake, `real` when every face is
// called real, otherwise `uncertain`; its p(fake) is the highest face p(fake), so its verdict
// is that face's verdict. Without a face of the smallest judged size it is `no_face`, with
// no score.
//
//   const check = new FaceCheck({detector, finder, crop: cropPixels});  // offscreen.js
//   const found = await check.score(pixels);        // faces with their raw p(fake): cacheable
//   const result = judge(found, calibration);       // what Python's FaceCheck.check_image gives
//
// No TensorFlow.js here (the detector and the finder come in), so the service worker can
// judge cached raw scores at the user's sensitivity without bundling the model code.
import {iou, smallestFaceFound} from './geometry.js';
import {escalates, verdict} from './verdict.js';
import {describe, mayMiss, tooSmall, wording} from './wording.js';

export const NO_FACE = 'no_face';

// A refusal with a code the worker and the overlay understand (as models.preprocessing.ImageError).
class FaceCheckProblem extends Error {
  constructor(code, message) {
    super(message);
    this.code = code;
  }
}

// models.inference.require_size: every consumer refuses, alike, an image too small to hold a
// face it would judge.
export function requireSize(width, height, minFaceSide) {
  if (Math.min(width, height) < minFaceSide) {
    throw new FaceCheckProblem('too_small', `The image is ${width}x${height} px. ${tooSmall(minFaceSide)}`);
  }
}

// models.inference.face_result: the face, its prediction and the sentence for it.
export function faceResult(face, prediction) {
  const {p_raw: _raw, ...rest} = face;
  return {...rest, ...prediction, summary: describe(prediction.verdict, prediction.confidence, prediction.p_fake)};
}

// models.inference.combine: the picture's verdict from its judged faces. found.may_miss_side
// (FaceCheck.score: the smallest face the search finds reliably in a picture this large, or
// null) makes a no-face answer say what may have been missed, as models.inference.may_miss.
export function combine(faces, found) {
  const counts = {faces_too_small: found.too_small, faces_over_limit: found.over_limit, width: found.width, height: found.height};
  if (!faces.length) {
    const hint = found.may_miss_side ? mayMiss(found.may_miss_side) : null;
    return {verdict: NO_FACE, confidence: null, p_fake: null, p_fake_raw: null,
      summary: wording.no_face + (hint ? ` ${hint}` : ''), faces: [], ...counts, ...(hint ? {hint} : {})};
  }
  const top = faces.reduce((best, f) => (f.p_fake > best.p_fake ? f : best)); // the first highest, as Python's max
  const verdicts = new Set(faces.map((f) => f.verdict));
  const v = verdicts.has('fake') ? 'fake' : verdicts.size === 1 && verdicts.has('real') ? 'real' : 'uncertain';
  return {verdict: v, confidence: top.confidence, p_fake: top.p_fake, p_fake_raw: top.p_fake_raw,
    summary: describe(v, top.confidence, top.p_fake), faces, ...counts};
}

// Found faces with their raw scores ({faces: [{..., p_raw}], too_small, ...}) -> the result,
// at the calibration given (the user's sensitivity moves it).
export function judge(found, calibration) {
  return combine(found.faces.map((f) => faceResult(f, verdict(f.p_raw, calibration))), found);
}

// The cascade sends a picture to the server when any of its faces is in the escalation band
// (or called uncertain, when the user asked for all of those: options {allUnsure}).
export function escalatesImage(result, cascade, options = {}) {
  return result.faces.some((f) => escalates(f, cascade, options));
}

// The server's answer replaces the device's, face by face: its faces, each with the device's
// verdict on the same face (best box overlap above `minIou`) kept for reference.
export function mergeServerFaces(deviceFaces, serverFaces, minIou = 0.3) {
  return serverFaces.map((s) => {
    let match = null;
    let best = minIou;
    for (const d of deviceFaces) {
      const o = iou(d.box, s.box);
      if (o > best) [match, best] = [d, o];
    }
    return {...s, source: 'server', device: match && {verdict: match.verdict, confidence: match.confidence, p_fake: match.p_fake}};
  });
}

export class FaceCheck {
  // detector: detector.js; finder: faces.js loadFaceFinder(); crop: faces.js cropPixels.
  constructor({detector, finder, crop}) {
    this.detector = detector;
    this.finder = finder;
    this.crop = crop;
    this.minFaceSide = detector.metadata.faces.min_face_side;
  }

  async find(pixels) {
    requireSize(pixels.width, pixels.height, this.minFaceSide);
    return this.finder.find(pixels);
  }

  // The faces found, each with the detector's raw p(fake) (all crops in one batch). timing,
  // when given, gets the milliseconds of each step: find_ms, judge_ms (crop and classify).
  async score(pixels, timing = null) {
    const t0 = performance.now();
    const found = await this.find(pixels);
    const t1 = performance.now();
    const raw = found.faces.length ? await this.detector.scores(found.faces.map((f) => this.crop(pixels, f.crop))) : [];
    if (timing) Object.assign(timing, {find_ms: t1 - t0, judge_ms: performance.now() - t1});
    return {...found, faces: found.faces.map((f, i) => ({...f, p_raw: raw[i]})),
      may_miss_side: smallestFaceFound(found.height, found.width, this.finder.contract)};
  }

  // models.inference.FaceCheck.check_image, at the model's own calibration unless given.
  async checkImage(pixels, calibration = this.detector.metadata.calibration) {
    return judge(await this.score(pixels), calibration);
  }
}
