// The JavaScript half of the parity check: run a converted detector in TensorFlow.js under
// Node, decoding every image here and preparing it with the extension's own
// extension/src/preprocess.js and detector.js. converter/parity.py compares with Keras.
//
// JPEGs are decoded with libjpeg-turbo built to wasm (@cwasm/jpeg-turbo): measured here, it
// gives the same bytes as Pillow and as Chromium's decoder (both libjpeg-turbo, "fancy" chroma
// upsampling). jpeg-js upsamples chroma by repetition and differs by up to 29 levels per
// channel on faces-v1 files; `--jpeg jpeg-js` keeps it to measure that. PNGs: pngjs.
//
//   node converter/parity.mjs --model DIR [--backend wasm|cpu] [--jpeg libjpeg-turbo|jpeg-js] [--list FILE] [IMAGE ...]
//   node converter/parity.mjs --model DIR --kernels   # which kernels one prediction uses
//
// DIR holds model.json, its weight shards and metadata.json. Prints one JSON object on
// stdout: {backend, tfjs, model, results: [{path, p_fake_raw, verdict, ...} | {path, error}]}.
// Progress goes to stderr. Exit status 2 when the model cannot be used at all.
import {readFile} from 'node:fs/promises';
import {join, resolve} from 'node:path';
import {pathToFileURL} from 'node:url';
import {parseArgs} from 'node:util';

import * as tf from '@tensorflow/tfjs-core';
import '@tensorflow/tfjs-backend-wasm';
import '@tensorflow/tfjs-backend-cpu';
import {loadGraphModel} from '@tensorflow/tfjs-converter';
import * as jpegTurbo from '@cwasm/jpeg-turbo';
import jpeg from 'jpeg-js';
import pngjs from 'pngjs';

import {load} from '../extension/src/detector.js';
import {verdict} from '../extension/src/verdict.js';

const MAX_PIXELS = 50_000_000; // models.preprocessing.DEFAULT_MAX_PIXELS

// A tf.io handler that reads a graph model from a folder (Node has no file:// fetch).
export function folderHandler(dir) {
  return {
    async load() {
      const json = JSON.parse(await readFile(join(dir, 'model.json'), 'utf8'));
      const weightSpecs = [];
      const buffers = [];
      for (const group of json.weightsManifest) {
        weightSpecs.push(...group.weights);
        for (const p of group.paths) buffers.push(await readFile(join(dir, p)));
      }
      const all = Buffer.concat(buffers);
      return {
        modelTopology: json.modelTopology,
        format: json.format,
        generatedBy: json.generatedBy,
        convertedBy: json.convertedBy,
        signature: json.signature,
        userDefinedMetadata: json.userDefinedMetadata,
        modelInitializer: json.modelInitializer,
        weightSpecs,
        weightData: all.buffer.slice(all.byteOffset, all.byteOffset + all.byteLength),
      };
    },
  };
}

// A JPEG's size and EXIF orientation (1-8; 1 when absent), read from its markers before
// decoding. Browsers draw images upright by the orientation, and
// models.preprocessing.load_image applies it too (ImageOps.exif_transpose).
export function jpegInfo(buf) {
  const info = {width: 0, height: 0, orientation: 1};
  let i = 2;
  while (i + 4 <= buf.length && buf[i] === 0xff) {
    const marker = buf[i + 1];
    const len = buf.readUInt16BE(i + 2);
    const isFrame = marker >= 0xc0 && marker <= 0xcf && ![0xc4, 0xc8, 0xcc].includes(marker);
    if (isFrame && i + 9 <= buf.length) {
      info.height = buf.readUInt16BE(i + 5);
      info.width = buf.readUInt16BE(i + 7);
    }
    if (marker === 0xe1 && buf.toString('latin1', i + 4, i + 10) === 'Exif\0\0') {
      info.orientation = exifOrientation(buf, i + 10, i + 2 + len);
    }
    if (marker === 0xda) break; // image data starts: no more headers
    i += 2 + len;
  }
  return info;
}

