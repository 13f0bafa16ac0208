// Runs inside the built extension as an offscreen document (bench-probe.html), which
// bench/browser_bench.mjs creates in place of the extension's own one. It uses the
// extension's own detector.js with the same TF.js wasm setup as extension/src/offscreen.js,
// and times what the offscreen document cannot report by itself: starting the wasm backend,
// loading the model (fetch + loadGraphModel + warm-up run), and the model per image.
//
// Asked through chrome.runtime messages with target 'bench-probe'; answers plain numbers.
import * as tf from '@tensorflow/tfjs-core';
import {setWasmPaths} from '@tensorflow/tfjs-backend-wasm';

import {load} from '../extension/src/detector.js';

const now = () => performance.now();
const THUMB = 48; // px, as extension/src/offscreen.js

// The same steps as startDetector() in extension/src/offscreen.js.
async function startBackend() {
  const t0 = now();
  tf.env().set('WASM_HAS_MULTITHREAD_SUPPORT', false);
  setWasmPaths(chrome.runtime.getURL('wasm/'));
  if (!(await tf.setBackend('wasm'))) throw new Error('the wasm backend of TensorFlow.js failed to start');
  await tf.ready();
  return {ms: now() - t0, backend: tf.getBackend(), simd: Boolean(await tf.env().getAsync('WASM_HAS_SIMD_SUPPORT')), tfjs: tf.version_core};
}

async function decodeAll(names) {
  const out = [];
  for (const name of names) {
    const blob = await (await fetch(chrome.runtime.getURL(`bench-images/${name}`))).blob();
    const bitmap = await createImageBitmap(blob, {imageOrientation: 'from-image', colorSpaceConversion: 'none', premultiplyAlpha: 'none'});
    const canvas = new OffscreenCanvas(bitmap.width, bitmap.height);
    const ctx = canvas.getContext('2d', {willReadFrequently: true});
    ctx.drawImage(bitmap, 0, 0);
    out.push(ctx.getImageData(0, 0, bitmap.width, bitmap.height, {colorSpace: 'srgb'}));
    bitmap.close();
  }
  return out;
}

// loads: how many times to load the model (each disposed after); inferences: timed
// detector.scores() calls on one image each (after one untimed call), cycling over images;
// stepRuns: images taken through the offscreen document's steps.
async function run({loads, inferences, stepRuns, images}) {
  const backend = await startBackend();
  const metadataUrl = chrome.runtime.getURL('model/metadata.json');
  const loadMs = [];
  let detector = null;
  for (let i = 0; i < loads; i++) {
    if (detector) detector.dispose();
    const t0 = now();
    detector = await load({metadataUrl});
    loadMs.push(now() - t0);
  }
  const pixels = await decodeAll(images);
  await detector.scores([pixels[0]]);
  const inferMs = [];
  const scores = [];
  for (let i = 0; i < inferences; i++) {
    const t0 = now();
    const [p] = await detector.scores([pixels[i % pixels.length]]);
    inferMs.push(now() - t0);
    scores.push(p);
  }
  // The offscreen document's 'check' (extension/src/offscreen.js), step by step, on the same
  // files: decode, read the pixels, the model, the 48 px thumbnail (convertToBlob, then
  // FileReader), and, for comparison only, the same thumbnail through a DOM canvas.
  const steps = {decode_ms: [], pixels_ms: [], model_ms: [], thumbnail_encode_ms: [], thumbnail_read_ms: [], thumbnail_todataurl_ms: []};
  for (let i = 0; i < stepRuns; i++) {
    const bytes = new Uint8Array(await (await fetch(chrome.runtime.getURL(`bench-images/${images[i % images.length]}`))).arrayBuffer());
    let t = now();
    const lap = (key) => {
      const n = now();
      steps[key].push(n - t);
      t = n;
    };
    const bitmap = await createImageBitmap(new Blob([bytes]), {imageOrientation: 'from-image', colorSpaceConversion: 'none', premultiplyAlpha: 'none'});
    lap('decode_ms');
    const canvas = new OffscreenCanvas(bitmap.width, bitmap.height);
    const ctx = canvas.getContext('2d', {willReadFrequently: true});
    ctx.drawImage(bitmap, 0, 0);
    const px = ctx.getImageData(0, 0, bitmap.width, bitmap.height, {colorSpace: 'srgb'});
    lap('pixels_ms');
    await detector.scores([px]);
    lap('model_ms');
    const s = Math.min(bitmap.width, bitmap.height);
    const thumb = new OffscreenCanvas(THUMB, THUMB);
    const tctx = thumb.getContext('2d');
    tctx.imageSmoothingQuality = 'high';
    tctx.drawImage(bitmap, (bitmap.width - s) / 2, (bitmap.height - s) / 2, s, s, 0, 0, THUMB, THUMB);
    const blob = await thumb.convertToBlob({type: 'image/jpeg', quality: 0.7});
    lap('thumbnail_encode_ms');
    await new Promise((resolve, reject) => {
      const reader = new FileReader();
      reader.onload = resolve;
      reader.onerror = () => reject(reader.error);
      reader.readAsDataURL(blob);
    });
    lap('thumbnail_read_ms');
    const dom = document.createElement('canvas');
    dom.width = dom.height = THUMB;
    dom.getContext('2d').drawImage(bitmap, (bitmap.width - s) / 2, (bitmap.height - s) / 2, s, s, 0, 0, THUMB, THUMB);
    dom.toDataURL('image/jpeg', 0.7);
    lap('thumbnail_todataurl_ms');
    bitmap.close();
  }
  const info = {input_size: detector.inputSize, quantization: detector.metadata.model.quantization, name: detector.metadata.name, version: detector.metadata.version};
  detector.dispose();
  return {steps, backend, load_ms: loadMs, inference_ms: inferMs, scores, model: info};
}

chrome.runtime.onMessage.addListener((msg, _sender, sendResponse) => {
  if (!msg || msg.target !== 'bench-probe') return false;
  run(msg).then(
    (value) => sendResponse({ok: true, value}),
    (e) => sendResponse({ok: false, message: e && e.stack ? e.stack : String(e)}),
  );
  return true;
});
