// "Show where it looked": which parts of a face crop moved the detector, on the device.
//
// Occlusion sensitivity: the crop's model input is shown again with one square patch at a time
// set to the middle grey of the input range, and the change in raw p(fake) is that patch's
// weight. A graph model from the converter has no layer to hook for Grad-CAM, and its fused
// kernels carry no gradients in TF.js, so this needs nothing but forward passes of the model
// the extension already runs (in small batches, to keep memory flat).
//
//   const map = await occlusionMap(detector, cropPixels(pixels, face.crop));
//   // {grid, values: Float32Array(grid * grid) in -1..1, row by row, p: raw p(fake) of the crop}
//
// values > 0: covering that patch lowered p(fake) (evidence for fake there); < 0: covering it
// raised p(fake) (it looked real). heatFor() picks the side that explains the face's verdict.
import * as tf from '@tensorflow/tfjs-core';

import {preprocess} from './preprocess.js';

export const GRID = 7; // patch positions per side
export const BATCH = 8; // occluded inputs per forward pass

// Where patch i of `grid` lies on an input of `size` px: patches of twice the stride, so
// neighbours overlap by half and the map is smooth; the last one ends at the edge.
export function patchAt(i, grid, size) {
  const side = Math.round((2 * size) / (grid + 1));
  const start = Math.round((i * (size - side)) / (grid - 1));
  return {start, side};
}

export async function occlusionMap(detector, pixels, {grid = GRID, batch = BATCH} = {}) {
  const spec = detector.metadata.preprocessing;
  const size = spec.input_size;
  const grey = (spec.input_range[0] + spec.input_range[1]) / 2;
  const x = preprocess(pixels, spec);
  try {
    const [base] = await detector.run(x);
    const values = new Float32Array(grid * grid);
    for (let first = 0; first < grid * grid; first += batch) {
      const n = Math.min(batch, grid * grid - first);
      const inputs = tf.tidy(() => {
        // 1 where the input is kept, 0 under the patch: [n, size, size, 1].
        const keep = new Float32Array(n * size * size).fill(1);
        for (let k = 0; k < n; k++) {
          const at = first + k;
          const row = patchAt(Math.floor(at / grid), grid, size);
          const col = patchAt(at % grid, grid, size);
          for (let y = row.start; y < row.start + row.side; y++) keep.fill(0, k * size * size + y * size + col.start, k * size * size + y * size + col.start + col.side);
        }
        const mask = tf.tensor4d(keep, [n, size, size, 1]);
        return tf.add(tf.mul(x, mask), tf.mul(tf.sub(1, mask), grey));
      });
      try {
        const p = await detector.run(inputs);
        for (let k = 0; k < n; k++) values[first + k] = base - p[k];
      } finally {
        inputs.dispose();
      }
    }
    return {grid, values, p: base};
  } finally {
    x.dispose();
  }
}

// The map a person sees for a face: on a face leaning fake, where covering lowered p(fake)
// (evidence for fake); on one leaning real, where covering raised it (what looked real),
// as models/wording.json's heat sentences say (the calibration keeps 0.5 where it is, so the
// raw score leans the same way). 0..1, scaled by the strongest patch.
export function heatFor(map) {
  const sign = map.p >= 0.5 ? 1 : -1;
  const heat = Float32Array.from(map.values, (v) => Math.max(0, sign * v));
  const top = Math.max(...heat);
  if (top > 0) for (let i = 0; i < heat.length; i++) heat[i] /= top;
  return {grid: map.grid, values: Array.from(heat, (v) => Math.round(v * 1000) / 1000), strongest: Math.round(top * 1e4) / 1e4};
}