function exifOrientation(buf, t, end) {
  try {
    const le = buf.toString('latin1', t, t + 2) === 'II';
    const u16 = (o) => (le ? buf.readUInt16LE(o) : buf.readUInt16BE(o));
    const u32 = (o) => (le ? buf.readUInt32LE(o) : buf.readUInt32BE(o));
    const ifd = t + u32(t + 4);
    const entries = u16(ifd);
    for (let e = 0; e < entries; e++) {
      const at = ifd + 2 + e * 12;
      if (at + 12 > end) break;
      if (u16(at) === 0x0112) {
        const v = u16(at + 8);
        return v >= 1 && v <= 8 ? v : 1;
      }
    }
  } catch {
    // A broken EXIF block: show the image as stored, as Pillow does.
  }
  return 1;
}

// Turn RGBA pixels upright for an EXIF orientation, as PIL.ImageOps.exif_transpose does.
export function applyOrientation({data, width: w, height: h}, orientation) {
  if (orientation === 1) return {data, width: w, height: h};
  const swap = orientation >= 5;
  const W = swap ? h : w;
  const H = swap ? w : h;
  const out = new Uint8Array(W * H * 4);
  for (let y = 0; y < H; y++) {
    for (let x = 0; x < W; x++) {
      // (sx, sy): the source pixel shown at (x, y) of the upright image.
      let sx, sy;
      switch (orientation) {
        case 2: sx = w - 1 - x; sy = y; break;
        case 3: sx = w - 1 - x; sy = h - 1 - y; break;
        case 4: sx = x; sy = h - 1 - y; break;
        case 5: sx = y; sy = x; break;
        case 6: sx = y; sy = h - 1 - x; break;
        case 7: sx = w - 1 - y; sy = h - 1 - x; break;
        case 8: sx = w - 1 - y; sy = x; break;
        default: sx = x; sy = y;
      }
      const s = (sy * w + sx) * 4;
      const d = (y * W + x) * 4;
      out[d] = data[s]; out[d + 1] = data[s + 1]; out[d + 2] = data[s + 2]; out[d + 3] = data[s + 3];
    }
  }
  return {data: out, width: W, height: H};
}

function decodeJpeg(buf, decoder, info) {
  if (info.width * info.height > MAX_PIXELS) throw new Error(`image is ${info.width}x${info.height}, over ${MAX_PIXELS} pixels`);
  if (decoder === 'jpeg-js') {
    return jpeg.decode(buf, {useTArray: true, formatAsRGBA: true, maxResolutionInMP: MAX_PIXELS / 1e6, maxMemoryUsageInMB: 2048});
  }
  let img;
  try {
    img = jpegTurbo.decode(buf);
  } catch (e) {
    throw new Error(`corrupt or truncated JPEG (${e.message})`);
  }
  return img;
}

// File bytes -> RGBA {data, width, height}, upright. JPEG and PNG only.
export function decode(buf, {jpegDecoder = 'libjpeg-turbo'} = {}) {
  if (buf.length >= 3 && buf[0] === 0xff && buf[1] === 0xd8 && buf[2] === 0xff) {
    const info = jpegInfo(buf);
    return applyOrientation(decodeJpeg(buf, jpegDecoder, info), info.orientation);
  }
  if (buf.length >= 8 && buf.toString('latin1', 1, 4) === 'PNG') {
    const img = pngjs.PNG.sync.read(buf);
    if (img.width * img.height > MAX_PIXELS) throw new Error(`image is ${img.width}x${img.height}, over ${MAX_PIXELS} pixels`);
    return {data: img.data, width: img.width, height: img.height};
  }
  throw new Error('unsupported format for the Node decoders (JPEG and PNG only)');
}

