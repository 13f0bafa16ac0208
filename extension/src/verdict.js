// From a raw p(fake) to a verdict: the rule of models.calibration.Calibration.verdict in Python.
//
// The calibrated probability is sigmoid(logit(p_raw) / temperature). At or above
// fake_threshold the verdict is "fake", at or below real_threshold "real", else "uncertain".
// The confidence is the calibrated probability that the likelier label is right; a raw score
// is never shown as a confidence.

const EPS = 1e-6; // models.calibration.EPS

export const VERDICTS = Object.freeze(['fake', 'real', 'uncertain']);

const round4 = (x) => Math.round(x * 1e4) / 1e4;

// Throws unless `cal` (metadata.calibration) has the numbers the rule needs.
export function checkCalibration(cal) {
  if (!cal || typeof cal !== 'object') throw new Error('metadata has no calibration section');
  for (const key of ['temperature', 'fake_threshold', 'real_threshold']) {
    if (typeof cal[key] !== 'number' || !Number.isFinite(cal[key])) {
      throw new Error(`calibration ${key} must be a number, got ${JSON.stringify(cal[key])}`);
    }
  }
  if (cal.temperature <= 0) throw new Error(`calibration temperature must be positive, got ${cal.temperature}`);
  return cal;
}

export function calibrate(pRaw, cal) {
  const p = Math.min(Math.max(pRaw, EPS), 1 - EPS);
  const z = (Math.log(p) - Math.log1p(-p)) / cal.temperature;
  return 1 / (1 + Math.exp(-z));
}

export function verdict(pRaw, cal) {
  if (typeof pRaw !== 'number' || Number.isNaN(pRaw)) throw new Error(`p_fake must be a number, got ${pRaw}`);
  const p = calibrate(pRaw, cal);
  const label = p >= cal.fake_threshold ? 'fake' : p <= cal.real_threshold ? 'real' : 'uncertain';
  return {
    verdict: label,
    confidence: round4(Math.max(p, 1 - p)),
    p_fake: round4(p),
    p_fake_raw: round4(pRaw),
  };
}

// Whether a device verdict goes to the server by itself (when the user allows second
// opinions). `make models` chooses an escalation band on validation so that the cascade
// (tiny here, the ensemble there) stays close to the ensemble's accuracy within the server's
// budget (metadata.cascade); without one, every uncertain verdict goes. allUnsure: the user
// asked for every uncertain verdict to go as well (Options).
export function escalates(device, cascade, {allUnsure = false} = {}) {
  if (allUnsure && device.verdict === 'uncertain') return true;
  const band = escalationBand(cascade);
  if (band) return device.p_fake > band.above && device.p_fake < band.below;
  return device.verdict === 'uncertain';
}

function escalationBand(cascade) {
  const band = cascade && cascade.escalate;
  return band && Number.isFinite(band.above) && Number.isFinite(band.below) ? band : null;
}

// The band in the numbers the overlay shows: a face goes when it leans fake by less than
// `fake` percent or real by less than `real` percent (its confidence). Null without a band.
export function escalationLimits(cascade) {
  const band = escalationBand(cascade);
  if (!band) return null;
  return {fake: Math.round(100 * band.below), real: Math.round(100 * (1 - band.above))};
}
