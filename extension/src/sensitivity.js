// Sensitivity: how readily the extension says "fake". It moves only the fake threshold, on
// the calibrated probability, and never the confidence (which stays the calibrated
// probability that the likelier label is right).
//
//   standard  the model's own thresholds, chosen on validation data to reach its target
//             precision (metadata.json calibration). Verdicts equal Python's `unmask predict`.
//   high      fake from halfway between the real and the fake threshold (halfway into the
//             "uncertain" band): more fakes caught, more real images flagged by mistake.
//   low       fake only from halfway between the fake threshold and 1: fewer false alarms,
//             more fakes left "uncertain".
// The real threshold never moves.

export const LEVELS = Object.freeze(['low', 'standard', 'high']);

export function adjustCalibration(cal, level) {
  if (!LEVELS.includes(level)) throw new Error(`unknown sensitivity ${JSON.stringify(level)}; use one of ${LEVELS.join(', ')}`);
  // A fake threshold above 1 means the calibration never reached its target precision for
  // "fake" (the model never says it); count it as 1.
  const f = Math.min(cal.fake_threshold, 1);
  let fake = cal.fake_threshold;
  if (level === 'high') fake = (cal.real_threshold + f) / 2;
  if (level === 'low') fake = (f + 1) / 2;
  return {...cal, fake_threshold: fake};
}