export async function setBackend(name) {
  if (name === 'wasm') tf.env().set('WASM_HAS_MULTITHREAD_SUPPORT', false); // as the extension does
  if (!(await tf.setBackend(name))) throw new Error(`backend ${name} failed to initialise`);
  await tf.ready();
}

// Which kernels `run` (one prediction) uses, and those the backend lacks.
export async function usedKernels(run) {
  const registered = new Set(tf.getKernelsForBackend(tf.getBackend()).map((k) => k.kernelName));
  try {
    const info = await tf.profile(run);
    // Ops wrapped in a custom gradient are recorded too, named 'opName__op': not kernels.
    const used = [...new Set(info.kernelNames)].filter((k) => !k.endsWith('__op')).sort();
    return {kernels_used: used, missing_kernels: used.filter((k) => !registered.has(k))};
  } catch (e) {
    const m = /Kernel '([^']+)' not registered/.exec(e.message);
    if (!m) throw e;
    return {kernels_used: null, missing_kernels: [m[1]], error: e.message};
  }
}

async function kernels(dir) {
  const metadata = JSON.parse(await readFile(join(dir, 'metadata.json'), 'utf8'));
  const model = await loadGraphModel(folderHandler(dir));
  const size = metadata.preprocessing.input_size;
  const x = tf.zeros([1, size, size, 3]);
  try {
    return await usedKernels(() => model.execute(x, metadata.model.output));
  } finally {
    x.dispose();
    model.dispose();
  }
}

async function main() {
  const {values, positionals} = parseArgs({
    allowPositionals: true,
    options: {
      model: {type: 'string'},
      backend: {type: 'string', default: 'wasm'},
      list: {type: 'string'},
      kernels: {type: 'boolean', default: false},
      jpeg: {type: 'string', default: 'libjpeg-turbo'},
    },
  });
  if (!values.model) throw new Error('--model DIR is required');
  if (!['libjpeg-turbo', 'jpeg-js'].includes(values.jpeg)) throw new Error(`--jpeg must be libjpeg-turbo or jpeg-js, not ${values.jpeg}`);
  const dir = resolve(values.model);
  await setBackend(values.backend);
  const out = {backend: tf.getBackend(), tfjs: tf.version_core, jpeg_decoder: values.jpeg, model: dir};

  if (values.kernels) return {...out, ...(await kernels(dir))};

  const paths = [...positionals];
  if (values.list) paths.push(...(await readFile(values.list, 'utf8')).split('\n').filter(Boolean));
  const metadata = JSON.parse(await readFile(join(dir, 'metadata.json'), 'utf8'));
  const detector = await load({modelUrl: folderHandler(dir), metadata});
  out.results = [];
  const started = Date.now();
  for (const [i, path] of paths.entries()) {
    let row;
    try {
      const pixels = decode(await readFile(path), {jpegDecoder: values.jpeg});
      const [p] = await detector.scores([pixels]);
      row = {path, width: pixels.width, height: pixels.height, ...verdict(p, metadata.calibration), p_fake_raw: p};
    } catch (e) {
      row = {path, error: e.message};
    }
    out.results.push(row);
    if ((i + 1) % 200 === 0 || i + 1 === paths.length) {
      process.stderr.write(`  tfjs ${out.backend}: ${i + 1}/${paths.length} images, ${((Date.now() - started) / 1000).toFixed(1)} s\n`);
    }
  }
  detector.dispose();
  return out;
}

// Run `main` when `moduleUrl` is the script Node was started with: one JSON object on stdout,
// {error} and exit status 2 when it throws (converter/parity.py reads both).
export function runAsScript(moduleUrl, main) {
  if (!process.argv[1] || moduleUrl !== pathToFileURL(resolve(process.argv[1])).href) return;
  main().then(
    (out) => process.stdout.write(JSON.stringify(out) + '\n'),
    (e) => {
      process.stdout.write(JSON.stringify({error: e.message}) + '\n');
      process.exitCode = 2;
    },
  );
}

runAsScript(import.meta.url, main);
