// Runs inside the built extension as an offscreen document (bench-probe.html), which
// bench/browser_bench.mjs creates in place of the extension's own one. It uses the
// extension's own detector.js, faces.js (the BlazeFace finder) and facecheck.js with the same
// TF.js wasm setup as extension/src/offscreen.js (one thread), and times what the offscreen
// document cannot report by itself: starting the wasm backend, loading each model, finding
// the faces per picture, the classifier per face crop, and the 'check' step by step.
//
// Asked through chrome.runtime messages with target 'bench-probe'; answers plain numbers.
import * as tf from '@tensorflow/tfjs-core';
import {setWasmPaths} from '@tensorflow/tfjs-backend-wasm';

import {load} from '../extension/src/detector.js';
import {FaceCheck} from '../extension/src/facecheck.js';
import {cropPixels, loadFaceFinder} from '../extension/src/faces.js';

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

const imageBytes = async (name) => new Uint8Array(await (await fetch(chrome.runtime.getURL(`bench-images/${name}`))).arrayBuffer());

// As decode() in extension/src/offscreen.js: EXIF orientation applied, no colour conversion.
async function decodeBytes(bytes) {
  const bitmap = await createImageBitmap(new Blob([bytes]), {imageOrientation: 'from-image', colorSpaceConversion: 'none', premultiplyAlpha: 'none'});
  const canvas = new OffscreenCanvas(bitmap.width, bitmap.height);
  const ctx = canvas.getContext('2d', {willReadFrequently: true});
  ctx.drawImage(bitmap, 0, 0);
  const pixels = ctx.getImageData(0, 0, bitmap.width, bitmap.height, {colorSpace: 'srgb'});
  bitmap.close();
  return pixels;
}

async function timedRuns(n, fn) {
  await fn(); // untimed: the first run of a new input size allocates
  const ms = [];
  for (let i = 0; i < n; i++) {
    const t0 = now();
    await fn();
    ms.push(now() - t0);
  }
  return ms;
}

// Each named picture: decode, faces found (and whether the first, unpadded view already held
// one), finder.find() and the whole FaceCheck.score() (find, crop, classify every face), timed.
async function measurePictures(pictures, {finder, check, finds, decodes}) {
  const out = {};
  for (const {key, name} of pictures) {
    const bytes = await imageBytes(name);
    const decodeMs = await timedRuns(decodes, () => decodeBytes(bytes));
    const pixels = await decodeBytes(bytes);
    const found = await finder.find(pixels);
    const firstView = await finder.candidates(pixels, 0);
    out[key] = {
      name, width: pixels.width, height: pixels.height, faces: found.faces.length, too_small: found.too_small,
      views: firstView.length ? 1 : 2, decode_ms: decodeMs,
      find_ms: await timedRuns(finds, () => finder.find(pixels)),
      check_ms: await timedRuns(finds, () => check.score(pixels)),
    };
  }
  return out;
}

// Faces found per picture the bench relies on: every feed and click picture must hold a face
// (badges go only on judged faces), every "no face" picture none.
async function verify({face = [], none = []}, finder) {
  const missing = [];
  const unexpected = [];
  for (const [names, bad, wantFace] of [[face, missing, true], [none, unexpected, false]]) {
    for (const name of names) {
      const found = await finder.find(await decodeBytes(await imageBytes(name)));
      if (Boolean(found.faces.length) !== wantFace) bad.push(name);
    }
  }
  return {checked: face.length + none.length, face_missing: missing, face_in_no_face: unexpected};
}

// loads: model loads (each disposed after); inferences: timed detector.scores() calls on one
// face crop each (after one untimed call), cycling over the crops of `images`; stepRuns:
// images taken through the offscreen document's check step by step; finds/decodes: timed
// runs per picture.
async function run({loads, inferences, stepRuns, finds, decodes, images, pictures, verify: toVerify}) {
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
  const {metadata} = detector;
  if (!metadata.faces) throw new Error("the model's metadata.json has no faces section");
  const faceUrl = chrome.runtime.getURL(`model/${metadata.faces.model.file}`);
  const faceLoadMs = [];
  let finder = null;
  for (let i = 0; i < loads; i++) {
    if (finder) finder.dispose();
    const t0 = now();
    finder = await loadFaceFinder({metadata, modelUrl: faceUrl});
    faceLoadMs.push(now() - t0);
  }
  const check = new FaceCheck({detector, finder, crop: cropPixels});
  const verified = await verify(toVerify || {}, finder);

  // The classifier alone, per face: the crop of the largest face of each image.
  const crops = [];
  for (const name of images) {
    const pixels = await decodeBytes(await imageBytes(name));
    const found = await finder.find(pixels);
    if (found.faces.length) crops.push(cropPixels(pixels, found.faces[0].crop));
  }
  if (!crops.length) throw new Error(`no face found in any of ${images.join(', ')}: nothing for the classifier`);
  await detector.scores([crops[0]]);
  const inferMs = [];
  const scores = [];
  for (let i = 0; i < inferences; i++) {
    const t0 = now();
    const [p] = await detector.scores([crops[i % crops.length]]);
    inferMs.push(now() - t0);
    scores.push(p);
  }

  // The offscreen document's 'check' (extension/src/offscreen.js), step by step, on the same
  // files: decode, read the pixels, find the faces, crop and classify them (one batch), the
  // 48 px thumbnail through a DOM canvas.
  const steps = {decode_ms: [], pixels_ms: [], find_ms: [], classify_ms: [], thumbnail_ms: []};
  for (let i = 0; i < stepRuns; i++) {
    const bytes = await imageBytes(images[i % images.length]);
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
    const found = await finder.find(px);
    lap('find_ms');
    if (found.faces.length) await detector.scores(found.faces.map((f) => cropPixels(px, f.crop)));
    lap('classify_ms');
    const s = Math.min(bitmap.width, bitmap.height);
    const dom = document.createElement('canvas');
    dom.width = dom.height = THUMB;
    const dctx = dom.getContext('2d');
    dctx.imageSmoothingQuality = 'high';
    dctx.drawImage(bitmap, (bitmap.width - s) / 2, (bitmap.height - s) / 2, s, s, 0, 0, THUMB, THUMB);
    dom.toDataURL('image/jpeg', 0.7);
    lap('thumbnail_ms');
    bitmap.close();
  }

  const measured = await measurePictures(pictures || [], {finder, check, finds, decodes});
  const info = {input_size: detector.inputSize, quantization: metadata.model.quantization, name: metadata.name, version: metadata.version,
    face_input_size: metadata.faces.detector.input_size, face_quantization: metadata.faces.model.quantization,
    min_face_side: metadata.faces.min_face_side};
  finder.dispose();
  detector.dispose();
  return {steps, backend, load_ms: loadMs, face_load_ms: faceLoadMs, inference_ms: inferMs, crops: crops.length, scores,
    pictures: measured, verify: verified, model: info};
}

chrome.runtime.onMessage.addListener((msg, _sender, sendResponse) => {
  if (!msg || msg.target !== 'bench-probe') return false;
  run(msg).then(
    (value) => sendResponse({ok: true, value}),
    (e) => sendResponse({ok: false, message: e && e.stack ? e.stack : String(e)}),
  );
  return true;
});
