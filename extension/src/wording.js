// How a verdict is said to a person: the one vocabulary, models/wording.json, which the build
// bundles into every script (esbuild inlines the JSON). Python (models/wording.py) and the
// server say the same things with the same file, so the device and the second opinion agree.
import WORDING from '../../models/wording.json' with {type: 'json'};

export const wording = WORDING;
export const LABELS = WORDING.labels; // fake | real | uncertain | no_face -> "Likely fake", ...
export const SHORT = WORDING.short;

// Python's round(): halves go to the even neighbour, so 62.5% reads the same on both sides.
function roundHalfEven(v) {
  const f = Math.floor(v);
  const d = v - f;
  if (d !== 0.5) return d > 0.5 ? f + 1 : f;
  return f % 2 === 0 ? f : f + 1;
}

export const pct = (x) => `${roundHalfEven(100 * x)}%`;

// The sentence after the label: "93% confident it is fake", "Leans real (57%), not enough to
// call it". Null without a calibrated number.
export function confidenceText(verdict, confidence, pFake) {
  const template = WORDING.confidence[verdict];
  if (!template || confidence === null || confidence === undefined) return null;
  const lean = (pFake ?? 0.5) >= 0.5 ? 'fake' : 'real';
  return template.replaceAll('{pct}', pct(confidence)).replaceAll('{lean}', lean);
}

// models.wording.describe: "Likely fake: 93% confident it is fake", or the no-face sentence.
export function describe(verdict, confidence = null, pFake = null) {
  if (verdict === 'no_face') return WORDING.no_face;
  const label = LABELS[verdict];
  const text = confidenceText(verdict, confidence, pFake);
  if (!text) return label;
  return `${label}: ${text[0].toLowerCase()}${text.slice(1)}`;
}

// models.wording.tag: a badge's or a face's short tag, "Fake 93%", "Real 97%", "Unsure": the
// one number is the confidence of that verdict, as on the server's page.
export function tag(verdict, confidence = null) {
  const text = WORDING.tag[verdict];
  return text.includes('{pct}') && confidence !== null && confidence !== undefined ? text.replaceAll('{pct}', pct(confidence)) : text.replace(' {pct}', '');
}

// models.inference.may_miss: what a search of a large picture may have missed.
export function mayMiss(side) {
  return WORDING.may_miss.replace('{side}', String(side));
}

export function tooSmall(minFaceSide) {
  return WORDING.too_small.replaceAll('{min_face_side}', String(minFaceSide));
}
