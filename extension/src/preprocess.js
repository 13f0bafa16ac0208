// Pixels -> model input, the same steps as models.preprocessing.resize_for_model in Python.
//
// The contract (input size, crop, resize, value range) comes from the converter's
// metadata.json, which copied it from models/preprocessing.json. Steps, for an image h x w:
//   1. centre square crop of side s = min(h, w) at ((h - s) // 2, (w - s) // 2);
//   2. box average: k = max(floor(s / size), 1), n = floor(s / k); keep the first n*k rows
//      and columns and average each k x k block (Python: reshape [n,k,n,k,3], mean over 1, 3);
//   3. bilinear resize n x n -> size x size, half-pixel centres, no antialiasing.
// Output: float32 [1, size, size, 3] in 0..255; the model rescales inside its first layer.
//
// Steps 1-2 run in plain JS: a block sum of 8-bit values is an integer below 2^24, so it is
// exact in any order, and one division gives the same float32 as TensorFlow's reduce_mean
// while never holding the full-size image as a float tensor. Step 3 is tf.image.resizeBilinear,
// the same kernel definition as TensorFlow's ResizeBilinear.
import * as tf from '@tensorflow/tfjs-core';

const SUPPORTED = {color: 'RGB', crop: 'center-square', resize: 'box-then-bilinear', input_dtype: 'float32'};

// Throws unless `spec` (metadata.preprocessing) is a contract this module implements, so a
// changed contract fails loudly instead of silently giving different inputs.
export function checkSpec(spec) {
  if (!spec || typeof spec !== 'object') throw new Error('metadata has no preprocessing section');
  for (const [key, want] of Object.entries(SUPPORTED)) {
    if (spec[key] !== want) {
      throw new Error(`preprocessing ${key} is ${JSON.stringify(spec[key])}, but preprocess.js implements ${JSON.stringify(want)}; update extension/src/preprocess.js with models/preprocessing.py`);
    }
  }
  const size = spec.input_size;
  if (!Number.isInteger(size) || size < 1) throw new Error(`preprocessing input_size must be a positive integer, got ${size}`);
  const range = spec.input_range;
  if (!Array.isArray(range) || range[0] !== 0 || range[1] !== 255) {
    throw new Error(`preprocessing input_range must be [0, 255], got ${JSON.stringify(range)}`);
  }
  return size;
}

// {data, width, height} with 4 (RGBA, as ImageData) or 3 (RGB) bytes per pixel -> channels.
export function pixelChannels(pixels) {
  const {data, width, height} = pixels || {};
  if (!data || !Number.isInteger(width) || !Number.isInteger(height) || width < 1 || height < 1) {
    throw new Error('pixels must be {data, width, height} with a positive integer width and height');
  }
  const per = data.length / (width * height);
  if (per !== 4 && per !== 3) {
    throw new Error(`pixels.data has ${data.length} values for ${width}x${height}: expected RGBA (x4) or RGB (x3)`);
  }
  return per;
}

// Step 2 on any region {left, top, width, height} of the image: average k x k blocks,
// dropping the last width % k columns and height % k rows (Python: reshape, reduce_mean).
// Returns float32 values (h x w x 3) with h = floor(height / k), w = floor(width / k).
// models/faces.py's letterbox uses it on the whole image.
export function boxAverage(pixels, {left, top, width, height}, k) {
  const ch = pixelChannels(pixels);
  const {data, width: w} = pixels;
  const nh = Math.floor(height / k);
  const nw = Math.floor(width / k);
  const out = new Float32Array(nh * nw * 3);
  if (k === 1) { // a copy: the common case for a face crop under twice the model's size
    let o = 0;
    for (let y = 0; y < nh; y++) {
      for (let src = ((top + y) * w + left) * ch, end = src + nw * ch; src < end; src += ch) {
        out[o++] = data[src];
        out[o++] = data[src + 1];
        out[o++] = data[src + 2];
      }
    }
    return {values: out, height: nh, width: nw};
  }
  // Integer sums (255 k^2 stays far below 2^32), a block row at a time: the same values as
  // summing floats, and faster (Node, 1280x720 RGBA, k = 6: 1.7 against 2.8 ms).
  const sums = new Uint32Array(nw * 3);
  const area = k * k;
  for (let by = 0; by < nh; by++) {
    sums.fill(0);
    for (let dy = 0; dy < k; dy++) {
      let src = ((top + by * k + dy) * w + left) * ch;
      for (let o = 0; o < nw * 3; o += 3) {
        let r = 0;
        let g = 0;
        let b = 0;
        for (let dx = 0; dx < k; dx++, src += ch) {
          r += data[src];
          g += data[src + 1];
          b += data[src + 2];
        }
        sums[o] += r;
        sums[o + 1] += g;
        sums[o + 2] += b;
      }
    }
    const base = by * nw * 3;
    for (let i = 0; i < nw * 3; i++) out[base + i] = sums[i] / area;
  }
  return {values: out, height: nh, width: nw};
}

// Steps 1 and 2: the centre square, box-averaged by an integer factor. Returns the n x n x 3
// float32 values and n. Exported for tests and benchmarks.
export function cropAndBox(pixels, size) {
  pixelChannels(pixels);
  const {width: w, height: h} = pixels;
  const s = Math.min(h, w);
  const k = Math.max(Math.floor(s / size), 1);
  const {values, height: n} = boxAverage(pixels, {left: Math.floor((w - s) / 2), top: Math.floor((h - s) / 2), width: s, height: s}, k);
  return {values, n};
}

// One image -> float32 tensor [1, size, size, 3] in 0..255. The caller disposes it.
export function preprocess(pixels, spec) {
  const size = checkSpec(spec);
  const {values, n} = cropAndBox(pixels, size);
  return tf.tidy(() => {
    const boxed = tf.tensor3d(values, [n, n, 3], 'float32');
    const resized = tf.image.resizeBilinear(boxed, [size, size], false, true);
    return tf.expandDims(resized, 0);
  });
}

// Several images -> float32 tensor [batch, size, size, 3]. The caller disposes it.
export function preprocessBatch(pixelsList, spec) {
  if (!Array.isArray(pixelsList) || pixelsList.length === 0) throw new Error('preprocessBatch needs a non-empty array of pixels');
  const one = pixelsList.map((p) => preprocess(p, spec));
  try {
    return tf.concat(one, 0);
  } finally {
    one.forEach((t) => t.dispose());
  }
}
