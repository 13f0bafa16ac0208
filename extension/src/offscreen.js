// The offscreen document: decodes images, finds the faces and scores each one (TensorFlow.js,
// wasm backend, one thread). The service worker cannot: it has no DOM to decode images in,
// and Chrome stops it when idle. Only the worker talks to this page, with messages whose
// target is 'offscreen'.
import * as tf from '@tensorflow/tfjs-core';
import {setWasmPaths} from '@tensorflow/tfjs-backend-wasm';

import {fromBase64} from './bytes.js';
import {load} from './detector.js';
import {heatFor, occlusionMap} from './explain.js';
import {FaceCheck} from './facecheck.js';
import {cropPixels, loadFaceFinder} from './faces.js';
import {novelaiStealth, sdWatermark} from './provenance.js';

const THUMB = 48; // px, the popup's recent-checks thumbnails

let checkPromise = null;
let runs = 0;

async function startDetector() {
  // Extension pages expose SharedArrayBuffer without cross-origin isolation, so TF.js would
  // pick the threaded build, whose workers fail here and make setBackend hang.
  tf.env().set('WASM_HAS_MULTITHREAD_SUPPORT', false);
  setWasmPaths(chrome.runtime.getURL('wasm/'));
  if (!(await tf.setBackend('wasm'))) throw new Error('the WebAssembly backend of TensorFlow.js failed to start');
  await tf.ready();
  const detector = await load({metadataUrl: chrome.runtime.getURL('model/metadata.json')});
  const {metadata} = detector;
  if (!metadata.faces) throw new Error("the model's metadata.json has no faces section; rebuild the extension with a model from `unmask convert`");
  const finder = await loadFaceFinder({metadata, modelUrl: chrome.runtime.getURL(`model/${metadata.faces.model.file}`)});
  return new FaceCheck({detector, finder, crop: cropPixels});
}

function faceCheck() {
  if (!checkPromise) {
    checkPromise = startDetector().catch((e) => {
      checkPromise = null; // let a later check try again
      throw e;
    });
  }
  return checkPromise;
}

class DecodeProblem extends Error {
  constructor(message) {
    super(message);
    this.code = 'corrupt';
  }
}

// The pixels as the browser draws them: EXIF orientation applied, no colour-profile
// conversion (Pillow ignores profiles too), alpha not premultiplied.
async function decode(bytes) {
  let bitmap;
  try {
    bitmap = await createImageBitmap(new Blob([bytes]), {imageOrientation: 'from-image', colorSpaceConversion: 'none', premultiplyAlpha: 'none'});
  } catch (e) {
    throw new DecodeProblem(`the browser could not decode the image: it is damaged or not really an image (${e.message})`);
  }
  const canvas = new OffscreenCanvas(bitmap.width, bitmap.height);
  const ctx = canvas.getContext('2d', {willReadFrequently: true});
  ctx.drawImage(bitmap, 0, 0);
  const pixels = ctx.getImageData(0, 0, bitmap.width, bitmap.height, {colorSpace: 'srgb'});
  return {bitmap, pixels};
}

// A DOM canvas: OffscreenCanvas.convertToBlob took about a second per call in a hidden
// offscreen document (bench/RESULTS.md), toDataURL takes under a millisecond.
async function thumbnail(bitmap) {
  const s = Math.min(bitmap.width, bitmap.height);
  const canvas = document.createElement('canvas');
  canvas.width = canvas.height = THUMB;
  const ctx = canvas.getContext('2d');
  ctx.imageSmoothingQuality = 'high';
  ctx.drawImage(bitmap, (bitmap.width - s) / 2, (bitmap.height - s) / 2, s, s, 0, 0, THUMB, THUMB);
  return canvas.toDataURL('image/jpeg', 0.7);
}

// pixelEvidence: what to look for in the decoded pixels, which only they show (the worker
// asks by format, as Python reads them): {stealth} NovelAI's hidden metadata in a PNG's alpha
// channel, {watermark} the Stable Diffusion watermark, which JPEG destroys.
// timing: milliseconds per step (decode, find, judge), which the benches read.
async function check({data, thumb = true, pixelEvidence = {}}) {
  const fc = await faceCheck();
  const t0 = performance.now();
  const {bitmap, pixels} = await decode(fromBase64(data));
  const timing = {decode_ms: performance.now() - t0};
  try {
    // Raw scores per face: the worker applies the calibration at the user's sensitivity.
    const found = await fc.score(pixels, timing);
    runs += 1;
    const stealth = pixelEvidence.stealth ? await novelaiStealth(pixels.data, pixels.width, pixels.height) : null;
    const watermark = pixelEvidence.watermark ? sdWatermark(pixels.data, pixels.width, pixels.height) : null;
    return {...found, stealth, watermark, thumb: thumb ? await thumbnail(bitmap) : null, timing};
  } finally {
    bitmap.close();
  }
}

// "Show where it looked": a heat map over each face's crop (explain.js). crops: the [x, y,
// side] squares the check judged, from the worker's cached result.
async function explain({data, crops}) {
  const fc = await faceCheck();
  const {bitmap, pixels} = await decode(fromBase64(data));
  bitmap.close();
  const heats = [];
  for (const crop of crops) {
    const t0 = performance.now();
    const map = await occlusionMap(fc.detector, cropPixels(pixels, crop));
    heats.push({crop, ...heatFor(map), ms: Math.round(performance.now() - t0)});
  }
  return {heats};
}

// C2PA credentials, read in a dedicated worker (c2paworker.js) started on the first file that
// carries them. One request at a time per id; the bytes are transferred, not copied.
let c2paWorker = null;
const c2paWaiting = new Map();
let c2paNext = 0;

function c2pa({data, mime}) {
  if (!c2paWorker) {
    c2paWorker = new Worker(chrome.runtime.getURL('c2paworker.js'), {type: 'module'});
    c2paWorker.onmessage = ({data: m}) => {
      const waiting = c2paWaiting.get(m.id);
      c2paWaiting.delete(m.id);
      if (waiting) (m.ok ? waiting.resolve({json: m.json}) : waiting.reject(Object.assign(new Error(m.message), {code: 'c2pa'})));
    };
    c2paWorker.onerror = (e) => {
      for (const w of c2paWaiting.values()) w.reject(Object.assign(new Error(`the Content Credentials reader failed: ${e.message}`), {code: 'c2pa'}));
      c2paWaiting.clear();
      c2paWorker = null;
    };
  }
  const id = (c2paNext += 1);
  const bytes = fromBase64(data);
  return new Promise((resolve, reject) => {
    c2paWaiting.set(id, {resolve, reject});
    c2paWorker.postMessage({id, bytes, mime}, [bytes.buffer]);
  });
}

async function stats() {
  const fc = await faceCheck();
  return {runs, backend: tf.getBackend(), model: fc.detector.metadata.model};
}

const HANDLERS = {check, explain, stats, c2pa};

// Only the extension's worker: not a content script (a tab), not another extension.
const fromWorker = (sender) => sender.id === chrome.runtime.id && !sender.tab && String(sender.url || '').startsWith(chrome.runtime.getURL(''));

chrome.runtime.onMessage.addListener((msg, sender, sendResponse) => {
  if (!msg || msg.target !== 'offscreen' || !fromWorker(sender)) return false;
  const handler = HANDLERS[msg.type];
  if (!handler) return false;
  handler(msg).then(
    (value) => sendResponse({ok: true, value}),
    (e) => sendResponse({ok: false, code: e.code || 'model_error', message: e.message || String(e)}),
  );
  return true; // answer asynchronously
});
